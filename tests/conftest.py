"""Shared fixtures: the repository root, ../shared/datasets, and real music from music21's corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("MIDILM_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))

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
    for name in ["bwv269", "bwv347", "bwv153.1", "bwv86.6", "bwv267", "bwv281",
                 "bwv17.7", "bwv40.3", "bwv18.5-lz", "bwv187.7", "bwv10.7", "bwv38.6"]:
        score = corpus.parse(f"bach/{name}")
        path = out / f"{name}.mid"
        score.write("midi", fp=str(path))
        paths.append(path)
    return paths
