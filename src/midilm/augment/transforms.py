"""Pure transforms on symusic Scores; each returns a new Score and never mutates its input.

Pitch ranges are half-open ``(low, high)`` like MidiTok's ``pitch_range``: ``(0, 128)`` is all of
MIDI, ``(21, 109)`` is the default REMI piano range. Drum tracks are never transposed (their
pitches name instruments).
"""

from __future__ import annotations

import numpy as np
import symusic
from symusic.core import ScoreTick

MIDI_PITCH_RANGE: tuple[int, int] = (0, 128)


def pitched_span(score: ScoreTick) -> tuple[int, int] | None:
    """Lowest and highest pitch over non-drum tracks, or None when no pitched note exists."""
    lows, highs = [], []
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        pitches = track.notes.numpy()["pitch"]
        lows.append(int(pitches.min()))
        highs.append(int(pitches.max()))
    if not lows:
        return None
    return min(lows), max(highs)


def feasible_shifts(
    score: ScoreTick, pitch_range: tuple[int, int] = MIDI_PITCH_RANGE
) -> tuple[int, int]:
    """Inclusive interval of shifts that keep every pitched note inside `pitch_range`.

    A piece with no pitched note can take any shift; a piece wider than the range (or already
    outside it) only gets ``(0, 0)``: it is left as it is rather than partly clipped.
    """
    low, high = int(pitch_range[0]), int(pitch_range[1]) - 1
    span = pitched_span(score)
    if span is None:
        return low - high, high - low
    lo_shift, hi_shift = low - span[0], high - span[1]
    if lo_shift > hi_shift or lo_shift > 0 or hi_shift < 0:
        return 0, 0
    return lo_shift, hi_shift


def clamp_shift(
    score: ScoreTick, semitones: int, pitch_range: tuple[int, int] = MIDI_PITCH_RANGE
) -> int:
    """The shift nearest to `semitones` that keeps the piece inside `pitch_range`."""
    lo_shift, hi_shift = feasible_shifts(score, pitch_range)
    return int(min(max(int(semitones), lo_shift), hi_shift))


def transpose(
    score: ScoreTick, semitones: int, pitch_range: tuple[int, int] = MIDI_PITCH_RANGE
) -> ScoreTick:
    """Shift every non-drum note by `semitones`, clamped by `clamp_shift` so no note leaves
    `pitch_range` (no note is ever dropped or folded). Use `clamp_shift` to know the shift applied.
    """
    shift = clamp_shift(score, semitones, pitch_range)
    out = score.copy()
    if shift == 0:
        return out
    for track in out.tracks:
        if not track.is_drum:
            track.shift_pitch(shift, inplace=True)
    return out


def jitter_velocity(score: ScoreTick, rng: np.random.Generator, jitter: int) -> ScoreTick:
    """Add an independent uniform integer in [-jitter, jitter] to each note's velocity, clipped
    to 1..127. Draws follow track then note order, so a seeded `rng` gives the same result."""
    out = score.copy()
    if jitter <= 0:
        return out
    for track in out.tracks:
        if len(track.notes) == 0:
            continue
        notes = track.notes.numpy()
        delta = rng.integers(-jitter, jitter + 1, size=notes["velocity"].size)
        velocity = np.clip(notes["velocity"].astype(np.int32) + delta, 1, 127).astype(np.int8)
        track.notes = symusic.Note.from_numpy(
            notes["time"], notes["duration"], notes["pitch"], velocity, out.ttype
        )
    return out


def bar_lines(score: ScoreTick) -> np.ndarray:
    """Tick of every bar line up to the score's end, from its time signatures (4/4 if none)."""
    end = int(score.end())
    tpq = int(score.ticks_per_quarter)
    sigs = sorted(
        (int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures
    )
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    bars: list[np.ndarray] = []
    for i, (time, num, den) in enumerate(sigs):
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else end + 1
        length = max(tpq * 4 * num // den, 1)
        bars.append(np.arange(time, max(stop, time + 1), length, dtype=np.int64))
    lines = np.unique(np.concatenate(bars))
    return lines[lines <= end]


def segment_span(score: ScoreTick, start: int, end: int) -> tuple[int, int] | None:
    """Lowest and highest pitch of non-drum notes with onset in [start, end), or None."""
    lows, highs = [], []
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        notes = track.notes.numpy()
        inside = (notes["time"] >= start) & (notes["time"] < end)
        if inside.any():
            lows.append(int(notes["pitch"][inside].min()))
            highs.append(int(notes["pitch"][inside].max()))
    return (min(lows), max(highs)) if lows else None


def modulate(
    score: ScoreTick,
    start: int,
    end: int,
    semitones: int,
    pitch_range: tuple[int, int] = MIDI_PITCH_RANGE,
) -> ScoreTick:
    """Transpose the non-drum notes whose onset lies in [start, end) by `semitones`. The caller
    picks a shift that keeps the segment in `pitch_range` (see `segment_span`); a shift that
    would leave it raises ValueError rather than clip."""
    span = segment_span(score, start, end)
    if span is not None and (
        span[0] + semitones < pitch_range[0] or span[1] + semitones >= pitch_range[1]
    ):
        raise ValueError(f"modulation by {semitones} leaves pitch range {pitch_range}")
    out = score.copy()
    if semitones == 0 or span is None:
        return out
    for track in out.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        notes = track.notes.numpy()
        inside = (notes["time"] >= start) & (notes["time"] < end)
        pitch = np.where(inside, notes["pitch"].astype(np.int32) + semitones, notes["pitch"])
        track.notes = symusic.Note.from_numpy(
            notes["time"], notes["duration"], pitch.astype(np.int8), notes["velocity"], out.ttype
        )
    return out


def scale_tempo(score: ScoreTick, factor: float) -> ScoreTick:
    """Multiply every tempo by `factor` (> 1: faster), so every time in seconds is divided by it;
    ticks are unchanged. A score without tempo events gets one at tick 0 (MIDI's 120 BPM)."""
    if factor <= 0:
        raise ValueError(f"tempo factor must be > 0, got {factor}")
    out = score.copy()
    if len(out.tempos) == 0:
        out.tempos.append(symusic.Tempo(0, qpm=120.0, ttype=out.ttype))
    for tempo in out.tempos:
        tempo.mspq = max(round(tempo.mspq / factor), 1)
    return out
