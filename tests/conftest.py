"""Shared fixtures: repo root, ../shared/datasets, real music from music21, a tiny split repo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import symusic

from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(
    os.environ.get("MIDILM_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets")
)

os.environ.setdefault("MIDILM_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """../shared/datasets (present in CI and beside every checkout of this project)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"{SHARED_DATASETS} not found (set MIDILM_SHARED_DATASETS)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def chorale_midis(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve real Bach chorales exported from music21's corpus to MIDI."""
    from music21 import corpus

    out = tmp_path_factory.mktemp("chorales")
    paths: list[Path] = []
    for name in [
        "bwv269",
        "bwv347",
        "bwv153.1",
        "bwv86.6",
        "bwv267",
        "bwv281",
        "bwv17.7",
        "bwv40.3",
        "bwv18.5-lz",
        "bwv187.7",
        "bwv10.7",
        "bwv38.6",
    ]:
        score = corpus.parse(f"bach/{name}")
        path = out / f"{name}.mid"
        score.write("midi", fp=str(path))
        paths.append(path)
    return paths


# A tiny real split manifest (the twelve chorales: 8 train, 2 valid, 2 test) in a temp repo.
SPLITS = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2


def build_split_layout(midis: list[Path], root: Path) -> Layout:
    """Copy the MIDIs under `root/data/raw/midi/bach/` and write the split manifest for them."""
    layout = Layout(root)
    rows = []
    for midi, split in zip(midis, SPLITS, strict=True):
        rel = Path("data/raw/midi/bach") / midi.name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(midi, root / rel)
        score = symusic.Score(str(midi))
        rows.append(
            {
                "id": f"bach/{midi.stem}",
                "dataset": "bach",
                "source": f"music21:bach/{midi.stem}",
                "path": rel.as_posix(),
                "content_hash": midi.stem,
                "duration_s": float(score.to("second").end()),
                "n_notes": int(score.note_num()),
                "n_tracks": len(score.tracks),
                "license": "public domain",
                "split": split,
            }
        )
    layout.split_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).sort_values("id").to_parquet(layout.split_manifest, index=False)
    return layout


@pytest.fixture()
def params(repo_root: Path) -> dict[str, Any]:
    """The committed params.yaml with two augmented copies per train piece."""
    plain = to_plain(load_params(repo_root / "params.yaml"))
    plain["augment"]["multiplicity"] = 2
    return plain


@pytest.fixture()
def split_layout(chorale_midis: list[Path], tmp_path: Path) -> Layout:
    return build_split_layout(chorale_midis, tmp_path / "repo")
