"""Per-piece standard metrics against MusPy (the anchor, run here) on real pieces, and on the
cases MusPy gets wrong or leaves undefined."""

from __future__ import annotations

import math
from pathlib import Path

import muspy
import numpy as np
import pytest
import symusic

from midilm.evaluate import features as F
from midilm.evaluate.notes import bar_quarters, piece_from_score

SPEC = F.FeatureSpec(
    groove_positions_per_beat=12, bar_quarters_range=(1.5, 8.0), fallback_bar_quarters=4.0
)
ANCHOR_TPQ = 24  # MusPy's polyphony builds a (ticks x 128) piano roll: keep it small


@pytest.fixture(scope="module")
def anchor_scores(default_profile_midis: dict[str, Path], shared_datasets: Path) -> dict:
    """Real pieces at 24 ticks per quarter: the default profile's chorales and tunes, drum
    performances (Groove), pop songs with drums, POP909 piano, Nottingham tunes."""
    paths = dict(default_profile_midis)
    groove = sorted((shared_datasets / "groove" / "drummer1").rglob("*.mid"))[:4]
    tests = shared_datasets / "miditok_test_midis" / "tests"
    pop = sorted((tests / "MIDIs_multitrack").glob("*.mid"))[:3]
    piano = sorted((tests / "MIDIs_one_track").glob("POP909_*.mid"))[:2]
    folk = sorted((shared_datasets / "nottingham" / "MIDI").glob("*.mid"))[:4]
    for path in [*groove, *pop, *piano, *folk]:
        paths[path.stem] = path
    return {key: symusic.Score(str(p)).resample(ANCHOR_TPQ) for key, p in sorted(paths.items())}


def to_muspy(score: symusic.Score) -> muspy.Music:
    """The same notes as a MusPy Music (so the comparison is of definitions, not of readers)."""
    tracks = []
    for track in score.tracks:
        n = track.notes.numpy()
        notes = [
            muspy.Note(int(t), int(p), int(d), int(v))
            for t, p, d, v in zip(n["time"], n["pitch"], n["duration"], n["velocity"], strict=True)
        ]
        tracks.append(muspy.Track(program=track.program, is_drum=track.is_drum, notes=notes))
    return muspy.Music(resolution=score.ticks_per_quarter, tracks=tracks)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6


def test_muspy_definitions_match_within_1e6(anchor_scores: dict) -> None:
    """Every metric MusPy defines, on 30 real pieces, within 1e-6; where ours fixes a MusPy bug
    the test applies MusPy's rule to show that the fix is the only difference."""
    drums_only = 0
    for name, score in anchor_scores.items():
        piece, music = piece_from_score(score), to_muspy(score)
        ours = F.piece_features(piece, SPEC)
        pitched = (~piece.drum).any()
        drums_only += not pitched
        checks = {
            "n_pitches_used": muspy.n_pitches_used(music),
            "n_pitch_classes_used": muspy.n_pitch_classes_used(music),
            "pitch_entropy": muspy.pitch_entropy(music),
            "pitch_class_entropy": muspy.pitch_class_entropy(music),
            "scale_consistency": muspy.scale_consistency(music),
            "polyphony": muspy.polyphony(music),
            "polyphony_rate": muspy.polyphony_rate(music),
            "drum_pattern_consistency": muspy.drum_pattern_consistency(music),
        }
        for metric, theirs in checks.items():
            assert _same(ours[metric], theirs), (name, metric, ours[metric], theirs)
        # pitch_range: MusPy gives -127 for a drums-only piece (bug); ours 0
        expected = muspy.pitch_range(music) if pitched else 0
        assert ours["pitch_range"] == expected, name
        # empty beats / measures: MusPy also fills the beat in which a note ends; with every
        # note one tick longer ours is MusPy's number
        assert _same(F.empty_rate(piece, ANCHOR_TPQ, extend=1), muspy.empty_beat_rate(music))
        bar = bar_quarters(piece, *SPEC.bar_quarters_range, SPEC.fallback_bar_quarters)
        bar_ticks = round(bar * ANCHOR_TPQ)
        assert _same(
            F.empty_rate(piece, bar_ticks, extend=1), muspy.empty_measure_rate(music, bar_ticks)
        ), name
        # groove: on raw ticks (positions_per_beat None) ours is MusPy's
        assert _same(
            F.groove_consistency(piece, bar, None), muspy.groove_consistency(music, bar_ticks)
        ), name
    assert drums_only >= 4  # the Groove performances


