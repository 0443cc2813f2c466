"""Dedup before splitting, official splits, and the leak check: no test piece (or duplicate of
one) in train, also across datasets with their own official splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from symusic import Score

from midilm.common.paths import Layout
from midilm.datasets.dedup import deduplicate
from midilm.datasets.listing import registry_tasks
from midilm.datasets.split import assign_splits
from midilm.datasets.stage import run_datasets, run_split
from midilm.specs.dataset import SourceSpec
from tests.datasets.params import rules

RATIOS = {"train": 0.8, "valid": 0.1, "test": 0.1}


def frame(rows: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": i, "dataset": i.split("/")[0], "source": i, "content_hash": h * 64,
          "transposition_hash": "t" * 64, "official_split": s, "duration_s": 1.0, "n_notes": 9}
         for i, h, s in rows]
    )  # fmt: skip


def test_keep_first_by_split_priority_then_id() -> None:
    manifest = frame([("a/1", "a", "train"), ("b/1", "a", "test"), ("c/1", "a", None),
                      ("a/2", "b", None), ("c/2", "b", None)])  # fmt: skip
    kept, report = deduplicate(manifest, "exact")
    assert sorted(kept["id"]) == ["a/2", "b/1"]
    assert dict(zip(report["id"], report["duplicate_of"], strict=True)) == {
        "a/1": "b/1", "c/1": "b/1", "c/2": "a/2",
    }  # fmt: skip
    assert len(deduplicate(manifest, "transposition")[0]) == 1
    assert deduplicate(manifest, "none")[0] is manifest


def test_equal_content_takes_the_strictest_official_split() -> None:
    manifest = frame([("a/1", "a", "train"), ("b/1", "a", "test"), ("c/1", "a", None)])
    assert assign_splits(manifest, RATIOS) == ["test", "test", "test"]


def test_no_test_piece_or_duplicate_leaks_into_train(
    tmp_path: Path, params_factory, monkeypatch, shared_datasets: Path
) -> None:
    """Groove (official split) plus a user folder holding copies of Groove test and train
    files (at 960 ticks per quarter): the copies never reach train."""
    shared = shared_datasets
    monkeypatch.setenv("MIDILM_MIRROR", str(shared))
    groove = registry_tasks("groove", SourceSpec(kind="registry"), rules()).tasks[:200]
    test_files = [t.ref for t in groove if t.split == "test"][:3]
    train_files = [t.ref for t in groove if t.split == "train"][:2]
    folder = tmp_path / "copies"
    folder.mkdir()
    for i, path in enumerate(test_files + train_files):
        Score(path).resample(960).dump_midi(folder / f"copy{i}.mid")
    shutil.copy(test_files[0], folder / "again.mid")
    for mode in ("none", "exact"):
        layout = Layout(root=tmp_path / mode)
        params = params_factory(
            sources={"groove": {"kind": "registry", "max_pieces": 200}},
            folders={"copies": {"path": str(folder), "license": "CC BY 4.0"}},
            filters={"min_notes": 1},
            dedup={"mode": mode},
        )
        params.dataset.sources.groove.names = None
        run_datasets(params, layout)
        run_split(params, layout)
        split = pd.read_parquet(layout.split_manifest)
        test_hashes = set(split[split["split"] == "test"]["content_hash"])
        assert not test_hashes & set(split[split["split"] == "train"]["content_hash"])
        groove_test = set(split[(split["dataset"] == "groove")
                                & (split["official_split"] == "test")]["content_hash"])  # fmt: skip
        assert groove_test <= test_hashes
        dedup = pd.read_parquet(layout.raw_dir / "dedup_report.parquet")
        summary = pd.read_json(layout.raw_dir / "summary.json", typ="series")
        if mode == "exact":
            assert "copies/again" in set(dedup["id"]) and summary["duplicates"]["removed"] >= 6
            assert not set(split["dataset"]) - {"groove"}  # every copy was a duplicate
        else:
            assert dedup.empty and (split["dataset"] == "copies").sum() == 6
