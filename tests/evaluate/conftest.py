"""Real pieces of the default profile, made with the project's own dataset code: music21's
chorales and folk tunes (O'Neill's, Essen), exported and canonicalized as the datasets stage
does."""

from __future__ import annotations

from pathlib import Path

import pytest

from midilm.datasets.sources import PieceTask, abc_tasks
from midilm.datasets.validate import Filters
from midilm.datasets.worker import process_piece

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
    oneills = {t.name: t for t in abc_tasks("oneills1850", {"corpus_dir": "oneills1850"})}
    tasks += [oneills[name] for name in ONEILLS]
    tasks += abc_tasks("essen_folksong", {"corpus_dir": "essenFolksong"})[:ESSEN]
    paths = {}
    for task in tasks:
        result = process_piece(task, Filters())
        assert result.midi is not None, f"{task.id}: {result.reason} {result.detail}"
        path = out / f"{task.dataset}__{task.name}.mid"
        path.write_bytes(result.midi)
        paths[task.id] = path
    return paths
