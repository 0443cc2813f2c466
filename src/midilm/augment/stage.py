"""The augment stage: transposed, modulated, tempo-scaled, velocity-jittered copies of TRAIN
pieces, and the manifest of every piece to tokenize (originals of all splits + the copies)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import symusic
from omegaconf import DictConfig
from tqdm import tqdm

from midilm.augment.transforms import (
    MIDI_PITCH_RANGE,
    bar_lines,
    feasible_shifts,
    jitter_velocity,
    modulate,
    scale_tempo,
    segment_span,
)
from midilm.augment.transforms import transpose as transpose_score
from midilm.common.hashing import stable_json_hash
from midilm.common.io import atomic_dir, read_json, write_json_atomic, write_parquet_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.params import to_plain
from midilm.common.paths import Layout
from midilm.orchestration.shards import (
    ShardRole,
    clear_shards,
    complete_shards,
    shard_dir,
    shard_role,
    shards_root,
    take,
    write_shard_meta,
)

log = get_logger(__name__)

TRANSPOSE_MODES = ("random", "all_keys")

SPLIT_COLUMNS = ["id", "dataset", "source", "path", "content_hash", "duration_s", "n_notes",
                 "n_tracks", "license", "split"]  # fmt: skip
MANIFEST_COLUMNS = ["id", "source_id", "dataset", "split", "path", "augmented", "transforms",
                    "n_notes", "duration_s"]  # fmt: skip


@dataclass(frozen=True)
class AugmentConfig:
    """params.yaml's `augment` group, plus the run seed (see conf/augment/default.yaml)."""

    seed: int
    multiplicity: int
    transpose: bool
    min_semitones: int
    max_semitones: int
    pitch_range: tuple[int, int]
    velocity: bool
    jitter: int
    transpose_mode: str = "random"
    modulation: bool = False
    modulation_probability: float = 1.0
    modulation_semitones: tuple[int, int] = (-2, 2)
    modulation_fraction: tuple[float, float] = (0.25, 0.5)
    bar_aligned: bool = True
    tempo: bool = False
    tempo_factor: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | DictConfig) -> AugmentConfig:
        plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
        aug = plain["augment"]
        tr, vel = aug.get("transpose", {}) or {}, aug.get("velocity", {}) or {}
        mod, tempo = aug.get("modulation", {}) or {}, aug.get("tempo", {}) or {}
        config = cls(
            seed=int(plain["seed"]),
            multiplicity=int(aug.get("multiplicity", 0)),
            transpose=bool(tr.get("enabled", False)),
            min_semitones=int(tr.get("min_semitones", 0)),
            max_semitones=int(tr.get("max_semitones", 0)),
            pitch_range=tuple(tr.get("pitch_range") or MIDI_PITCH_RANGE),  # type: ignore[arg-type]
            velocity=bool(vel.get("enabled", False)),
            jitter=int(vel.get("jitter", 0)),
            transpose_mode=str(tr.get("mode", "random")),
            modulation=bool(mod.get("enabled", False)),
            modulation_probability=float(mod.get("probability", 1.0)),
            modulation_semitones=(
                int(mod.get("min_semitones", -2)),
                int(mod.get("max_semitones", 2)),
            ),
            modulation_fraction=(
                float(mod.get("min_fraction", 0.25)),
                float(mod.get("max_fraction", 0.5)),
            ),
            bar_aligned=bool(mod.get("bar_aligned", True)),
            tempo=bool(tempo.get("enabled", False)),
            tempo_factor=(float(tempo.get("min_factor", 1.0)), float(tempo.get("max_factor", 1.0))),
        )
        config.check()
        return config

    def check(self) -> None:
        """Raise a ValueError naming the params.yaml key that is out of range."""
        problems = []
        if self.multiplicity < 0 or self.min_semitones > self.max_semitones:
            problems.append("multiplicity >= 0 and transpose.min_semitones <= max_semitones")
        if self.transpose_mode not in TRANSPOSE_MODES:
            problems.append(f"transpose.mode in {TRANSPOSE_MODES}")
        if self.modulation_semitones[0] > self.modulation_semitones[1]:
            problems.append("modulation.min_semitones <= max_semitones")
        if not 0 < self.modulation_fraction[0] <= self.modulation_fraction[1] <= 1:
            problems.append("0 < modulation.min_fraction <= max_fraction <= 1")
        if not 0 < self.tempo_factor[0] <= self.tempo_factor[1]:
            problems.append("0 < tempo.min_factor <= max_factor")
        if problems:
            raise ValueError(f"params.yaml augment: need {'; '.join(problems)} (got {self})")

    def copy_shifts(self) -> list[int | None]:
        """One entry per copy: the forced transposition (all_keys mode) or None (random)."""
        if self.transpose and self.transpose_mode == "all_keys":
            return [k for k in range(self.min_semitones, self.max_semitones + 1) if k != 0]
        return [None] * self.multiplicity


