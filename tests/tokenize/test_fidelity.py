"""Round-trip note F1: exact on identical scores, sensitive to lost and moved notes, and high
for REMI on real chorales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import symusic

from midilm.specs.tokenizer import tokenizer_spec
from midilm.tokenize import build_tokenizer
from midilm.tokenize.fidelity import match_notes, note_f1, prf


def test_identical_scores_match_exactly(chorale_midis: list[Path]) -> None:
    score = symusic.Score(str(chorale_midis[0]))
    assert note_f1(score, score, 1, tpq=8) == (1.0, 1.0, 1.0)
    # a different ticks-per-quarter is the same music
    assert note_f1(score, score.resample(96), 1, tpq=8) == (1.0, 1.0, 1.0)


def test_dropped_and_moved_notes_are_counted(chorale_midis: list[Path]) -> None:
    score = symusic.Score(str(chorale_midis[0]))
    n = score.note_num()
    dropped = score.copy()
    dropped.tracks[0].notes = dropped.tracks[0].notes[: len(dropped.tracks[0].notes) // 2]
    kept = dropped.note_num()
    precision, recall, _ = note_f1(score, dropped, 1, tpq=8)
    assert precision == 1.0 and recall == kept / n
    # two grid steps late: outside the one-step onset tolerance
    late = score.shift_time(2 * score.ticks_per_quarter // 8)
    assert note_f1(score, late, 1, tpq=8) == (0.0, 0.0, 0.0)
    # one grid step late: inside it
    assert note_f1(score, score.shift_time(score.ticks_per_quarter // 8), 1, tpq=8)[2] == 1.0


def test_remi_roundtrip_on_real_chorales(chorale_midis: list[Path], params: dict[str, Any]) -> None:
    tokenizer = build_tokenizer(tokenizer_spec(params, "remi").build_cfg)
    assert tokenizer.name == "remi"
    for path in chorale_midis:
        score = symusic.Score(str(path))
        decoded = tokenizer.decode(tokenizer.encode(score))
        precision, recall, f1 = note_f1(score, decoded, 1, tpq=tokenizer.resolution)
        assert f1 > 0.95, (path.name, precision, recall)


def test_real_time_grid_ignores_the_tempo(chorale_midis: list[Path]) -> None:
    """The same notes at another tempo and resolution match exactly in seconds."""
    from midilm.tokenize.fidelity import notes_at_seconds, time_grid_s

    score = symusic.Score(str(chorale_midis[0]))
    same = score.resample(960)  # other ticks, same seconds
    a, b = notes_at_seconds(score, 0.008), notes_at_seconds(same, 0.008)
    assert len(a) == score.note_num() and prf(match_notes(a, b), len(a), len(b))[2] == 1.0

    class RealTime:
        time_grid_s = 0.008

    assert time_grid_s(RealTime()) == 0.008 and time_grid_s(object()) is None


def test_round_trip_compares_like_with_like(shared_datasets: Path) -> None:
    """A pop song starting 7.7 s in (Simplified MIDI drops leading silence) and a pedalled
    sonata (MIDICompact applies the pedal): lossless against the transformed piece, far off
    against the raw one, and the transform column says why."""
    from midilm.tokenize.fidelity import COMPARISONS, roundtrip_fidelity

    one_track = shared_datasets / "miditok_test_midis" / "tests" / "MIDIs_one_track"
    giant = shared_datasets / "giantmidi_piano_eval" / "midis_for_evaluation" / "ground_truth"
    paths = [one_track / "POP909_022.mid", giant / "beethoven_sonata_no_10_hisamori_cut_mov_1.mid"]
    for name, raw_below in (("simplified_midi", 0.6), ("midicompact", 0.9)):
        result = roundtrip_fidelity(build_tokenizer({"name": name}), [*paths, "missing.mid"])
        assert list(result) == list(COMPARISONS)
        assert all(r["pieces"] == 2 for r in result.values())  # the missing file is left out
        f1 = {key: r["f1"] for key, r in result.items()}
        assert f1["roundtrip"] > 0.99 and f1["roundtrip_on_grid"] == 1.0, (name, f1)
        assert f1["roundtrip_raw"] < raw_below and abs(f1["transform"] - f1["roundtrip_raw"]) < 0.01
