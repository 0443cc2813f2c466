"""Seed 001's metrics from note arrays against music21 (the reference) on real pieces of the
default profile, and the differences between the `thesis` and `midilm` variants."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import symusic
from music21 import analysis, chord, note, pitch, stream

from midilm.evaluate import metrics, seed001
from midilm.evaluate.m21view import UNITS, _quantize, music21_view
from midilm.evaluate.notes import piece_from_bytes, piece_from_score

MAX_QL = 256.0
# music21's MIDI import moves notes in these tunes (double stops tied across barlines)
MUSIC21_MOVES_NOTES = {
    "oneills1850/0001-0050_x2",
    "oneills1850/0351-0400_x381",
    "oneills1850/0626-0700_x652",
}


def _music21_elements(score: stream.Score) -> list[tuple]:
    out = []
    for index, part in enumerate(score.parts):
        for element in part.flatten().notes:
            pitches = tuple(sorted(int(p.midi) for p in element.pitches))
            offset, length = float(element.offset), float(element.quarterLength)
            out.append((index, round(offset * UNITS), round(length * UNITS), pitches))
    return sorted(out)


def _view_elements(data: bytes, join: bool = True, max_ql: float | None = MAX_QL) -> list[tuple]:
    units = None if max_ql is None else round(max_ql * UNITS)
    view = music21_view(piece_from_bytes(data), join, units)
    counts = view.pitch_counts()
    rows = zip(view.part, view.onset, view.duration, view.pitch_start, counts, strict=True)
    return sorted(
        (int(p), int(o), int(d), tuple(sorted(view.pitches[s : s + c].tolist())))
        for p, o, d, s, c in rows
    )


@pytest.fixture(scope="module")
def reference_values(default_profile_midis: dict[str, Path]) -> dict[str, dict]:
    """music21's metrics (metrics.py) of every piece, with its parse as element tuples."""
    out = {}
    for piece_id, path in sorted(default_profile_midis.items()):
        score = metrics.load_score(path, MAX_QL)
        consonance, dissonance = metrics.harmonic_coherence(score)
        out[piece_id] = {
            "rhythm_consistency": metrics.rhythm_consistency(score),
            "consonance": consonance,
            "dissonance": dissonance,
            "key_changes": float(metrics.key_changes(score, 4)),
            "top_melody": metrics.top_melody(metrics.note_events(score), 5),
            "bar": metrics.bar_quarter_length(score),
            "elements": _music21_elements(score),
        }
    return out


def test_midilm_variant_equals_music21_on_the_default_profile(
    default_profile_midis: dict[str, Path], reference_values: dict[str, dict]
) -> None:
    """Exact equality (rhythm consistency to 1e-12: float sums in another order) on every piece
    music21 reads without moving notes; the three that it moves are named."""
    moved, worst = set(), dict.fromkeys(seed001.METRICS, 0.0)
    for piece_id, path in sorted(default_profile_midis.items()):
        ref = reference_values[piece_id]
        data = path.read_bytes()
        if ref["elements"] != _view_elements(data):
            moved.add(piece_id)
            continue
        spec = seed001.Seed001Spec(MAX_QL, 4 * ref["bar"])
        result = seed001.analyze(piece_from_bytes(data), spec, data, ("midilm",))
        for metric in seed001.METRICS:
            ours, theirs = result.values[f"midilm_{metric}"], ref[metric]
            worst[metric] = max(worst[metric], abs(ours - theirs))
        assert seed001.top_line(result.events, 5) == ref["top_melody"], piece_id
    assert moved == MUSIC21_MOVES_NOTES
    assert worst["rhythm_consistency"] <= 1e-12
    assert worst["consonance"] == worst["dissonance"] == worst["key_changes"] == 0.0


