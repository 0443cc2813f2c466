"""The augment stage on real chorales: copies for train only, deterministic, truthful manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import symusic

from midilm.augment.manifest import MANIFEST_COLUMNS
from midilm.augment.stage import run_augment
from midilm.augment.transforms import bar_lines
from midilm.common.paths import Layout


def _all_pitches(path: Path) -> np.ndarray:
    score = symusic.Score(str(path))
    return np.concatenate([t.notes.numpy()["pitch"].astype(int) for t in score.tracks])


def test_copies_only_train_pieces(params: dict[str, Any], split_layout: Layout) -> None:
    params["augment"]["modulation"]["enabled"] = False  # whole-piece shifts: pitches comparable
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
        assert row.n_notes == source["n_notes"] and 0.9 <= transforms["tempo"] <= 1.1
        assert row.duration_s == pytest.approx(source["duration_s"] / transforms["tempo"], 1e-3)
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


def test_modulation_shifts_only_its_segment(params: dict[str, Any], split_layout: Layout) -> None:
    aug = params["augment"]
    aug["transpose"]["enabled"] = aug["tempo"]["enabled"] = aug["velocity"]["enabled"] = False
    aug["modulation"]["probability"] = 1.0
    summary = run_augment(params, split_layout)
    assert summary["by_transform"]["modulation"] == 16 == summary["augmented_copies"]
    manifest = pd.read_parquet(split_layout.augment_manifest).set_index("id")
    for row in manifest[manifest["augmented"]].itertuples():
        mod = json.loads(row.transforms)["modulation"]
        assert mod["semitones"] != 0 and -2 <= mod["semitones"] <= 2 and mod["start"] < mod["end"]
        source = symusic.Score(str(split_layout.root / manifest.loc[row.source_id, "path"]))
        copy = symusic.Score(str(split_layout.root / row.path))
        bars = bar_lines(source)
        assert mod["start"] in bars and (mod["end"] in bars or mod["end"] > source.end())
        for before, after in zip(source.tracks, copy.tracks, strict=True):
            a, b = before.notes.numpy(), after.notes.numpy()
            inside = (a["time"] >= mod["start"]) & (a["time"] < mod["end"])
            shift = np.where(inside, mod["semitones"], 0)
            np.testing.assert_array_equal(b["pitch"].astype(int), a["pitch"].astype(int) + shift)
            np.testing.assert_array_equal(b["time"], a["time"])


def test_all_keys_mode_writes_one_copy_per_key(
    params: dict[str, Any], split_layout: Layout
) -> None:
    aug = params["augment"]
    aug["transpose"].update(mode="all_keys", min_semitones=-2, max_semitones=3)
    aug["modulation"]["enabled"] = aug["tempo"]["enabled"] = False
    summary = run_augment(params, split_layout)
    manifest = pd.read_parquet(split_layout.augment_manifest)
    copies = manifest[manifest["augmented"]]
    shifts = copies.groupby("source_id")["transforms"].apply(
        lambda t: sorted(json.loads(x)["transpose"] for x in t)
    )
    assert summary["multiplicity"] == 5 and len(copies) == 8 * 5
    assert all(s == [-2, -1, 1, 2, 3] for s in shifts)


def test_thesis_profile_triples_the_train_split(
    params: dict[str, Any], split_layout: Layout, repo_root: Path
) -> None:
    from omegaconf import OmegaConf

    from midilm.common.compose import compose_params_text

    thesis = OmegaConf.create(compose_params_text(repo_root / "conf", ["augment=thesis"]))
    params["augment"] = OmegaConf.to_container(thesis.augment)
    summary = run_augment(params, split_layout)
    assert summary["multiplicity"] == 3 and summary["augmented_copies"] == 3 * 8
    assert summary["by_transform"]["tempo"] == 24 and summary["by_transform"]["modulation"] > 0
