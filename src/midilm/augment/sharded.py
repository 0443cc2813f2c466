"""The augment stage as a Slurm job array (midilm.orchestration.shards): each shard augments every
count-th train piece into its shard folder; the merge assembles data/augmented from them, byte-
identical to the unsharded run (each copy's seed depends only on (seed, piece, k))."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from midilm.augment.copies import Result, augment_all
from midilm.common.hashing import stable_json_hash
from midilm.common.io import atomic_dir, read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.orchestration.shards import (
    ShardRole,
    complete_shards,
    shard_dir,
    shards_root,
    take,
    write_shard_meta,
)
from midilm.specs.augment import AugmentSpec

log = get_logger(__name__)

SHARD_RESULTS = "results.json"


def _shard_fingerprint(config: AugmentSpec, todo: list[dict[str, Any]], count: int) -> str:
    """What a shard's part depends on: params, the pieces to augment (and their files), count."""
    pieces = [[r["id"], r["path"], r.get("content_hash")] for r in todo]
    return stable_json_hash({"config": asdict(config), "pieces": pieces, "count": count})


def run_shard(
    layout: Layout,
    config: AugmentSpec,
    todo: list[dict[str, Any]],
    role: ShardRole,
    workers: int,
) -> dict[str, Any]:
    """Augment this shard's pieces into its shard folder (atomically); a summary of its part."""
    mine = take(todo, role)
    with atomic_dir(shard_dir(layout.augment_dir, role)) as tmp:
        results = augment_all(mine, config, layout.root, tmp, layout.augment_dir, workers)
        by_piece = {piece["id"]: result for piece, result in zip(mine, results, strict=True)}
        write_json_atomic(tmp / SHARD_RESULTS, by_piece)
        write_shard_meta(tmp, role, _shard_fingerprint(config, todo, role.count))
    copies = sum(len(rows) for rows, _ in results)
    log.info("augment %s: %d pieces -> %d copies", role.name, len(mine), copies)
    return {"shard": role.index, "count": role.count, "pieces": len(mine), "copies": copies}


def merge_shards(
    layout: Layout, config: AugmentSpec, todo: list[dict[str, Any]], count: int, tmp: Path
) -> list[Result]:
    """Rename every shard's MIDI copies into `tmp` (shards sit beside it: same filesystem); every
    piece's result, in `todo` order (the unsharded run's order)."""
    fingerprint = _shard_fingerprint(config, todo, count)
    by_piece: dict[str, Result] = {}
    folders = complete_shards(layout.augment_dir, count, fingerprint)
    for folder in folders:
        for piece_id, (rows, error) in read_json(folder / SHARD_RESULTS).items():
            by_piece[piece_id] = (rows, error)
    missing = [piece["id"] for piece in todo if piece["id"] not in by_piece]
    if missing:
        raise ValueError(f"{shards_root(layout.augment_dir)}: no shard holds {missing[:5]}")
    for folder in folders:
        for src in sorted(folder.rglob("*.mid")):
            dest = tmp / src.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    return [by_piece[piece["id"]] for piece in todo]
