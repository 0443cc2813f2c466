"""Augmented copies of train pieces: transposed, modulated, tempo-scaled, velocity-jittered,
each seeded by (run seed, piece id, copy index) so the result never depends on order or workers."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import symusic
from tqdm import tqdm

from midilm.augment.transforms import (
    bar_lines,
    feasible_shifts,
    jitter_velocity,
    modulate,
    scale_tempo,
    segment_span,
)
from midilm.augment.transforms import transpose as transpose_score
from midilm.common.logging import progress_disabled
from midilm.common.seeding import derive_seed
from midilm.specs.augment import AugmentSpec

Result = tuple[list[dict[str, Any]], str | None]  # one piece's copies' manifest rows, or an error


def augment_score(
    score: symusic.core.ScoreTick,
    config: AugmentSpec,
    rng: np.random.Generator,
    shift: int | None = None,
) -> tuple[symusic.core.ScoreTick, dict[str, Any]] | None:
    """One augmented copy and the transforms applied (JSON-able), in the order transpose,
    modulation, tempo, velocity; None when a forced `shift` (all_keys) leaves the pitch range.

    A random shift is drawn uniformly from [min_semitones, max_semitones] intersected with the
    shifts that keep the piece in `pitch_range`; when they do not intersect it is 0.
    """
    transforms: dict[str, Any] = {}
    out = score
    if config.transpose.enabled:
        lo, hi = feasible_shifts(score, config.transpose.pitch_range)
        if shift is not None and not lo <= shift <= hi:
            return None
        lo, hi = max(lo, config.transpose.min_semitones), min(hi, config.transpose.max_semitones)
        if shift is None:
            shift = int(rng.integers(lo, hi + 1)) if lo <= hi else 0
        out = transpose_score(out, shift, config.transpose.pitch_range)
        transforms["transpose"] = shift
    if config.modulation.enabled and rng.random() < config.modulation.probability:
        segment = draw_modulation(out, config, rng)
        if segment is not None:
            out = modulate(out, *segment, config.transpose.pitch_range)
            transforms["modulation"] = dict(
                zip(("start", "end", "semitones"), segment, strict=True)
            )
    if config.tempo.enabled:
        factor = round(float(rng.uniform(config.tempo.min_factor, config.tempo.max_factor)), 3)
        out = scale_tempo(out, factor)
        transforms["tempo"] = factor
    if config.velocity.enabled and config.velocity.jitter > 0:
        out = jitter_velocity(out, rng, config.velocity.jitter)
        transforms["velocity_jitter"] = config.velocity.jitter
    return out, transforms


def draw_modulation(
    score: symusic.core.ScoreTick, config: AugmentSpec, rng: np.random.Generator
) -> tuple[int, int, int] | None:
    """A segment [start, end) covering a random fraction of the piece (starting and ending on
    bar lines when `bar_aligned`) and a non-zero shift keeping it in range; None if impossible."""
    end_tick = int(score.end())
    onsets = np.unique(np.concatenate([t.notes.numpy()["time"] for t in score.tracks] or [[]]))
    cuts = bar_lines(score) if config.modulation.bar_aligned else onsets.astype(np.int64)
    cuts = cuts[cuts < end_tick]
    if end_tick <= 0 or cuts.size == 0:
        return None
    length = int(
        rng.uniform(config.modulation.min_fraction, config.modulation.max_fraction) * end_tick
    )
    start = int(cuts[rng.integers(0, cuts.size)])
    end = start + max(length, 1)
    if config.modulation.bar_aligned:
        later = bar_lines(score)
        later = later[later >= end]
        end = int(later[0]) if later.size else end_tick + 1
    end = min(end, end_tick + 1)
    span = segment_span(score, start, end)
    if span is None:
        return None
    lo = max(config.modulation.min_semitones, config.transpose.pitch_range[0] - span[0])
    hi = min(config.modulation.max_semitones, config.transpose.pitch_range[1] - 1 - span[1])
    shifts = [s for s in range(lo, hi + 1) if s != 0]
    if not shifts:
        return None
    return start, end, int(shifts[int(rng.integers(0, len(shifts)))])


def copy_name(piece_id: str, k: int) -> str:
    return f"{piece_id}__aug{k}"


def augment_piece(
    row: dict[str, Any], config: AugmentSpec, root: Path, tmp_dir: Path, final_dir: Path
) -> tuple[list[dict[str, Any]], str | None]:
    """Write the copies of one train piece; returns their manifest rows, or an error message."""
    src = root / row["path"]
    try:
        score = symusic.Score(str(src))
    except Exception as exc:  # reported in summary.json, never a crash
        return [], f"load_error: {type(exc).__name__}: {exc}"
    rows = []
    for k, shift in enumerate(config.copy_shifts(), start=1):
        rng = np.random.default_rng(derive_seed(config.seed, row["id"], k))
        result = augment_score(score, config, rng, shift)
        if result is None:  # all_keys: this key leaves the pitch range
            continue
        copy, transforms = result
        rel = Path("midi") / f"{copy_name(row['id'], k)}.mid"
        (tmp_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        copy.dump_midi(str(tmp_dir / rel))
        rows.append(
            {
                "id": copy_name(row["id"], k),
                "source_id": row["id"],
                "dataset": row["dataset"],
                "split": row["split"],
                "path": (final_dir / rel).relative_to(root).as_posix(),
                "augmented": True,
                "transforms": json.dumps(transforms, sort_keys=True),
                "n_notes": row["n_notes"],  # transforms keep every note
                "duration_s": (
                    float(copy.to("second").end()) if "tempo" in transforms else row["duration_s"]
                ),
            }
        )
    return rows, None


def augment_all(
    todo: list[dict[str, Any]],
    config: AugmentSpec,
    root: Path,
    tmp: Path,
    final_dir: Path,
    workers: int,
) -> list[Result]:
    """Write the copies of every piece in `todo` under `tmp`; one result per piece, in order."""
    args = [(r, config, root, tmp, final_dir) for r in todo]
    bar = dict(total=len(args), desc="augment", disable=progress_disabled())
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(tqdm(pool.map(_augment_star, args, chunksize=8), **bar))
    return [_augment_star(a) for a in tqdm(args, **bar)]


def _augment_star(args: tuple) -> tuple[list[dict[str, Any]], str | None]:
    return augment_piece(*args)
