"""Stage `augment`: transposed, modulated, tempo-scaled, velocity-jittered copies of TRAIN pieces,
and the manifest of every piece to tokenize (originals of all splits + the copies), in
data/augmented/. Sharded over a Slurm job array when MIDILM_SHARD_COUNT is set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midilm.augment.copies import augment_all
from midilm.augment.manifest import assemble, inputs
from midilm.augment.sharded import merge_shards, run_shard
from midilm.common.io import atomic_dir
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.orchestration.shards import clear_shards, shard_role
from midilm.specs.augment import augment_spec

log = get_logger(__name__)


def run_augment(params: Mapping[str, Any], layout: Layout, workers: int = 1) -> dict[str, Any]:
    """Run the stage; returns the summary written to data/augmented/summary.json.

    A shard run (MIDILM_SHARD_COUNT and an index) augments its part into its shard folder and
    returns a short summary of it; the merge run assembles data/augmented from every shard."""
    config = augment_spec(params)
    originals, todo = inputs(layout, config)
    role = shard_role()
    if role is not None and role.index is not None:
        return run_shard(layout, config, todo, role, workers)

    with atomic_dir(layout.augment_dir) as tmp:
        if role is None:
            results = augment_all(todo, config, layout.root, tmp, layout.augment_dir, workers)
        else:
            results = merge_shards(layout, config, todo, role.count, tmp)
        summary = assemble(tmp, layout, config, originals, todo, results)
    if role is not None:
        clear_shards(layout.augment_dir)
    log.info(
        "augment: %d pieces -> %d (%d copies)",
        summary["pieces_before"],
        summary["pieces_after"],
        summary["augmented_copies"],
    )
    return summary
