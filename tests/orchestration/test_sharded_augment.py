"""The augment stage as shards plus a merge (a Slurm job array's work, run here one by one):
byte-identical to the unsharded run; a missing or stale shard stops the merge."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from midilm.augment.stage import run_augment
from midilm.common.paths import Layout
from midilm.orchestration import shards


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def run_sharded(
    params: dict[str, Any], layout: Layout, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(shards.SHARD_COUNT_ENV, str(count))
    for index in range(count):
        monkeypatch.setenv(shards.SHARD_INDEX_ENV, str(index))
        part = run_augment(params, layout)
        assert part["shard"] == index and part["count"] == count
    monkeypatch.delenv(shards.SHARD_INDEX_ENV)
    monkeypatch.setenv(shards.SHARD_MERGE_ENV, "1")
    run_augment(params, layout)
    for name in (shards.SHARD_COUNT_ENV, shards.SHARD_MERGE_ENV):
        monkeypatch.delenv(name)


@pytest.fixture()
def unsharded(params: dict[str, Any], split_layout: Layout) -> dict[str, bytes]:
    run_augment(params, split_layout)
    reference = tree_bytes(split_layout.augment_dir)
    shutil.rmtree(split_layout.augment_dir)
    return reference


@pytest.mark.parametrize("count", [3, 10])  # 10 shards for 8 train pieces: two are empty
def test_shards_then_merge_equal_the_unsharded_run_byte_for_byte(
    params: dict[str, Any],
    split_layout: Layout,
    unsharded: dict[str, bytes],
    count: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_sharded(params, split_layout, count, monkeypatch)
    assert tree_bytes(split_layout.augment_dir) == unsharded
    assert len([n for n in unsharded if n.endswith(".mid")]) == 16
    assert not shards.shards_root(split_layout.augment_dir).exists()  # cleared after the merge


def test_a_shard_writes_only_its_own_folder(
    params: dict[str, Any], split_layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(shards.SHARD_COUNT_ENV, "3")
    monkeypatch.setenv(shards.SHARD_INDEX_ENV, "1")
    part = run_augment(params, split_layout)
    assert not split_layout.augment_dir.exists()
    folder = shards.shard_dir(split_layout.augment_dir, shards.ShardRole(3, 1))
    assert part == {"shard": 1, "count": 3, "pieces": 3, "copies": 6}  # train pieces 1, 4, 7
    assert len(list(folder.rglob("*.mid"))) == 6 and (folder / shards.SHARD_META).exists()


def test_merge_names_missing_and_stale_shards(
    params: dict[str, Any], split_layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(shards.SHARD_COUNT_ENV, "2")
    monkeypatch.setenv(shards.SHARD_INDEX_ENV, "0")
    run_augment(params, split_layout)
    monkeypatch.delenv(shards.SHARD_INDEX_ENV)
    monkeypatch.setenv(shards.SHARD_MERGE_ENV, "1")
    with pytest.raises(FileNotFoundError, match=r"shard-0001-of-0002 is missing"):
        run_augment(params, split_layout)
    assert not split_layout.augment_dir.exists()

    params["augment"]["multiplicity"] = 3  # shard 0 was made with other params: stale
    with pytest.raises(FileNotFoundError, match=r"shard-0000-of-0002 was made from other"):
        run_augment(params, split_layout)
    assert not split_layout.augment_dir.exists()


def test_shard_role_comes_from_the_environment() -> None:
    assert shards.shard_role({}) is None
    assert shards.shard_role({"MIDILM_SHARD_COUNT": "4", "MIDILM_SHARD_INDEX": "3"}) == (
        shards.ShardRole(4, 3)
    )
    merge = shards.shard_role({"MIDILM_SHARD_COUNT": "4", "MIDILM_SHARD_MERGE": "1"})
    assert merge is not None and merge.merge and merge.index is None
    assert shards.take(list(range(10)), shards.ShardRole(4, 1)) == [1, 5, 9]
    for bad, message in [
        ({"MIDILM_SHARD_INDEX": "0"}, "without MIDILM_SHARD_COUNT"),
        ({"MIDILM_SHARD_COUNT": "4"}, "exactly one of"),
        ({"MIDILM_SHARD_COUNT": "4", "MIDILM_SHARD_INDEX": "4"}, r"outside 0\.\.3"),
        ({"MIDILM_SHARD_COUNT": "x", "MIDILM_SHARD_MERGE": "1"}, "not an integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            shards.shard_role(bad)
