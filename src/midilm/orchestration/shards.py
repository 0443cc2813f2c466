"""Sharded stages: a data stage split over a Slurm job array, then merged in one final run.

The launcher runs a stage whose resources say `array: N` as N shard runs (an array job; run i has
MIDILM_SHARD_INDEX=i and MIDILM_SHARD_COUNT=N) and then one merge run (MIDILM_SHARD_MERGE=1,
MIDILM_SHARD_COUNT=N). Without those variables a stage runs unsharded, as it always did.

A stage that supports sharding (the augment stage does) follows one protocol:
- a shard run takes `take(items, role)` of its sorted work items, writes its part atomically into
  `shard_dir(output, role)` (beside the output, so the merge can rename files into place) and
  stamps it with `write_shard_meta` (a fingerprint of the inputs and params);
- the merge run gets the shard folders from `complete_shards` (an error names any shard missing or
  made from other inputs), assembles the output with `atomic_dir` exactly as the unsharded run
  would write it, then calls `clear_shards`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from midilm.common.io import read_json, write_json_atomic

SHARD_INDEX_ENV = "MIDILM_SHARD_INDEX"
SHARD_COUNT_ENV = "MIDILM_SHARD_COUNT"
SHARD_MERGE_ENV = "MIDILM_SHARD_MERGE"
SHARD_META = "shard.json"

T = TypeVar("T")


@dataclass(frozen=True)
class ShardRole:
    """This run's part: shard `index` of `count`, or the merge of all `count` shards."""

    count: int
    index: int | None = None

    @property
    def merge(self) -> bool:
        return self.index is None

    @property
    def name(self) -> str:
        return "merge" if self.index is None else f"shard-{self.index:04d}-of-{self.count:04d}"


def shard_role(env: Mapping[str, str] | None = None) -> ShardRole | None:
    """The role the environment gives this run; None when it is not sharded."""
    env = os.environ if env is None else env
    count_text, index_text = env.get(SHARD_COUNT_ENV, ""), env.get(SHARD_INDEX_ENV, "")
    merge = env.get(SHARD_MERGE_ENV, "") not in ("", "0")
    if not count_text:
        if index_text or merge:
            raise ValueError(f"{SHARD_INDEX_ENV}/{SHARD_MERGE_ENV} set without {SHARD_COUNT_ENV}")
        return None
    count = _int(SHARD_COUNT_ENV, count_text)
    if count < 1:
        raise ValueError(f"{SHARD_COUNT_ENV}={count_text}: need at least 1 shard")
    if merge == bool(index_text):
        raise ValueError(
            f"{SHARD_COUNT_ENV} is set: set exactly one of {SHARD_INDEX_ENV} (a shard run) "
            f"and {SHARD_MERGE_ENV}=1 (the merge run)"
        )
    if merge:
        return ShardRole(count)
    index = _int(SHARD_INDEX_ENV, index_text)
    if not 0 <= index < count:
        raise ValueError(f"{SHARD_INDEX_ENV}={index} is outside 0..{count - 1}")
    return ShardRole(count, index)


def take(items: Sequence[T], role: ShardRole) -> list[T]:
    """Shard `index`'s items: every count-th one from `index` (balanced, order kept)."""
    if role.index is None:
        raise ValueError("the merge run takes no items of its own")
    return list(items[role.index :: role.count])


def shards_root(output: Path) -> Path:
    """Where the shards of `output` live: a hidden folder beside it (same filesystem)."""
    return output.parent / f".{output.name}.shards"


def shard_dir(output: Path, role: ShardRole) -> Path:
    return shards_root(output) / role.name


def write_shard_meta(folder: Path, role: ShardRole, fingerprint: str) -> None:
    write_json_atomic(
        folder / SHARD_META, {"index": role.index, "count": role.count, "fingerprint": fingerprint}
    )


def complete_shards(output: Path, count: int, fingerprint: str) -> list[Path]:
    """The folders of shards 0..count-1 in order; a FileNotFoundError lists what is missing."""
    folders, problems = [], []
    for index in range(count):
        folder = shard_dir(output, ShardRole(count, index))
        meta_path = folder / SHARD_META
        if not meta_path.exists():
            problems.append(f"{folder} is missing")
        elif read_json(meta_path).get("fingerprint") != fingerprint:
            problems.append(f"{folder} was made from other inputs or params")
        folders.append(folder)
    if problems:
        raise FileNotFoundError(
            f"cannot merge {output}: {'; '.join(problems)}. Run every shard again "
            f"({SHARD_INDEX_ENV}=0..{count - 1}, {SHARD_COUNT_ENV}={count}) before the merge."
        )
    return folders


def clear_shards(output: Path) -> None:
    shutil.rmtree(shards_root(output), ignore_errors=True)


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an integer") from None
