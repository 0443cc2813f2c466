"""The note-content hash ignores file resolution and bytes, and sees every note."""

from __future__ import annotations

from pathlib import Path

from symusic import Score

from midilm.datasets.content_hash import note_content_hash


def test_same_music_at_other_ticks_per_quarter_hashes_equal(chorale_midis: list[Path]) -> None:
    score = Score(chorale_midis[0])  # music21 writes 10080 ticks per quarter
    assert score.ticks_per_quarter == 10080
    for tpq in (96, 480, 960):
        other = Score.from_midi(score.resample(tpq).dumps_midi())
        assert other.ticks_per_quarter == tpq
        assert note_content_hash(other) == note_content_hash(score)


def test_different_music_hashes_differ(chorale_midis: list[Path]) -> None:
    hashes = {note_content_hash(Score(path)) for path in chorale_midis}
    assert len(hashes) == len(chorale_midis)
    score = Score(chorale_midis[0])
    assert note_content_hash(score.shift_pitch(1)) != note_content_hash(score)


def test_velocity_does_not_change_the_hash(chorale_midis: list[Path]) -> None:
    score = Score(chorale_midis[1])
    assert note_content_hash(score.shift_velocity(-20)) == note_content_hash(score)
