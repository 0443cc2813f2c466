"""Round-trip note F1: exact on identical scores, sensitive to lost and moved notes, and high
for REMI on real chorales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import symusic

from midilm.tokenize import build_tokenizer
from midilm.tokenize.fidelity import note_f1


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
    tokenizer = build_tokenizer(params["tokenizer"])
    assert tokenizer.name == "remi"
    for path in chorale_midis:
        score = symusic.Score(str(path))
        decoded = tokenizer.decode(tokenizer.encode(score))
        precision, recall, f1 = note_f1(score, decoded, 1, tpq=tokenizer.resolution)
        assert f1 > 0.95, (path.name, precision, recall)
