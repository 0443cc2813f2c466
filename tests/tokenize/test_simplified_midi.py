"""Simplified MIDI: the report's text form, the bend quantization f/g, and exact round trips
(no merged notes) on real pieces, a GuitarPro track with bends and random scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st

from midilm.tokenize import build_tokenizer, load_tokenizer
from midilm.tokenize.fidelity import note_f1
from midilm.tokenize.simplified_midi import (
    SimplifiedMidiConfig,
    SimplifiedMidiTokenizer,
    bend_to_bin,
    bin_to_bend,
)

TOK = SimplifiedMidiTokenizer()
BEND = SimplifiedMidiTokenizer(SimplifiedMidiConfig(bend=True))
GRID_BENDS = bin_to_bend(np.arange(46))  # every bend MIDI can reach, on the grid


def score96(
    notes: list[tuple[int, int, int, int]], bends: list[tuple[int, int]] = ()
) -> symusic.Score:
    """One track at 96 ticks per quarter, 120 BPM: (onset, duration, pitch, velocity) notes and
    (time, MIDI bend 0..16383) events."""
    score = symusic.Score(96)
    score.tempos.append(symusic.Tempo(0, qpm=120.0))
    track = symusic.Track("Guitar", 29, False)
    for onset, dur, pitch, vel in notes:
        track.notes.append(symusic.Note(onset, dur, pitch, vel))
    for time, value in bends:
        track.pitch_bends.append(symusic.PitchBend(time, value - 8192))
    score.tracks.append(track)
    return score


def rows(score: symusic.Score) -> list[tuple[int, ...]]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for t in score.tracks for n in t.notes)


def bends_at_onsets(score: symusic.Score) -> list[tuple[int, int, int]]:
    """(onset, pitch, MIDI bend in effect at the onset) of every note."""
    out = []
    for track in score.tracks:
        times = [b.time for b in track.pitch_bends]
        for n in track.notes:
            k = int(np.searchsorted(times, n.time, side="right")) - 1
            out.append((n.time, n.pitch, track.pitch_bends[k].value + 8192 if k >= 0 else 8192))
    return sorted(out)


def test_bend_quantization_f_and_g() -> None:
    x = np.arange(16384)
    f = bend_to_bin(x)
    assert bend_to_bin(8192) == 23 and (np.diff(f) >= 0).all()
    assert f.min() == 0 and f.max() == 45  # g(46) = 16384 lies past the MIDI range
    assert [int(bend_to_bin(v)) for v in (7679, 7680, 8703, 8704, 16383)] == [14, 15, 30, 31, 45]
    assert (bin_to_bend(bend_to_bin(GRID_BENDS)) == GRID_BENDS).all()  # g(f(x)) = x on the grid
    assert (bend_to_bin(bin_to_bend(np.arange(46))) == np.arange(46)).all()
    assert bin_to_bend(23) == 8192 and bin_to_bend(46) == 16383
    assert [f"b{k}" for k in range(47)] == [t for t in BEND.vocab if t.startswith("b")]


def test_text_form_is_the_reports() -> None:
    chord_then_note = score96([(0, 96, 60, 80), (0, 48, 64, 70), (96, 192, 67, 90)])
    ids = TOK.encode(chord_then_note)
    assert TOK.to_text(ids) == "p60:v80:d96:t0 p64:v70:d48:t96 p67:v90:d192:t0"
    assert [TOK._names[i] for i in ids[:4]] == ["p60", "v80", "d96", "t0"]
    assert TOK.from_text(TOK.to_text(ids)) == ids
    bent = score96([(0, 96, 52, 57)], bends=[(0, 7680)])
    assert BEND.to_text(BEND.encode(bent)) == "p52:v57:d96:t0:b15"


def test_notes_are_never_merged() -> None:
    notes = [
        (0, 96, 60, 80),
        (0, 48, 60, 80),  # same pitch and onset
        (24, 96, 60, 70),  # overlaps both
        (24, 96, 60, 70),  # an exact duplicate
        (24, 0, 64, 70),  # no length
        (120, 96, 48, 50),
        (120, 96, 52, 50),
        (120, 96, 55, 50),  # a chord
    ]
    decoded = TOK.decode(TOK.encode(score96(notes)))
    assert rows(decoded) == sorted(notes)


def test_long_values_are_split_into_tokens_and_summed_back() -> None:
    notes = [(0, 5000, 60, 80), (2500, 1023, 62, 80), (2500, 1024, 64, 80)]
    ids = TOK.encode(score96(notes))
    names = [TOK._names[i] for i in ids]
    assert names[:9] == ["p60", "v80", "d1023", "d1023", "d1023", "d1023", "d908", "t1023", "t1023"]
    assert names[9] == "t454" and "d1023" in names[12:]
    assert rows(TOK.decode(ids)) == sorted(notes)
    assert TOK.to_text(ids).split()[0] == "p60:v80:d5000:t2500"


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
        assert snapped.note_num() == score.note_num()  # nothing merged or lost
        decoded, dropped = TOK.decode_with_report(TOK.encode(snapped))
        assert rows(decoded) == rows(snapped) and dropped == 0
        assert note_f1(snapped, decoded, 0) == (1.0, 1.0, 1.0)
        assert TOK.to_text(TOK.encode(decoded)) == TOK.to_text(TOK.encode(score))


def test_guitarpro_track_round_trips_with_its_bends(shared_datasets: Path) -> None:
    gp = pytest.importorskip("guitarpro")
    from midilm.datasets.converters.guitarpro import song_to_score

    path = shared_datasets / "dadagp_examples" / "examples" / "progmetal.gp3"
    score = song_to_score(gp.parse(str(path)), bend_tracks_only=True)
    snapped = BEND.snap_to_grid(score)
    ids = BEND.encode(snapped)
    # DadaGP bends are curves that leave 0 after the onset: at the onsets they read "no bend"
    words = BEND.to_text(ids).split()
    assert len(score.tracks[0].pitch_bends) == 19 and len(words) == score.note_num() == 537
    assert all(w.endswith(":b23") for w in words)
    decoded = BEND.decode(ids)
    assert rows(decoded) == rows(snapped)
    assert bends_at_onsets(decoded) == bends_at_onsets(snapped)
    assert BEND.encode(decoded) == ids


def test_synthetic_bends_round_trip_and_a_bend_sits_at_each_change() -> None:
    notes = [(0, 96, 52, 80), (96, 96, 52, 80), (192, 96, 55, 80), (192, 96, 59, 80)]
    score = score96(notes, bends=[(0, 8192), (96, 8704), (150, 2048), (192, 16383)])
    decoded = BEND.decode(BEND.encode(score))
    assert rows(decoded) == sorted(notes)
    assert [(b.time, b.value + 8192) for b in decoded.tracks[0].pitch_bends] == [
        (96, 8704),
        (192, 16384 - 512),  # f(16383) = 45 -> g(45) = 15872
    ]


@st.composite
def grid_notes(draw: st.DrawFn) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]]:
    """Random notes at 96 tpq from onset 0, and one grid bend per distinct onset."""
    n = draw(st.integers(1, 40))
    notes = [
        (
            draw(st.integers(0, 3000)),
            draw(st.integers(0, 3000)),
            draw(st.integers(0, 127)),
            draw(st.integers(1, 127)),
        )
        for _ in range(n)
    ]
    first = min(n[0] for n in notes)
    notes = [(on - first, *rest) for on, *rest in notes]
    onsets = sorted({on for on, *_ in notes})
    bends = [(on, int(draw(st.sampled_from(GRID_BENDS.tolist())))) for on in onsets]
    return notes, bends


@settings(max_examples=60, deadline=None)
@given(grid_notes())
def test_random_scores_on_the_grid_round_trip(
    case: tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]],
) -> None:
    notes, bends = case
    score = score96(notes, bends)
    for tok in (TOK, BEND):
        decoded = tok.decode(tok.encode(score))
        assert rows(decoded) == sorted(notes)
    assert bends_at_onsets(BEND.decode(BEND.encode(score))) == bends_at_onsets(score)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 2500), max_size=200))
def test_any_ids_decode_to_a_valid_score(ids: list[int]) -> None:
    for tok in (TOK, BEND):
        score, dropped = tok.decode_with_report(ids)
        assert dropped >= sum(1 for i in ids if not 0 <= i < tok.vocab_size)
        assert all(0 <= n.pitch < 128 for n in score.tracks[0].notes)


def test_bad_input_is_dropped_and_counted() -> None:
    ids = TOK.encode(score96([(0, 96, 60, 80), (0, 96, 64, 80)]))
    assert TOK.decode_with_report(ids[:6]) == (TOK.decode(ids[:4]), 2)  # truncated: p v
    _, dropped = TOK.decode_with_report([ids[1], -1, 99999, *ids, ids[1]])
    assert dropped == 4  # velocities with no note to belong to, two out-of-range ids
    text = "p60:v80:d96:t0 hello p200:v1:d1:t1 p61:v80:d96 p62:v80:d96:t0:b99"
    assert TOK.from_text_with_report(text) == (TOK.from_text("p60:v80:d96:t0"), 4)


def test_build_save_load(tmp_path: Path) -> None:
    tok = build_tokenizer({"name": "simplified_midi_bend"})
    assert isinstance(tok, SimplifiedMidiTokenizer) and tok.config.bend
    assert tok.name == "simplified_midi_bend"
    assert tok.vocab_size == 3 + 128 + 128 + 1024 + 1024 + 47
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(loaded, SimplifiedMidiTokenizer) and loaded.config == tok.config
    assert build_tokenizer({"name": "simplified_midi"}).vocab_size == tok.vocab_size - 47
