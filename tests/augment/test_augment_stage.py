"""The augment stage on real chorales: copies for train only, deterministic, truthful manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import symusic

from midilm.augment.stage import MANIFEST_COLUMNS, run_augment
from midilm.common.paths import Layout


def _all_pitches(path: Path) -> np.ndarray:
    score = symusic.Score(str(path))
    return np.concatenate([t.notes.numpy()["pitch"].astype(int) for t in score.tracks])


def test_copies_only_train_pieces(params: dict[str, Any], split_layout: Layout) -> None:
    summary = run_augment(params, split_layout)
    manifest = pd.read_parquet(split_layout.augment_manifest)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["id"].is_unique and manifest["id"].is_monotonic_increasing
    copies = manifest[manifest["augmented"]]
    originals = manifest[~manifest["augmented"]]
    assert len(originals) == 12 and len(copies) == 2 * 8
    assert set(copies["split"]) == {"train"}
    assert set(originals["split"]) == {"train", "valid", "test"}
    assert (originals["path"].str.startswith("data/raw/midi/")).all()
    assert summary["pieces_before"] == 12 and summary["pieces_after"] == 28
    assert summary["augmented_copies"] == 16 and summary["multiplicity"] == 2
    assert summary["by_transform"]["velocity_jitter"] == 16
    assert summary["by_transform"]["transpose"] > 8  # most copies are really transposed

    root = split_layout.root
    by_id = originals.set_index("id")
    for row in copies.itertuples():
        assert row.path == f"data/augmented/midi/{row.id}.mid" and row.id.endswith(("1", "2"))
        transforms = json.loads(row.transforms)
        assert transforms["velocity_jitter"] == 12 and -5 <= transforms["transpose"] <= 6
        source = by_id.loc[row.source_id]
        assert row.n_notes == source["n_notes"] and row.duration_s == source["duration_s"]
        np.testing.assert_array_equal(
            np.sort(_all_pitches(root / row.path)),
            np.sort(_all_pitches(root / source["path"]) + transforms["transpose"]),
        )


def test_output_is_deterministic_and_independent_of_workers(
    params: dict[str, Any], split_layout: Layout
) -> None:
    run_augment(params, split_layout)
    first = pd.read_parquet(split_layout.augment_manifest)
    files = {p: p.read_bytes() for p in sorted(split_layout.augment_dir.rglob("*.mid"))}
    summary = (split_layout.augment_dir / "summary.json").read_bytes()

    run_augment(params, split_layout, workers=2)
    pd.testing.assert_frame_equal(first, pd.read_parquet(split_layout.augment_manifest))
    assert files == {p: p.read_bytes() for p in sorted(split_layout.augment_dir.rglob("*.mid"))}
    assert summary == (split_layout.augment_dir / "summary.json").read_bytes()

    params["seed"] += 1
    run_augment(params, split_layout)
    assert not pd.read_parquet(split_layout.augment_manifest).equals(first)


def test_multiplicity_zero_keeps_originals_only(
    params: dict[str, Any], split_layout: Layout
) -> None:
    params["augment"]["multiplicity"] = 0
    summary = run_augment(params, split_layout)
    manifest = pd.read_parquet(split_layout.augment_manifest)
    assert len(manifest) == 12 and not manifest["augmented"].any()
    assert summary["augmented_copies"] == 0
    assert not list(split_layout.augment_dir.rglob("*.mid"))
