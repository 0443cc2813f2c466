"""The augment stage: transposed, velocity-jittered copies of TRAIN pieces, and the manifest of
every piece to tokenize (originals of all splits + the copies)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import symusic
from omegaconf import DictConfig
from tqdm import tqdm

from midilm.augment.transforms import MIDI_PITCH_RANGE, feasible_shifts, jitter_velocity
from midilm.augment.transforms import transpose as transpose_score
from midilm.common.io import atomic_dir, write_json_atomic, write_parquet_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.params import to_plain
from midilm.common.paths import Layout

log = get_logger(__name__)

SPLIT_COLUMNS = ["id", "dataset", "source", "path", "content_hash", "duration_s", "n_notes",
                 "n_tracks", "license", "split"]  # fmt: skip
MANIFEST_COLUMNS = ["id", "source_id", "dataset", "split", "path", "augmented", "transforms",
                    "n_notes", "duration_s"]  # fmt: skip


@dataclass(frozen=True)
class AugmentConfig:
    """params.yaml's `augment` group, plus the run seed."""

    seed: int
    multiplicity: int
    transpose: bool
    min_semitones: int
    max_semitones: int
    pitch_range: tuple[int, int]
    velocity: bool
    jitter: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | DictConfig) -> AugmentConfig:
        plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
        aug = plain["augment"]
        tr, vel = aug.get("transpose", {}) or {}, aug.get("velocity", {}) or {}
        config = cls(
            seed=int(plain["seed"]),
            multiplicity=int(aug.get("multiplicity", 0)),
            transpose=bool(tr.get("enabled", False)),
            min_semitones=int(tr.get("min_semitones", 0)),
            max_semitones=int(tr.get("max_semitones", 0)),
            pitch_range=tuple(tr.get("pitch_range") or MIDI_PITCH_RANGE),  # type: ignore[arg-type]
            velocity=bool(vel.get("enabled", False)),
            jitter=int(vel.get("jitter", 0)),
        )
        if config.multiplicity < 0 or config.min_semitones > config.max_semitones:
            raise ValueError(
                "params.yaml augment: need multiplicity >= 0 and min_semitones <= max_semitones "
                f"(got {config.multiplicity}, {config.min_semitones}..{config.max_semitones})"
            )
        return config


def piece_seed(seed: int, source_id: str, k: int) -> int:
    """A 64-bit seed from (run seed, piece id, copy index): independent of order and workers."""
    digest = hashlib.sha256(f"{seed}\x1f{source_id}\x1f{k}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def augment_score(
    score: symusic.core.ScoreTick, config: AugmentConfig, rng: np.random.Generator
) -> tuple[symusic.core.ScoreTick, dict[str, int]]:
    """One augmented copy and the transforms applied (JSON-able, e.g. {"transpose": 3}).

    The shift is drawn uniformly from [min_semitones, max_semitones] intersected with the shifts
    that keep the piece in `pitch_range`; when they do not intersect the piece is not transposed.
    """
    transforms: dict[str, int] = {}
    out = score
    if config.transpose:
        lo, hi = feasible_shifts(score, config.pitch_range)
        lo, hi = max(lo, config.min_semitones), min(hi, config.max_semitones)
        shift = int(rng.integers(lo, hi + 1)) if lo <= hi else 0
        out = transpose_score(out, shift, config.pitch_range)
        transforms["transpose"] = shift
    if config.velocity and config.jitter > 0:
        out = jitter_velocity(out, rng, config.jitter)
        transforms["velocity_jitter"] = config.jitter
    return out, transforms


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
    for k in range(1, config.multiplicity + 1):
        rng = np.random.default_rng(piece_seed(config.seed, row["id"], k))
        copy, transforms = augment_score(score, config, rng)
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
                "n_notes": row["n_notes"],  # transforms keep every note and every time
                "duration_s": row["duration_s"],
            }
        )
    return rows, None


def run_augment(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, workers: int = 1
) -> dict[str, Any]:
    """Run the stage; returns the summary written to `augment_dir/summary.json`."""
    layout = layout or Layout()
    config = AugmentConfig.from_params(params)
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
    todo = train if config.multiplicity > 0 else []

    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    with atomic_dir(layout.augment_dir) as tmp:
        args = [(r, config, layout.root, tmp, layout.augment_dir) for r in todo]
        bar = dict(total=len(args), desc="augment", disable=progress_disabled())
        if workers > 1 and len(args) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(tqdm(pool.map(_augment_star, args, chunksize=8), **bar))
        else:
            results = [_augment_star(a) for a in tqdm(args, **bar)]
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
    log.info(
        "augment: %d pieces -> %d (%d copies)",
        summary["pieces_before"],
        summary["pieces_after"],
        summary["augmented_copies"],
    )
    return summary


def _augment_star(args: tuple) -> tuple[list[dict[str, Any]], str | None]:
    return _augment_piece(*args)


def _summary(
    manifest: pd.DataFrame, config: AugmentConfig, failed: list[dict[str, str]]
) -> dict[str, Any]:
    copies = manifest[manifest["augmented"]]
    transforms = [json.loads(t) for t in copies["transforms"]]
    by_transform = {
        "transpose": sum(1 for t in transforms if t.get("transpose", 0) != 0),
        "velocity_jitter": sum(1 for t in transforms if "velocity_jitter" in t),
    }
    shifts = Counter(t["transpose"] for t in transforms if "transpose" in t)
    return {
        "pieces_before": int((~manifest["augmented"]).sum()),
        "pieces_after": len(manifest),
        "augmented_copies": len(copies),
        "multiplicity": config.multiplicity,
        "by_transform": by_transform,
        "transpose_semitones": {str(k): shifts[k] for k in sorted(shifts)},
        "failed": failed,
    }
