"""The augmented manifest: every piece to tokenize (originals of all splits and the train copies),
and the summary of what augmentation did."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from midilm.augment.copies import Result
from midilm.common.io import write_json_atomic, write_parquet_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.specs.augment import AugmentSpec

log = get_logger(__name__)

SPLIT_COLUMNS = [
    "id",
    "dataset",
    "source",
    "path",
    "content_hash",
    "duration_s",
    "n_notes",
    "n_tracks",
    "license",
    "split",
]
MANIFEST_COLUMNS = [
    "id",
    "source_id",
    "dataset",
    "split",
    "path",
    "augmented",
    "transforms",
    "n_notes",
    "duration_s",
]


def inputs(layout: Layout, config: AugmentSpec) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
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


def assemble(
    tmp: Path,
    layout: Layout,
    config: AugmentSpec,
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


def _summary(
    manifest: pd.DataFrame, config: AugmentSpec, failed: list[dict[str, str]]
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
