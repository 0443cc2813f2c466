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
