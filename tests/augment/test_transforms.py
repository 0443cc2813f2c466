"""Transposition keeps drums and the pitch range; velocity jitter stays in 1..127."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic

from midilm.augment.transforms import (
    clamp_shift,
    feasible_shifts,
    jitter_velocity,
    modulate,
    scale_tempo,
    transpose,
)


def _pitches(track: symusic.core.TrackTick) -> np.ndarray:
    return track.notes.numpy()["pitch"].astype(int)


def _with_drums(path: Path) -> symusic.core.ScoreTick:
    """A real chorale plus a drum track (kick 36, snare 38) on its first notes' onsets."""
    score = symusic.Score(str(path))
    drums = symusic.Track("drums", 0, True)
    for i, note in enumerate(list(score.tracks[0].notes)[:16]):
        drums.notes.append(symusic.Note(note.time, note.duration, 36 + 2 * (i % 2), 100))
    score.tracks.append(drums)
    return score


def test_transpose_shifts_pitched_tracks_and_never_drums(chorale_midis: list[Path]) -> None:
    score = _with_drums(chorale_midis[0])
    before = [_pitches(t).copy() for t in score.tracks]
    out = transpose(score, 3)
    for original, shifted, track in zip(before, out.tracks, score.tracks, strict=True):
        expected = original if track.is_drum else original + 3
        np.testing.assert_array_equal(_pitches(shifted), expected)
    for original, track in zip(before, score.tracks, strict=True):  # input untouched
        np.testing.assert_array_equal(_pitches(track), original)


def test_transpose_is_clamped_into_the_pitch_range(chorale_midis: list[Path]) -> None:
    score = symusic.Score(str(chorale_midis[1]))
    low = min(int(_pitches(t).min()) for t in score.tracks if len(t.notes))
    high = max(int(_pitches(t).max()) for t in score.tracks if len(t.notes))
    pitch_range = (low - 2, high + 2)  # half-open: room for -2..+1
    assert feasible_shifts(score, pitch_range) == (-2, 1)
    assert clamp_shift(score, 6, pitch_range) == 1
    out = transpose(score, 6, pitch_range)
    pitches = np.concatenate([_pitches(t) for t in out.tracks if len(t.notes)])
    assert pitches.min() == low + 1 and pitches.max() == high + 1 < pitch_range[1]
    # a piece wider than the range is left as it is, never partly clipped
    assert feasible_shifts(score, (low + 1, high)) == (0, 0)
    assert transpose(score, 4, (low + 1, high)).tracks[0].notes == score.tracks[0].notes


def test_transpose_near_midi_limits(chorale_midis: list[Path]) -> None:
    score = symusic.Score(str(chorale_midis[2]))
    high = max(int(_pitches(t).max()) for t in score.tracks if len(t.notes))
    out = transpose(score, 200)
    top = max(int(_pitches(t).max()) for t in out.tracks if len(t.notes))
    assert top == 127 and clamp_shift(score, 200) == 127 - high


def test_velocity_jitter_clips_to_midi_and_is_seeded(chorale_midis: list[Path]) -> None:
    score = _with_drums(chorale_midis[3])
    notes = score.tracks[0].notes
    notes[0].velocity, notes[1].velocity = 1, 127
    a = jitter_velocity(score, np.random.default_rng(7), 40)
    b = jitter_velocity(score, np.random.default_rng(7), 40)
    c = jitter_velocity(score, np.random.default_rng(8), 40)
    vel = lambda s: np.concatenate([t.notes.numpy()["velocity"].astype(int) for t in s.tracks])  # noqa: E731
    assert vel(a).min() >= 1 and vel(a).max() <= 127
    np.testing.assert_array_equal(vel(a), vel(b))
    assert not np.array_equal(vel(a), vel(c))
    assert (np.abs(vel(a) - vel(score)) <= 40).all() and (vel(a) != vel(score)).mean() > 0.8
    for before, after in zip(score.tracks, a.tracks, strict=True):  # only velocities change
        x, y = before.notes.numpy(), after.notes.numpy()
        for key in ("time", "duration", "pitch"):
            np.testing.assert_array_equal(x[key], y[key])


def test_scale_tempo_divides_seconds_and_keeps_ticks(chorale_midis: list[Path]) -> None:
    score = symusic.Score(str(chorale_midis[0]))
    faster = scale_tempo(score, 1.25)
    assert faster.end() == score.end() and faster.note_num() == score.note_num()
    assert float(faster.to("second").end()) == pytest.approx(score.to("second").end() / 1.25, 1e-4)
    empty = symusic.Score(480)
    assert [t.qpm for t in scale_tempo(empty, 0.5).tempos] == [60.0]


def test_modulate_refuses_to_leave_the_range(chorale_midis: list[Path]) -> None:
    score = symusic.Score(str(chorale_midis[0]))
    with pytest.raises(ValueError, match="pitch range"):
        modulate(score, 0, score.end() + 1, 100)
    assert modulate(score, 0, 0, 5).tracks[0].notes.numpy()["pitch"].tolist() == (
        score.tracks[0].notes.numpy()["pitch"].tolist()
    )
