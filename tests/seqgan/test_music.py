"""The music task's coding: melody extraction, sampling every 0.4 s into 88 keys + rest,
windows, decoding to MIDI, and the sequences of a real split (Nottingham tunes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic

from midilm.seqgan.music import decode, load_melodies, melody_tokens, windows
from midilm.specs.seqgan import SeqGANSpec
from tests.seqgan.conftest import nottingham_layout

Q = 480  # ticks per quarter; at 150 bpm a quarter lasts 0.4 s, one sample step


def _track(name: str, notes: list[tuple[int, int, int]], drum: bool = False) -> symusic.Track:
    track = symusic.Track(name, 0, drum)
    for start, duration, pitch in notes:
        track.notes.append(symusic.Note(start, duration, pitch, 90))
    return track


def test_melody_is_the_top_line_of_the_highest_track_sampled_every_step(
    tiny_spec: SeqGANSpec,
) -> None:
    m = tiny_spec.music
    score = symusic.Score(Q)
    score.tempos.append(symusic.Tempo(0, 150.0))
    score.tracks.append(_track("chords", [(0, 8 * Q, 48), (0, 8 * Q, 52)]))  # lower, listed first
    score.tracks.append(_track("drums", [(0, Q, 120)] * 4, drum=True))  # high, but drums
    melody = [
        (Q // 2, Q, 72),  # first onset (t0) half a step in: sampling starts there
        (3 * Q // 2, 2 * Q, 74),  # held over two samples
        # a rest of one step
        (9 * Q // 2, Q // 2, 76),  # an eighth on a sample time ...
        (5 * Q, Q // 2, 77),  # ... and one between two: never sampled
        (11 * Q // 2, Q, 110),  # above C8: an octave down (98)
        (13 * Q // 2, Q, 60),  # two notes at once: the top one
        (13 * Q // 2, Q, 64),
    ]
    score.tracks.append(_track("melody", melody))
    tokens = melody_tokens(score, m)
    expected = [72, 74, 74, None, 76, 98, 64]
    assert tokens.tolist() == [m.rest if p is None else p - m.lowest_pitch for p in expected]


def test_windows_and_decoding_round_trip(tiny_spec: SeqGANSpec) -> None:
    m = tiny_spec.music
    rng = np.random.default_rng(0)
    tokens = rng.integers(30, 50, size=2 * m.length + 6)
    tokens[m.length : 2 * m.length] = m.rest  # an all-rest window: dropped
    tokens[3] = m.rest
    found = windows(tokens, m)
    assert found.shape == (1, m.length) and np.array_equal(found[0], tokens[: m.length])
    score = decode(found[0], m)
    assert score.tempos[0].qpm == pytest.approx(150.0)
    assert melody_tokens(score, m).tolist() == found[0].tolist()
    window = found[0].tolist()
    starts = [i for i, t in enumerate(window) if i == 0 or t != window[i - 1]]
    notes = [i for i in starts if window[i] != m.rest]  # a run of equal keys is one note
    assert score.note_num() == len(notes) == len(starts) - 1  # the rest run is none
    first = score.tracks[0].notes[0]
    assert (first.time, first.pitch) == (0, m.lowest_pitch + window[0])


def test_split_sequences_of_real_tunes(
    tmp_path: Path, tiny_spec: SeqGANSpec, nottingham_midis: Path
) -> None:
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    layout = nottingham_layout(tmp_path, nottingham_midis, 30, broken)
    melodies = load_melodies(tiny_spec.music, layout)
    counts = {split: len(seqs) for split, seqs in melodies.sequences.items()}
    assert all(n > 0 for n in counts.values()) and counts["train"] > counts["test"]
    assert melodies.pieces == {"train": 24, "valid": 3, "test": 3}
    assert [s["id"] for s in melodies.skipped] == ["nottingham/zz_broken"]
    assert melodies.skipped[0]["reason"].startswith("unreadable")
    for split, seqs in melodies.sequences.items():
        assert seqs.shape[1] == tiny_spec.music.length
        assert seqs.min() >= 0 and seqs.max() <= tiny_spec.music.rest
        assert len(melodies.origins[split]) == len(seqs)
    train_ids = {piece for piece, _ in melodies.origins["train"]}
    test_ids = {piece for piece, _ in melodies.origins["test"]}
    assert test_ids and not test_ids & train_ids  # no test melody ever trains


def test_datasets_the_split_lacks_fall_back_to_every_dataset(
    tmp_path: Path, tiny_spec: SeqGANSpec, nottingham_midis: Path
) -> None:
    import dataclasses

    layout = nottingham_layout(tmp_path, nottingham_midis, 12)
    absent = load_melodies(dataclasses.replace(tiny_spec.music, datasets=("essen",)), layout)
    every = load_melodies(
        dataclasses.replace(tiny_spec.music, datasets=("bach", "nottingham")), layout
    )
    for split in every.sequences:
        np.testing.assert_array_equal(absent.sequences[split], every.sequences[split])
    assert [s["id"] for s in absent.skipped] == ["bach/x"]  # read, and reported unreadable


def test_a_split_without_melodies_is_a_clear_error(
    tmp_path: Path, tiny_spec: SeqGANSpec, nottingham_midis: Path
) -> None:
    layout = nottingham_layout(tmp_path, nottingham_midis, 3)  # no test tune
    with pytest.raises(ValueError, match=r"the test split has no melody.*seqgan.music.datasets"):
        load_melodies(tiny_spec.music, layout)
    with pytest.raises(FileNotFoundError, match="dvc repro split"):
        load_melodies(tiny_spec.music, type(layout)(tmp_path / "nowhere"))
