"""Round-trip fidelity: how many notes survive encode -> decode, as precision / recall / F1.

Both scores are brought to one time base (`tpq` ticks per quarter, by default the tokenizer's
grid; for real-time tokenizers such as MIDICompact, their grid in seconds) by rounding every
onset and duration; a decoded note matches a reference note with the same pitch, an onset within
`onset_tol_ticks` grid steps and a duration within
``max(onset_tol_ticks, duration_tol * reference duration)``. Tempo and programs are ignored.

`roundtrip_fidelity` compares like with like: a decoded piece against the piece after the
encoding's documented transformations (`tokenizer.transformed`: Simplified MIDI drops leading
silence, MIDICompact applies the pedal and cuts notes held over 5 s), and reports apart what
those transformations change (transformed against raw) and the raw comparison.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import symusic
from symusic.core import ScoreTick

from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.parallel import Bounds, map_chunks, worker_state


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


# --- round trip over files ----------------------------------------------------------------------

RoundTrip = tuple[int, int, int]  # matched, reference notes, decoded notes
# the comparisons of one file, in the order of `roundtrip_fidelity`'s keys
COMPARISONS = ("roundtrip", "roundtrip_raw", "transform", "roundtrip_on_grid")


def compare_notes(
    tokenizer: MusicTokenizer,
    reference: symusic.Score,
    decoded: symusic.Score,
    onset_tol_ticks: int = 1,
    duration_tol: float = 0.2,
) -> RoundTrip:
    """(matched, reference notes, decoded notes) at the tokenizer's grid: seconds for real-time
    tokenizers (tempo-independent), else its positions per quarter."""
    step_s = time_grid_s(tokenizer)
    if step_s is not None:
        ref, dec = notes_at_seconds(reference, step_s), notes_at_seconds(decoded, step_s)
    else:
        base = int(getattr(tokenizer, "resolution", 0)) or decoded.ticks_per_quarter
        ref, dec = notes_at(reference, base), notes_at(decoded, base)
    return match_notes(ref, dec, onset_tol_ticks, duration_tol), len(ref), len(dec)


def transformed(tokenizer: MusicTokenizer, score: symusic.Score) -> symusic.Score:
    """`score` after the tokenizer's documented transformations (its `transformed` method;
    the score itself for tokenizers that document none)."""
    transform = getattr(tokenizer, "transformed", None)
    return transform(score) if transform is not None else score


def roundtrip_counts(
    tokenizer: MusicTokenizer, path: Path | str, onset_tol_ticks: int = 1
) -> tuple[RoundTrip, ...] | None:
    """The `COMPARISONS` counts of one file, or None when it fails (reported by the caller):

    roundtrip: decode(encode(piece)) against transformed(piece), within `onset_tol_ticks` grid
    steps; roundtrip_raw: the same against the piece itself; transform: transformed(piece)
    against the piece; roundtrip_on_grid: g = decode(encode(piece)) against decode(encode(g)),
    matched exactly (same pitch, onset and duration step)."""
    try:
        reference = symusic.Score(str(path))
        once = tokenizer.decode(tokenizer.encode(reference))
        twice = tokenizer.decode(tokenizer.encode(once))
        target = transformed(tokenizer, reference)
    except Exception:  # the stage reports files it cannot read or encode
        return None
    return (
        compare_notes(tokenizer, target, once, onset_tol_ticks),
        compare_notes(tokenizer, reference, once, onset_tol_ticks),
        compare_notes(tokenizer, reference, target, onset_tol_ticks),
        compare_notes(tokenizer, once, twice, 0, 0.0),
    )


def _roundtrip_chunk(bounds: Bounds) -> list[tuple[RoundTrip, ...] | None]:
    tokenizer, paths = worker_state()
    return [roundtrip_counts(tokenizer, paths[k]) for k in range(*bounds)]


def roundtrip_summary(counts: Sequence[RoundTrip | None]) -> dict[str, Any]:
    """Micro-averaged note P/R/F1 from per-file counts (None: a failed file)."""
    done = [c for c in counts if c is not None]
    if not done:
        return {"pieces": 0, "precision": None, "recall": None, "f1": None}
    matched, n_ref, n_dec = (sum(c[i] for c in done) for i in range(3))  # micro-average
    precision, recall, f1 = prf(matched, n_ref, n_dec)
    rounded = (round(float(x), 6) for x in (precision, recall, f1))
    return dict(zip(("pieces", "precision", "recall", "f1"), (len(done), *rounded), strict=True))


def roundtrip_fidelity(
    tokenizer: MusicTokenizer, paths: Sequence[Path | str], workers: int = 1
) -> dict[str, dict[str, Any]]:
    """Micro-averaged note P/R/F1 over `paths` for each of `COMPARISONS` (see
    `roundtrip_counts`), each {"pieces", "precision", "recall", "f1"}; files that fail to
    load or encode are left out of every comparison."""
    chunks = map_chunks(tokenizer, _roundtrip_chunk, paths, workers, "round-trip")
    counts = [c for chunk in chunks for c in chunk]
    return {
        name: roundtrip_summary([c[k] if c else None for c in counts])
        for k, name in enumerate(COMPARISONS)
    }
