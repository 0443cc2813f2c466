"""MIDICompact: the MIT vocabulary (2176 tokens), velocity bins, pedal, silences, the decoding
rules, and exact round trips on real pieces put on the 8 ms grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st

from midilm.tokenize import build_tokenizer, load_tokenizer
from midilm.tokenize.fidelity import note_f1
from midilm.tokenize.midicompact import (
    MidiCompactConfig,
    MidiCompactTokenizer,
    dequantize_velocity,
    quantize_velocity,
)

TOK = MidiCompactTokenizer()
LEVELS = dequantize_velocity(np.arange(16)).tolist()  # the 16 representative velocities
V = LEVELS[10]  # velocity 68, bin 10 (a)


def note_id(pitch: int, bin_: int) -> int:
    return TOK.vocab[f"{pitch:x}:{bin_:x}"]


def wait(ms: int) -> list[int]:
    """Wait tokens for `ms` milliseconds (8 ms steps, at most 1000 ms per token)."""
    full, rest = divmod(ms // 8, 125)
    return [TOK.vocab["t125"]] * full + ([TOK.vocab[f"t{rest}"]] if rest else [])


def score_ms(
    notes: list[tuple[int, int, int, int]], pedals: list[tuple[int, int]] = ()
) -> symusic.Score:
    """A one-track score at 1 tick = 1 ms from (onset_ms, duration_ms, pitch, velocity)."""
    score = symusic.Score(500)
    score.tempos.append(symusic.Tempo(0, qpm=120.0))
    track = symusic.Track("Piano", 0, False)
    for onset, dur, pitch, vel in notes:
        track.notes.append(symusic.Note(onset, dur, pitch, vel))
    for start, dur in pedals:
        track.pedals.append(symusic.Pedal(start, dur))
    score.tracks.append(track)
    return score


def rows(score: symusic.Score) -> list[tuple[int, ...]]:
    """Sorted (onset, duration, pitch, velocity) of all notes."""
    return sorted((n.time, n.duration, n.pitch, n.velocity) for t in score.tracks for n in t.notes)


def test_vocabulary_is_the_mit_piano_vocabulary() -> None:
    assert TOK.vocab_size == 128 * 16 + 125 + 3 == 2176
    assert (TOK.pad_id, TOK.bos_id, TOK.eos_id) == (0, 1, 2)
    assert [TOK.vocab[t] for t in ("<pad>", "<start>", "<end>", "t1", "t125")] == [0, 1, 2, 3, 127]
    assert TOK.vocab["0:0"] == 128 and TOK.vocab["3c:a"] == 128 + 60 * 16 + 10
    assert TOK.vocab["7f:f"] == 2175 and sorted(TOK.vocab.values()) == list(range(2176))


def test_velocity_bins() -> None:
    bins = quantize_velocity(np.arange(128))
    assert bins[0] == 0 and bins[1:].min() == 1 and bins.max() == 15
    assert (np.diff(bins) >= 0).all()  # monotone
    # linear when exp = 1: ceil(v / (128 / 15))
    assert quantize_velocity(np.arange(128), exp=1.0).tolist() == [
        int(np.ceil(v * 15 / 128)) for v in range(128)
    ]
    assert dequantize_velocity(np.arange(16), exp=1.0).tolist() == [
        0, 8, 17, 25, 34, 42, 51, 59, 68, 76, 85, 93, 102, 110, 119, 127
    ]  # fmt: skip
    assert LEVELS == [0, 5, 10, 16, 22, 29, 36, 43, 51, 59, 68, 78, 88, 100, 113, 127]
    for exp in (0.33, 1.0):  # each bin's velocity falls back into that bin
        levels = dequantize_velocity(np.arange(16), exp=exp)
        assert quantize_velocity(levels, exp=exp).tolist() == list(range(16))


def test_sustain_pedal_holds_note_offs_until_release() -> None:
    score = score_ms([(0, 496, 60, V), (1000, 496, 64, V)], pedals=[(200, 1800)])
    held = rows(TOK.decode(TOK.encode(score)))
    assert [(on, dur) for on, dur, _, _ in held] == [(0, 2000), (1000, 1000)]
    plain = MidiCompactTokenizer(MidiCompactConfig(sustain_pedal=False))
    assert [d for _, d, _, _ in rows(plain.decode(plain.encode(score)))] == [496, 496]


def test_long_silence_starts_a_new_segment_unless_a_note_is_held() -> None:
    notes = [(0, 1000, 60, V), (13000, 1000, 62, V)]
    segments = TOK.encode_segments(score_ms(notes))
    first = [TOK.bos_id, note_id(60, 10), *wait(1000), note_id(60, 0), TOK.eos_id]
    second = [TOK.bos_id, note_id(62, 10), *wait(1000), note_id(62, 0), TOK.eos_id]
    assert segments == [first, second]
    assert len(TOK.encode(score_ms(notes))) == 6 + len(wait(12000))  # the whole piece waits
    held = score_ms([*notes, (0, 14000, 36, V)])  # a bass note spans the silence
    assert len(TOK.encode_segments(held)) == 1
    # a silence of exactly max_silence_s does not split; a pedal-held note counts as held
    assert len(TOK.encode_segments(score_ms([(0, 1000, 60, V), (11000, 1000, 62, V)]))) == 1
    pedalled = score_ms(notes, pedals=[(500, 12800)])
    assert len(TOK.encode_segments(pedalled)) == 1


def test_short_segments_are_left_out_with_min_segment_s() -> None:
    notes = [(0, 1000, 60, V), (13000, 3000, 62, V)]
    tok = MidiCompactTokenizer(MidiCompactConfig(min_segment_s=2.0))
    (kept,) = tok.encode_segments(score_ms(notes))
    assert kept[1] == note_id(62, 10) and TOK.encode_segments(score_ms([])) == []


def test_simultaneous_events_sort_by_note_with_the_off_first() -> None:
    score = score_ms([(0, 496, 64, V), (0, 496, 60, V), (496, 496, 60, V)])
    names = TOK.to_text(TOK.encode(score)).split()
    assert names == ["3c:a", "40:a", "t62", "3c:0", "3c:a", "40:0", "t62", "3c:0"]


def test_decoding_releases_a_note_held_for_five_seconds() -> None:
    ids = [note_id(60, 10), *wait(6000), note_id(60, 0), note_id(62, 10), *wait(1000)]
    score, dropped = TOK.decode_with_report(ids)
    assert rows(score) == [(0, 5000, 60, LEVELS[10]), (6000, 1000, 62, LEVELS[10])]
    assert dropped == 1  # the late note-off had nothing left to end


def test_decoding_a_repeated_note_on_ends_the_sounding_note_first() -> None:
    ids = [note_id(60, 10), *wait(1000), note_id(60, 12), *wait(1000), note_id(60, 0)]
    score, dropped = TOK.decode_with_report(ids)
    assert rows(score) == [(0, 1000, 60, LEVELS[10]), (1000, 1000, 60, LEVELS[12])]
    assert dropped == 0


def test_text_form_and_unknown_words() -> None:
    ids = TOK.encode(score_ms([(0, 496, 60, V), (0, 96, 72, LEVELS[5])]))
    text = TOK.to_text(ids)
    assert text == "3c:a 48:5 t12 48:0 t50 3c:0"
    assert TOK.from_text(text) == ids
    assert TOK.from_text_with_report("<start> 3c:a banana t126 t12 3c:0 <end>") == (
        [1, note_id(60, 10), TOK.vocab["t12"], note_id(60, 0), 2],
        2,
    )


def real_pieces(chorale_midis: list[Path], shared_datasets: Path) -> list[symusic.Score]:
    one_track = shared_datasets / "miditok_test_midis" / "tests" / "MIDIs_one_track"
    giant = shared_datasets / "giantmidi_piano_eval" / "midis_for_evaluation" / "ground_truth"
    paths = [*chorale_midis[:4], one_track / "Maestro_1.mid", one_track / "POP909_008.mid"]
    paths += sorted(giant.glob("*.mid"))[:2]
    return [symusic.Score(str(p)) for p in paths]


def test_exact_round_trip_on_real_pieces_on_the_grid(
    chorale_midis: list[Path], shared_datasets: Path
) -> None:
    for score in real_pieces(chorale_midis, shared_datasets):
        snapped = TOK.snap_to_grid(score)
        assert snapped.note_num() > 0.9 * score.note_num()
        decoded, dropped = TOK.decode_with_report(TOK.encode(snapped))
        assert rows(decoded) == rows(snapped) and dropped == 0
        assert note_f1(snapped, decoded, 0) == (1.0, 1.0, 1.0)
        assert rows(TOK.decode(TOK.encode(score))) == rows(snapped)
        segments = TOK.encode_segments(score)
        assert all(s[0] == TOK.bos_id and s[-1] == TOK.eos_id for s in segments)
        inner = [i for s in segments for i in s[1:-1]]
        assert [i for i in inner if i >= TOK.note_offset] == [
            i for i in TOK.encode(score) if i >= TOK.note_offset
        ]  # the same note events; only the waits of leading and long silences go


@st.composite
def grid_scores(draw: st.DrawFn) -> list[tuple[int, int, int, int]]:
    """Notes on the 8 ms grid, representative velocities, same-pitch notes never overlapping
    (they may touch), durations within the 5 s held-note limit."""
    notes = []
    for pitch in draw(st.lists(st.integers(0, 127), min_size=1, max_size=6, unique=True)):
        now = draw(st.integers(0, 400))
        for gap, dur, b in draw(
            st.lists(
                st.tuples(st.integers(0, 300), st.integers(1, 625), st.integers(1, 15)), max_size=8
            )
        ):
            notes.append((8 * (now + gap), 8 * dur, pitch, LEVELS[b]))
            now += gap + dur
    return notes


@settings(max_examples=60, deadline=None)
@given(grid_scores())
def test_random_scores_on_the_grid_round_trip(notes: list[tuple[int, int, int, int]]) -> None:
    score = score_ms(notes)
    assert rows(TOK.decode(TOK.encode(score))) == sorted(notes)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 3000), max_size=200))
def test_any_ids_decode_to_a_valid_score(ids: list[int]) -> None:
    score, dropped = TOK.decode_with_report(ids)
    assert dropped >= sum(1 for i in ids if not 0 <= i < 2176)
    for n in score.tracks[0].notes:
        assert n.duration > 0 and 0 <= n.pitch < 128 and n.duration <= 5000


def test_truncated_sequence_closes_sounding_notes() -> None:
    ids = TOK.encode(score_ms([(0, 2000, 60, V), (1000, 2000, 64, V)]))
    score, dropped = TOK.decode_with_report(ids[: len(ids) // 2 + 1])
    assert dropped == 0 and len(score.tracks[0].notes) == 2


def test_build_save_load(tmp_path: Path) -> None:
    tok = build_tokenizer({"name": "midicompact", "midicompact": {"velocity_exp": 1.0}})
    assert isinstance(tok, MidiCompactTokenizer) and tok.vocab_size == 2176
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, MidiCompactTokenizer) and loaded.config == tok.config
    with pytest.raises(ValueError, match="velocity_expo"):
        build_tokenizer({"name": "midicompact", "midicompact": {"velocity_expo": 1.0}})


def with_controls(score: symusic.Score, controls: list[tuple[int, int, int]]) -> symusic.Score:
    """`score` with (time_ms, number, value) control changes added to its first track."""
    for time, number, value in controls:
        score.tracks[0].controls.append(symusic.ControlChange(time, number, value))
    return score


def test_volume_and_expression_scale_velocity() -> None:
    notes = [(0, 496, 60, 100), (1000, 496, 62, 100), (2000, 496, 64, 100)]
    controls = [(500, 7, 64), (1500, 11, 32)]  # volume halves, then expression quarters
    score = with_controls(score_ms(notes), controls)
    expected = quantize_velocity([100, 100 * 64 / 127, 100 * 64 / 127 * 32 / 127]).tolist()
    names = TOK.to_text(TOK.encode(score)).split()
    assert [int(t.split(":")[1], 16) for t in names if ":" in t][::2] == expected
    plain = MidiCompactTokenizer(MidiCompactConfig(volume_scaling=False))
    assert {n.velocity for n in plain.decode(plain.encode(score)).tracks[0].notes} == {
        LEVELS[int(quantize_velocity(100))]
    }
    # volume 0 silences a note: there is no token for it (bin 0 is a note-off)
    silent = with_controls(score_ms(notes[:1]), [(0, 7, 0)])
    assert TOK.encode(silent) == [] and TOK.transformed(silent).note_num() == 0


def test_a_pedal_on_its_own_track_holds_the_notes_of_its_channel(shared_datasets: Path) -> None:
    """GiantMIDI's ground truth keeps the pedal of some pieces on a track without notes, which
    symusic drops; read through `load_score`, every note track of the channel gets it."""
    from midilm.tokenize.midi_channels import load_score

    giant = shared_datasets / "giantmidi_piano_eval" / "midis_for_evaluation" / "ground_truth"
    path = giant / "scriabin_etude_op_42_no_4_dery.mid"
    plain, shared = symusic.Score(str(path)), load_score(path)
    assert sum(len(t.pedals) for t in plain.tracks) == 0
    assert all(len(t.pedals) for t in shared.tracks)
    lengths = [
        TOK.transformed(s).tracks[0].notes.numpy()["duration"].sum() for s in (plain, shared)
    ]
    assert lengths[1] > 1.5 * lengths[0]  # the pedal holds the notes
    assert TOK.encode(plain) != TOK.encode(shared)


def test_decoded_pieces_match_the_transformed_piece(shared_datasets: Path) -> None:
    """decode(encode(x)) against `transformed(x)`: what the encoding does is all that changes
    (compared in seconds on the 8 ms grid, one step of tolerance)."""
    from midilm.tokenize.fidelity import match_notes, notes_at_seconds, prf
    from midilm.tokenize.midi_channels import load_score

    def f1(reference: symusic.Score, decoded: symusic.Score) -> float:
        ref, dec = notes_at_seconds(reference, 0.008), notes_at_seconds(decoded, 0.008)
        return prf(match_notes(ref, dec), len(ref), len(dec))[2]

    giant = shared_datasets / "giantmidi_piano_eval" / "midis_for_evaluation" / "ground_truth"
    for name in ("chopin_etude_op_10_no_12.mid", "beethoven_sonata_no_10_hisamori_cut_mov_1.mid"):
        score = load_score(giant / name)
        decoded = TOK.decode(TOK.encode(score))
        assert f1(TOK.transformed(score), decoded) > 0.99
        assert f1(score, decoded) < 0.8  # against the piece without its pedal


def test_a_note_struck_again_under_the_pedal_needs_no_note_off() -> None:
    """As in the reference, the re-strike ends the held note; decoding gives the same notes."""
    score = score_ms([(0, 100, 60, V), (496, 100, 60, V)], pedals=[(50, 1950)])
    assert TOK.to_text(TOK.encode(score)) == "3c:a t62 3c:a t125 t63 3c:0"
    assert rows(TOK.decode(TOK.encode(score))) == [(0, 496, 60, V), (496, 1504, 60, V)]
    explicit = MidiCompactTokenizer(MidiCompactConfig(fix_repeated_notes=False))
    assert explicit.to_text(explicit.encode(score)) == "3c:a t62 3c:0 3c:a t125 t63 3c:0"


def test_exact_round_trip_of_pedalled_performances(shared_datasets: Path) -> None:
    from midilm.tokenize.midi_channels import load_score

    giant = shared_datasets / "giantmidi_piano_eval" / "midis_for_evaluation" / "ground_truth"
    one_track = shared_datasets / "miditok_test_midis" / "tests" / "MIDIs_one_track"
    for path in (giant / "chopin_etude_op_10_no_12.mid", one_track / "Maestro_1.mid"):
        score = load_score(path)
        ids = TOK.encode(score)
        decoded, dropped = TOK.decode_with_report(ids)
        assert rows(decoded) == rows(TOK.snap_to_grid(score))
        # only the note-offs of notes the decoder already released after 5 s go unused
        assert dropped <= sum(1 for r in rows(decoded) if r[1] == 5000)
        offs = sum(1 for i in ids if i >= TOK.note_offset and (i - TOK.note_offset) % 16 == 0)
        assert offs < 0.9 * score.note_num()  # re-strikes under the pedal carry no note-off