def piece_seed(seed: int, source_id: str, k: int) -> int:
    """A 64-bit seed from (run seed, piece id, copy index): independent of order and workers."""
    digest = hashlib.sha256(f"{seed}\x1f{source_id}\x1f{k}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def augment_score(
    score: symusic.core.ScoreTick,
    config: AugmentConfig,
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
    if config.transpose:
        lo, hi = feasible_shifts(score, config.pitch_range)
        if shift is not None and not lo <= shift <= hi:
            return None
        lo, hi = max(lo, config.min_semitones), min(hi, config.max_semitones)
        if shift is None:
            shift = int(rng.integers(lo, hi + 1)) if lo <= hi else 0
        out = transpose_score(out, shift, config.pitch_range)
        transforms["transpose"] = shift
    if config.modulation and rng.random() < config.modulation_probability:
        segment = draw_modulation(out, config, rng)
        if segment is not None:
            out = modulate(out, *segment, config.pitch_range)
            transforms["modulation"] = dict(
                zip(("start", "end", "semitones"), segment, strict=True)
            )
    if config.tempo:
        factor = round(float(rng.uniform(*config.tempo_factor)), 3)
        out = scale_tempo(out, factor)
        transforms["tempo"] = factor
    if config.velocity and config.jitter > 0:
        out = jitter_velocity(out, rng, config.jitter)
        transforms["velocity_jitter"] = config.jitter
    return out, transforms


def draw_modulation(
    score: symusic.core.ScoreTick, config: AugmentConfig, rng: np.random.Generator
) -> tuple[int, int, int] | None:
    """A segment [start, end) covering a random fraction of the piece (starting and ending on
    bar lines when `bar_aligned`) and a non-zero shift keeping it in range; None if impossible."""
    end_tick = int(score.end())
    onsets = np.unique(np.concatenate([t.notes.numpy()["time"] for t in score.tracks] or [[]]))
    cuts = bar_lines(score) if config.bar_aligned else onsets.astype(np.int64)
    cuts = cuts[cuts < end_tick]
    if end_tick <= 0 or cuts.size == 0:
        return None
    length = int(rng.uniform(*config.modulation_fraction) * end_tick)
    start = int(cuts[rng.integers(0, cuts.size)])
    end = start + max(length, 1)
    if config.bar_aligned:
        later = bar_lines(score)
        later = later[later >= end]
        end = int(later[0]) if later.size else end_tick + 1
    end = min(end, end_tick + 1)
    span = segment_span(score, start, end)
    if span is None:
        return None
    lo = max(config.modulation_semitones[0], config.pitch_range[0] - span[0])
    hi = min(config.modulation_semitones[1], config.pitch_range[1] - 1 - span[1])
    shifts = [s for s in range(lo, hi + 1) if s != 0]
    if not shifts:
        return None
    return start, end, int(shifts[int(rng.integers(0, len(shifts)))])


def _copy_name(piece_id: str, k: int) -> str:
    return f"{piece_id}__aug{k}"


def _augment_piece(
    row: dict[str, Any], config: AugmentConfig, root: Path, tmp_dir: Path, final_dir: Path
) -> tuple[list[dict[str, Any]], str | None]:
    """Write the copies of one train piece; returns their manifest rows, or an error message."""
    src = root / row["path"]
    try:
        score = symusic.Score(str(src))
    except Exception as exc:  # reported in summary.json, never a crash
        return [], f"load_error: {type(exc).__name__}: {exc}"
    rows = []
    for k, shift in enumerate(config.copy_shifts(), start=1):
        rng = np.random.default_rng(piece_seed(config.seed, row["id"], k))
        result = augment_score(score, config, rng, shift)
        if result is None:  # all_keys: this key leaves the pitch range
            continue
        copy, transforms = result
        rel = Path("midi") / f"{_copy_name(row['id'], k)}.mid"
        (tmp_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        copy.dump_midi(str(tmp_dir / rel))
        rows.append(
            {
                "id": _copy_name(row["id"], k),
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


Result = tuple[list[dict[str, Any]], str | None]  # one piece's copies' manifest rows, or an error


def run_augment(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, workers: int = 1
) -> dict[str, Any]:
    """Run the stage; returns the summary written to `augment_dir/summary.json`.

    Sharded over a Slurm job array (midilm.orchestration.shards) when MIDILM_SHARD_COUNT is set:
    a shard run augments every count-th train piece into its shard folder (and returns a short
    summary of its part), the merge run assembles data/augmented from every shard. The output is
    byte-identical to the unsharded run's: each copy's seed depends only on (seed, piece, k).
    """
    layout = layout or Layout()
    config = AugmentConfig.from_params(params)
    originals, todo = _inputs(layout, config)
    role = shard_role()
    if role is not None and role.index is not None:
        return _run_shard(layout, config, todo, role, workers)

    with atomic_dir(layout.augment_dir) as tmp:
        if role is None:
            results = _augment_all(todo, config, layout, tmp, workers)
        else:
            results = _merge_shards(layout, config, todo, role.count, tmp)
        summary = _assemble(tmp, layout, config, originals, todo, results)
    if role is not None:
        clear_shards(layout.augment_dir)
    log.info(
        "augment: %d pieces -> %d (%d copies)",
        summary["pieces_before"],
        summary["pieces_after"],
        summary["augmented_copies"],
    )
    return summary


def _inputs(layout: Layout, config: AugmentConfig) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The manifest rows of every original piece, and the train pieces to augment (by id)."""
    if not layout.split_manifest.exists():
        raise FileNotFoundError(
            f"{layout.split_manifest}: split manifest missing; run `dvc repro split` first."
        )
    split = pd.read_parquet(layout.split_manifest)
    missing = sorted(set(SPLIT_COLUMNS) - set(split.columns))
    if missing:
        raise ValueError(f"{layout.split_manifest}: missing columns {missing}; re-run split.")

    originals = pd.DataFrame(
        {
            "id": split["id"],
            "source_id": split["id"],
            "dataset": split["dataset"],
            "split": split["split"],
            "path": split["path"],
            "augmented": False,
            "transforms": "{}",
            "n_notes": split["n_notes"],
            "duration_s": split["duration_s"],
        }
    )
    train = split[split["split"] == "train"].sort_values("id").to_dict("records")
    return originals, train if config.copy_shifts() else []


def _augment_all(
    todo: list[dict[str, Any]], config: AugmentConfig, layout: Layout, tmp: Path, workers: int
) -> list[Result]:
    """Write the copies of every piece in `todo` under `tmp`; one result per piece, in order."""
    args = [(r, config, layout.root, tmp, layout.augment_dir) for r in todo]
    bar = dict(total=len(args), desc="augment", disable=progress_disabled())
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(tqdm(pool.map(_augment_star, args, chunksize=8), **bar))
    return [_augment_star(a) for a in tqdm(args, **bar)]


def _assemble(
    tmp: Path,
    layout: Layout,
    config: AugmentConfig,
    originals: pd.DataFrame,
    todo: list[dict[str, Any]],
    results: list[Result],
) -> dict[str, Any]:
    """Write manifest.parquet and summary.json beside the copies in `tmp`; the summary."""
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for piece, (piece_rows, error) in zip(todo, results, strict=True):
        rows.extend(piece_rows)
        if error is not None:
            log.warning("augment: no copies of %s (%s: %s)", piece["id"], piece["path"], error)
            failed.append({"id": piece["id"], "reason": error})

    copies = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest = pd.concat([originals, copies], ignore_index=True) if rows else originals
    manifest = manifest.sort_values("id", kind="stable").reset_index(drop=True)
    manifest["augmented"] = manifest["augmented"].astype(bool)
    summary = _summary(manifest, config, failed)
    write_parquet_atomic(tmp / layout.augment_manifest.name, manifest[MANIFEST_COLUMNS])
    write_json_atomic(tmp / "summary.json", summary)
    return summary


SHARD_RESULTS = "results.json"


def _shard_fingerprint(config: AugmentConfig, todo: list[dict[str, Any]], count: int) -> str:
    """What a shard's part depends on: params, the pieces to augment (and their files), count."""
    pieces = [[r["id"], r["path"], r.get("content_hash")] for r in todo]
    return stable_json_hash({"config": asdict(config), "pieces": pieces, "count": count})


def _run_shard(
    layout: Layout,
    config: AugmentConfig,
    todo: list[dict[str, Any]],
    role: ShardRole,
    workers: int,
) -> dict[str, Any]:
    """Augment this shard's pieces into its shard folder (atomically); a summary of its part."""
    mine = take(todo, role)
    with atomic_dir(shard_dir(layout.augment_dir, role)) as tmp:
        results = _augment_all(mine, config, layout, tmp, workers)
        by_piece = {piece["id"]: result for piece, result in zip(mine, results, strict=True)}
        write_json_atomic(tmp / SHARD_RESULTS, by_piece)
        write_shard_meta(tmp, role, _shard_fingerprint(config, todo, role.count))
    copies = sum(len(rows) for rows, _ in results)
    log.info("augment %s: %d pieces -> %d copies", role.name, len(mine), copies)
    return {"shard": role.index, "count": role.count, "pieces": len(mine), "copies": copies}


def _merge_shards(
    layout: Layout, config: AugmentConfig, todo: list[dict[str, Any]], count: int, tmp: Path
) -> list[Result]:
    """Rename every shard's MIDI copies into `tmp` (shards sit beside it: same filesystem); every
    piece's result, in `todo` order (the unsharded run's order)."""
    fingerprint = _shard_fingerprint(config, todo, count)
    by_piece: dict[str, Result] = {}
    folders = complete_shards(layout.augment_dir, count, fingerprint)
    for folder in folders:
        for piece_id, (rows, error) in read_json(folder / SHARD_RESULTS).items():
            by_piece[piece_id] = (rows, error)
    missing = [piece["id"] for piece in todo if piece["id"] not in by_piece]
    if missing:
        raise ValueError(f"{shards_root(layout.augment_dir)}: no shard holds {missing[:5]}")
    for folder in folders:
        for src in sorted(folder.rglob("*.mid")):
            dest = tmp / src.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    return [by_piece[piece["id"]] for piece in todo]


def _augment_star(args: tuple) -> tuple[list[dict[str, Any]], str | None]:
    return _augment_piece(*args)


def _summary(
    manifest: pd.DataFrame, config: AugmentConfig, failed: list[dict[str, str]]
) -> dict[str, Any]:
    copies = manifest[manifest["augmented"]]
    transforms = [json.loads(t) for t in copies["transforms"]]
    by_transform = {
        "transpose": sum(1 for t in transforms if t.get("transpose", 0) != 0),
        "modulation": sum(1 for t in transforms if "modulation" in t),
        "tempo": sum(1 for t in transforms if "tempo" in t),
        "velocity_jitter": sum(1 for t in transforms if "velocity_jitter" in t),
    }
    shifts = Counter(t["transpose"] for t in transforms if "transpose" in t)
    return {
        "pieces_before": int((~manifest["augmented"]).sum()),
        "pieces_after": len(manifest),
        "augmented_copies": len(copies),
        "multiplicity": len(config.copy_shifts()),
        "by_transform": by_transform,
        "transpose_semitones": {str(k): shifts[k] for k in sorted(shifts)},
        "failed": failed,
    }