def test_a_note_ending_on_the_beat_does_not_fill_the_next_beat() -> None:
    piece = _piece([(0, 24, 60), (72, 24, 62)])  # beats 0 and 3 sound, 1 and 2 are empty
    assert F.piece_features(piece, SPEC)["empty_beat_rate"] == 0.5
    # MusPy counts 5 beats (one past the end) and fills 4: each note also fills its end's beat
    assert muspy.empty_beat_rate(to_muspy(_score([(0, 24, 60), (72, 24, 62)]))) == pytest.approx(
        0.2
    )


def test_groove_consistency_does_not_depend_on_the_resolution() -> None:
    notes = [(0, 6, 60), (12, 6, 62), (24, 12, 64), (48, 6, 60), (60, 6, 62), (84, 12, 67)]
    values = []
    for tpq in (24, 96, 480):
        scaled = [(s * tpq // 24, d * tpq // 24, p) for s, d, p in notes]
        score = _score(scaled, tpq)
        values.append(
            (
                F.piece_features(piece_from_score(score), SPEC)["groove_consistency"],
                muspy.groove_consistency(to_muspy(score), 4 * tpq),
            )
        )
    ours, theirs = zip(*values, strict=True)
    assert len(set(ours)) == 1
    assert len(set(theirs)) == 3  # MusPy's drifts towards 1 as the resolution grows


def test_empty_drums_only_and_one_note_pieces() -> None:
    empty = F.piece_features(_piece([]), SPEC)
    assert empty["pitch_range"] == empty["n_pitches_used"] == 0.0
    undefined = {k for k, v in empty.items() if isinstance(v, float) and math.isnan(v)}
    assert undefined == set(F.FEATURES + F.PITCH_CLASS_HISTOGRAM) - {
        "pitch_range",
        "n_pitches_used",
        "n_pitch_classes_used",
    }
    one = F.piece_features(_piece([(0, 24, 60)]), SPEC)
    assert one["pitch_class_entropy"] == 0.0 and one["scale_consistency"] == 1.0
    assert one["polyphony"] == 1.0 and one["polyphony_rate"] == 0.0
    assert one["empty_beat_rate"] == 0.0 and one["duration_std"] == 0.0
    assert math.isnan(one["ioi_mean"]) and math.isnan(one["groove_consistency"])
    assert one["note_density"] == 2.0  # one note in half a second at 120 BPM
    drums = F.piece_features(_piece([(0, 6, 36), (12, 6, 38), (24, 6, 36)], drum=True), SPEC)
    assert drums["pitch_range"] == 0.0 and math.isnan(drums["pitch_class_entropy"])
    assert drums["drum_pattern_consistency"] == 1.0 and drums["ioi_mean"] == 0.5
    assert drums["empty_beat_rate"] == 0.0  # drum hits fill beats


def test_note_density_follows_the_tempo_map() -> None:
    score = _score([(0, 24, 60), (24, 24, 62), (48, 24, 64), (72, 24, 65)])
    score.tempos.append(symusic.Tempo(0, qpm=120.0))
    score.tempos.append(symusic.Tempo(48, qpm=60.0))  # the second half takes twice as long
    density = F.piece_features(piece_from_score(score), SPEC)["note_density"]
    assert density == pytest.approx(4 / (1.0 + 2.0))


def test_a_corpus_declaring_one_four_gets_four_four_bars() -> None:
    notes = [(i * 24, 24, 60 + i % 5) for i in range(16)]
    declared = _score(notes)
    declared.time_signatures.append(symusic.TimeSignature(0, 1, 4))
    plain = _score(notes)
    for key in ("notes_per_bar", "groove_consistency", "empty_measure_rate"):
        a = F.piece_features(piece_from_score(declared), SPEC)[key]
        b = F.piece_features(piece_from_score(plain), SPEC)[key]
        assert a == b, key
    assert F.piece_features(piece_from_score(plain), SPEC)["notes_per_bar"] == 4.0


def _score(notes: list[tuple[int, int, int]], tpq: int = 24, drum: bool = False):
    score = symusic.Score(tpq)
    track = symusic.Track("t", is_drum=drum)
    for start, length, pitch in notes:
        track.notes.append(symusic.Note(start, length, pitch, 80))
    score.tracks.append(track)
    return score


def _piece(notes: list[tuple[int, int, int]], drum: bool = False):
    return piece_from_score(_score(notes, drum=drum))


def test_histogram_sums_to_one() -> None:
    values = F.piece_features(_piece([(0, 24, 60), (24, 24, 64), (48, 24, 72)]), SPEC)
    histogram = np.array([values[k] for k in F.PITCH_CLASS_HISTOGRAM])
    assert histogram.sum() == pytest.approx(1.0) and histogram[0] == pytest.approx(2 / 3)
