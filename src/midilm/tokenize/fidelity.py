"""Round-trip fidelity: how many notes survive encode -> decode, as precision / recall / F1.

Both scores are brought to one time base (`tpq` ticks per quarter, by default the tokenizer's
grid; for real-time tokenizers such as MIDICompact, their grid in seconds) by rounding every
onset and duration; a decoded note matches a reference note with the same pitch, an onset within
`onset_tol_ticks` grid steps and a duration within
``max(onset_tol_ticks, duration_tol * reference duration)``. Tempo and programs are ignored.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from symusic.core import ScoreTick


def notes_at(score: ScoreTick, tpq: int) -> np.ndarray:
    """All notes as an int64 array of rows (onset, duration, pitch) at `tpq` ticks per quarter."""
    parts = [track.notes.numpy() for track in score.tracks if len(track.notes)]
    if not parts:
        return np.zeros((0, 3), dtype=np.int64)
    scale = tpq / score.ticks_per_quarter
    time = np.concatenate([p["time"] for p in parts]).astype(np.float64) * scale
    dur = np.concatenate([p["duration"] for p in parts]).astype(np.float64) * scale
    pitch = np.concatenate([p["pitch"] for p in parts]).astype(np.int64)
    return np.stack([np.rint(time), np.maximum(np.rint(dur), 1), pitch], axis=1).astype(np.int64)


def notes_at_seconds(score: ScoreTick, step_s: float) -> np.ndarray:
    """Like `notes_at`, on a real-time grid of `step_s` seconds (for real-time tokenizers)."""
    timed = score.to("second")
    parts = [track.notes.numpy() for track in timed.tracks if len(track.notes)]
    if not parts:
        return np.zeros((0, 3), dtype=np.int64)
    time = np.concatenate([p["time"] for p in parts]).astype(np.float64) / step_s
    dur = np.concatenate([p["duration"] for p in parts]).astype(np.float64) / step_s
    pitch = np.concatenate([p["pitch"] for p in parts]).astype(np.int64)
    return np.stack([np.rint(time), np.maximum(np.rint(dur), 1), pitch], axis=1).astype(np.int64)


def time_grid_s(tokenizer: object) -> float | None:
    """The real-time grid in seconds of a tokenizer whose time unit is seconds (MIDICompact:
    `time_grid_s`, or its `config.step_s`); None for tokenizers on a beat grid."""
    grid = getattr(tokenizer, "time_grid_s", None)
    if grid is None:
        grid = getattr(getattr(tokenizer, "config", None), "step_s", None)
    return float(grid) if grid else None


def match_notes(
    reference: np.ndarray, decoded: np.ndarray, onset_tol_ticks: int = 1, duration_tol: float = 0.2
) -> int:
    """Count one-to-one matches between two `notes_at` arrays (greedy, nearest onset first)."""
    by_pitch: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for onset, dur, pitch in decoded.tolist():
        by_pitch[pitch].append((onset, dur))
    used: dict[int, np.ndarray] = {p: np.zeros(len(v), dtype=bool) for p, v in by_pitch.items()}
    arrays = {p: np.asarray(v, dtype=np.int64) for p, v in by_pitch.items()}
    matched = 0
    for onset, dur, pitch in sorted(reference.tolist()):
        cand = arrays.get(pitch)
        if cand is None:
            continue
        dur_tol = max(onset_tol_ticks, duration_tol * dur)
        gap = np.abs(cand[:, 0] - onset)
        ok = (~used[pitch]) & (gap <= onset_tol_ticks) & (np.abs(cand[:, 1] - dur) <= dur_tol)
        if ok.any():
            best = int(np.flatnonzero(ok)[np.argmin(gap[ok])])
            used[pitch][best] = True
            matched += 1
    return matched


def prf(matched: int, n_reference: int, n_decoded: int) -> tuple[float, float, float]:
    """Precision, recall, F1 from counts (an empty side counts as perfect only if both are)."""
    precision = matched / n_decoded if n_decoded else float(n_reference == 0)
    recall = matched / n_reference if n_reference else float(n_decoded == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def note_f1(
    reference: ScoreTick,
    decoded: ScoreTick,
    onset_tol_ticks: int = 1,
    *,
    tpq: int | None = None,
    duration_tol: float = 0.2,
) -> tuple[float, float, float]:
    """(precision, recall, f1) of `decoded` against `reference` at `tpq` (default: decoded's)."""
    tpq = int(tpq or decoded.ticks_per_quarter)
    ref, dec = notes_at(reference, tpq), notes_at(decoded, tpq)
    return prf(match_notes(ref, dec, onset_tol_ticks, duration_tol), len(ref), len(dec))
