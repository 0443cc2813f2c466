"""Real pieces of the default profile, made with the project's own dataset code: music21's
chorales and folk tunes (O'Neill's, Essen), exported and canonicalized as the datasets stage
does."""

from __future__ import annotations

from pathlib import Path

import pytest

from midilm.common.params import load_params, to_plain
from midilm.datasets.sources import PieceTask, ReadRules, abc_tasks
from midilm.datasets.worker import process_piece
from midilm.specs.dataset import SourceSpec, dataset_spec
from tests.conftest import REPO_ROOT

CHORALES = ("bwv269", "bwv347", "bwv153.1", "bwv86.6", "bwv267", "bwv281", "bwv40.3", "bwv27.6")
ONEILLS = (
    "0001-0050_x2",  # double stops: music21 moves notes here (docs/metrics.md)
    "0101-0200_x150",
    "0351-0400_x381",  # the same
    "0626-0700_x652",  # the same
    "0811-0899_x870",
    "1276-1375_x1300",
    "1801-1850_x1820",
)
ESSEN = 4  # the first tunes of the collection


@pytest.fixture(scope="session")
def default_profile_midis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{id: path} of 19 pieces the default profile's datasets stage would produce."""
    out = tmp_path_factory.mktemp("default_profile")
    tasks = [
        PieceTask("bach_chorales", n, "music21_chorales", f"music21:bach/{n}", "", f"bach/{n}")
        for n in CHORALES
    ]
    spec = dataset_spec(to_plain(load_params(REPO_ROOT / "params.yaml")))
    rules = ReadRules.of(spec)

    def tunes(dataset: str, folder: str) -> list[PieceTask]:
        return abc_tasks(dataset, SourceSpec(kind="music21_abc", corpus_dir=folder), rules).tasks

    oneills = {t.name: t for t in tunes("oneills1850", "oneills1850")}
    tasks += [oneills[name] for name in ONEILLS]
    tasks += tunes("essen_folksong", "essenFolksong")[:ESSEN]
    paths = {}
    for task in tasks:
        result = process_piece(task, spec.filters)
        assert result.midi is not None, f"{task.id}: {result.reason} {result.detail}"
        path = out / f"{task.dataset}__{task.name}.mid"
        path.write_bytes(result.midi)
        paths[task.id] = path
    return paths