def test_the_reading_keeps_every_note_of_the_file(default_profile_midis: dict[str, Path]) -> None:
    """Where music21 moves notes, ours keeps every note of the file once (chords hold several),
    at its onset on the grid (every onset quantizes to itself)."""
    for piece_id in sorted(MUSIC21_MOVES_NOTES):
        data = default_profile_midis[piece_id].read_bytes()
        piece = piece_from_bytes(data)
        view = music21_view(piece)
        assert sorted(view.pitches.tolist()) == sorted(piece.pitch.tolist())
        onsets = view.onset[view.element_of_pitch()]
        assert np.array_equal(_quantize(onsets * piece.tpq // UNITS, piece.tpq), onsets)


def _same_measures_in_every_part(score: stream.Score) -> bool:
    offsets = {tuple(m.offset for m in p.getElementsByClass(stream.Measure)) for p in score.parts}
    return len(offsets) == 1 or len({o[: min(map(len, offsets))] for o in offsets}) == 1


def test_thesis_variant_equals_the_authors_code_run_by_music21(
    default_profile_midis: dict[str, Path],
) -> None:
    """`metrics.author_metrics` is the author's released evaluation code (facts of eval.ipynb)
    run by music21 on whole files. Equal on every piece whose parse music21 keeps consistent:
    not where it moves notes, nor where it gives parts other measures than the file's (a time
    signature in the first track only reaches the first part; the others get 4/4)."""
    from music21 import converter

    spec = seed001.Seed001Spec(None, 16)
    compared, skipped = 0, set()
    for piece_id, path in sorted(default_profile_midis.items()):
        data = path.read_bytes()
        parse = converter.parse(str(path), format="midi")
        own_view = _view_elements(data, join=False, max_ql=None)
        if not _same_measures_in_every_part(parse) or own_view != _music21_elements(parse):
            skipped.add(piece_id)
            continue
        values, melody = metrics.author_metrics(path)
        result = seed001.analyze(piece_from_bytes(data), spec, data, ("thesis",))
        for metric, theirs in values.items():
            ours = result.values[f"thesis_{metric}"]
            assert ours == pytest.approx(theirs, abs=1e-12, nan_ok=True), (piece_id, metric)
        assert list(result.thesis_melody) == melody, piece_id
        compared += 1
    # two chorales not in 4/4 (the file's metre reaches the first part only), two tunes whose
    # notes music21 moves, one it splits inside a bar
    assert skipped == {
        "bach_chorales/bwv269",
        "bach_chorales/bwv27.6",
        "oneills1850/0351-0400_x381",
        "oneills1850/0626-0700_x652",
        "oneills1850/0811-0899_x870",
    }
    assert compared == len(default_profile_midis) - len(skipped)


def test_quantization_matches_music21_on_off_grid_performance(tmp_path: Path) -> None:
    """Random off-grid onsets and lengths (a performed line and jittered block chords) are
    quantized, gathered into chords and measured as music21's MIDI import does."""
    rng = np.random.default_rng(7)
    score = symusic.Score(480)
    melody, chords = symusic.Track("line"), symusic.Track("chords")
    time = 0
    for _ in range(120):  # monophonic, off the grid
        length = int(rng.integers(40, 500))
        melody.notes.append(symusic.Note(time, length, int(rng.integers(60, 84)), 80))
        time += length + int(rng.integers(0, 60))
    time = 0
    for _ in range(40):  # three-note chords with onsets and ends a few ticks apart
        length = int(rng.integers(200, 900))
        for pitch_ in rng.choice(np.arange(40, 60), size=3, replace=False):
            jitter = int(rng.integers(0, 30))
            end_jitter = int(rng.integers(-30, 30))
            chords.notes.append(symusic.Note(time + jitter, length + end_jitter, int(pitch_), 70))
        time += length + int(rng.integers(40, 200))
    score.tracks.extend([melody, chords])
    path = tmp_path / "performed.mid"
    score.dump_midi(str(path))
    theirs = _music21_elements(metrics.load_score(path))
    assert _view_elements(path.read_bytes(), max_ql=None) == theirs


def test_consonance_tables_follow_music21_on_every_small_sonority() -> None:
    """Pitch-class rule = `metrics.is_consonant`; spelled rule = music21's `isConsonant()` on
    the spelling its MIDI import gives, for every bass and set of up to four pitch classes."""
    plain, spelled = seed001.consonance_table(False), seed001.consonance_table(True)
    for size in (1, 2, 3, 4):
        for classes in itertools.combinations(range(12), size):
            mask = sum(1 << pc for pc in classes)
            for bass in classes:
                pitches = []
                for pc in [bass, *[c for c in classes if c != bass]]:
                    p = pitch.Pitch()
                    p.midi = 48 + pc + (12 if pc < bass else 0) + (12 if pc != bass else 0)
                    pitches.append(p)
                sonority = chord.Chord(pitches)
                assert plain[bass, mask] == metrics.is_consonant(sonority), (bass, classes)
                assert spelled[bass, mask] == sonority.isConsonant(), (bass, classes)


def test_key_estimate_is_music21s_krumhansl_schmuckler() -> None:
    rng = np.random.default_rng(3)
    weights = np.vstack([rng.integers(0, 6, size=(40, 12)) * 0.25, np.ones((1, 12))])
    weights[5] = 0.0
    weights[5, [0, 7]] = 1.0  # two pitch classes only; the last row has no spread (a tie)
    solver = analysis.discrete.KrumhanslSchmuckler()
    for row, (tonic, mode) in zip(weights, seed001.best_keys(weights), strict=True):
        window = stream.Stream()
        for pc in range(12):
            if row[pc] > 0:
                window.append(note.Note(60 + pc, quarterLength=float(row[pc])))
        best = solver.getSolution(window)
        assert (tonic, mode) == (best.tonic.pitchClass, best.mode), row


def _piece(notes: list[tuple[int, int, int]], tpq: int = 480, ts: tuple[int, int] | None = None):
    score = symusic.Score(tpq)
    track = symusic.Track("piano")
    for start, length, midi in notes:
        track.notes.append(symusic.Note(start, length, midi, 80))
    score.tracks.append(track)
    if ts:
        score.time_signatures.append(symusic.TimeSignature(0, *ts))
    return piece_from_score(score)


def test_key_windows_are_beats_whatever_the_time_signature() -> None:
    """Two bars of C major then two of F# major: one change with 8-beat windows, whether the
    file declares 4/4 or 1/4 (music21's windows of 4 measures would be 4 beats under 1/4)."""
    c_major = [60, 64, 67, 72, 62, 65, 71, 67]
    f_sharp = [p + 6 for p in c_major]
    notes = [(i * 480, 480, p) for i, p in enumerate(c_major + f_sharp)]
    spec = seed001.Seed001Spec(None, 8)
    for ts in ((4, 4), (1, 4)):
        view = music21_view(_piece(notes, ts=ts))
        assert seed001.key_changes(view, spec.key_window_beats) == 1


def test_the_variants_differ_as_documented() -> None:
    """Minimal examples of docs/metrics.md, one per metric."""
    # consonance: an A-flat triad as MIDI spells it (G#-C-E-) is a triad by pitch class only
    a_flat = music21_view(_piece([(0, 480, 56), (0, 480, 60), (0, 480, 63)]))
    assert seed001.harmonic_coherence(a_flat) == (1.0, 0.0)
    assert seed001.harmonic_coherence(a_flat, spelled=True) == (0.0, 1.0)
    # rhythm: a half note tied over the barline is one note (mu/(mu+sd)) or two (sd)
    tied = _piece([(0, 480, 60), (480, 480, 62), (960, 480, 64), (1440, 960, 65)], ts=(4, 4))
    joined, split = music21_view(tied, True), music21_view(tied, False)
    durations = np.array([1, 1, 1, 2.0])
    assert seed001.rhythm_consistency(joined) == durations.mean() / (
        durations.mean() + durations.std()
    )
    assert seed001.single_note_duration_sd(split) == 0.0  # five quarter notes
    # melody: the author takes every single note in flattened order, chords left out
    two_voices = _piece([(0, 480, 72), (0, 960, 48), (480, 480, 74), (960, 480, 76)])
    view = music21_view(two_voices, False)
    assert seed001.thesis_melody(view) == [72, 48, 74, 76]
    assert seed001.top_line(seed001.note_events(music21_view(two_voices))) == [72, 74, 76]
    # key changes: no key signature in the file, so the author's count is 0
    assert seed001.key_signature_count(two_voices, None) == 0


def test_empty_and_one_note_pieces_are_defined_or_nan() -> None:
    spec = seed001.Seed001Spec(MAX_QL, 16)
    empty = seed001.analyze(_piece([]), spec)
    assert math.isnan(empty.values["midilm_rhythm_consistency"])
    assert math.isnan(empty.values["midilm_consonance"])
    assert empty.values["midilm_key_changes"] == 0.0
    assert empty.values["thesis_key_changes"] == 0.0
    one = seed001.analyze(_piece([(0, 480, 60)]), spec)
    assert one.values["midilm_rhythm_consistency"] == 1.0
    assert one.values["midilm_consonance"] == 1.0
    assert one.values["thesis_rhythm_consistency"] == 0.0
    assert seed001.melody_similarity([], [60]) != seed001.melody_similarity([], [60])  # nan


def test_drums_are_left_out(shared_datasets: Path) -> None:
    groove = sorted((shared_datasets / "groove" / "drummer1").rglob("*.mid"))[0]
    result = seed001.analyze_file(groove, seed001.Seed001Spec(MAX_QL, 16))
    assert math.isnan(result.values["midilm_rhythm_consistency"])
    assert result.events.size == 0
    with pytest.raises(ValueError, match="not a readable MIDI file"):
        seed001.analyze(
            piece_from_bytes(b"MThd garbage", "broken.mid"), seed001.Seed001Spec(None, 4)
        )
