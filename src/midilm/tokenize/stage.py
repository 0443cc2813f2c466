"""Stage `tokenize@KEY`: every piece of the augmented manifest encoded with tokenizer KEY of
params `tokenizers` (BOS + tokens + EOS per piece, or per segment), with stats and the round-trip
F1 of the test originals (`midilm.tokenize.fidelity.roundtrip_fidelity`).

Outputs: data/tokens/KEY/{tokenizer.json, sequences.parquet, stats.json}, byte-identical across
runs with the same inputs, and outputs/speed/tokenize-KEY.json, the wall-clock measurement.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from midilm.common.io import atomic_dir, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.common.seeding import seeded_order
from midilm.specs.tokenizer import TokenizerSpec, tokenizer_spec
from midilm.store.sequences import PIECE_COLUMNS, SEQUENCES_FILE, sequences_table, write_table
from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.encode import encode_files
from midilm.tokenize.factory import build_tokenizer
from midilm.tokenize.fidelity import roundtrip_fidelity
from midilm.tokenize.parallel import start_method
from midilm.tokenize.stats import sequence_stats

log = get_logger(__name__)

STATS_FILE = "stats.json"


# --- the stage ----------------------------------------------------------------------------------


def run_tokenize(
    params: Mapping[str, Any], layout: Layout, key: str, workers: int | None = None
) -> dict[str, Any]:
    """Run the stage for tokenizer `key`; returns the stats written to data/tokens/KEY/stats.json
    (the timing goes to outputs/speed/tokenize-KEY.json)."""
    spec = tokenizer_spec(params, key)
    tokenizer = build_tokenizer(spec.build_cfg)
    workers = workers or int(params["dataset"]["workers"])
    if not layout.augment_manifest.exists():
        raise FileNotFoundError(
            f"{layout.augment_manifest}: augmented manifest missing; run `dvc repro augment`."
        )
    manifest = pd.read_parquet(layout.augment_manifest)
    seed = int(params["seed"])
    chosen = _sample(list(manifest["id"]), spec.max_pieces, seed)
    pieces = manifest[manifest["id"].isin(chosen)].reset_index(drop=True)
    trained = _train_vocabulary(tokenizer, spec, pieces, layout, seed)

    start = time.perf_counter()
    encoded = encode_files(
        tokenizer,
        [layout.root / p for p in pieces["path"]],
        workers,
        spec.segments,
        f"tokenize {spec.key}",
    )
    seconds = time.perf_counter() - start
    failed = [{"id": str(pieces["id"][i]), "reason": reason} for i, reason in encoded.failures]
    for f in failed:
        log.warning("tokenize %s: skipped %s (%s)", spec.key, f["id"], f["reason"])

    originals = manifest[(manifest["split"] == "test") & ~manifest["augmented"].astype(bool)]
    fidelity = roundtrip_fidelity(tokenizer, [layout.root / p for p in originals["path"]], workers)

    rows = pieces.iloc[encoded.files].reset_index(drop=True)
    table = sequences_table(
        rows[list(PIECE_COLUMNS)],
        encoded.segments,
        encoded.lengths,
        encoded.values,
        spec.key,
        tokenizer.vocab_size,
    )
    stats = sequence_stats(spec.key, tokenizer, rows, encoded.lengths, failed)
    stats.update(
        **fidelity,
        family=spec.family,
        max_pieces=spec.max_pieces,
        segments=spec.segments,
        trained=trained,
    )
    speed = {
        "tokenizer": spec.key,
        "files": len(pieces),
        "workers": workers,
        "start_method": start_method() if workers > 1 else None,
        "seconds": round(seconds, 3),
        "encode_files_per_s": round(len(pieces) / seconds, 2) if seconds > 0 else None,
    }
    with atomic_dir(layout.tokens_dir(spec.key)) as tmp:
        tokenizer.save(tmp / "tokenizer.json")
        write_table(tmp / SEQUENCES_FILE, table)
        write_json_atomic(tmp / STATS_FILE, stats)
    write_json_atomic(layout.speed_file("tokenize", spec.key), speed)
    log.info(
        "tokenize %s: %d sequences, %d tokens, %d failed, round-trip F1 %s (on grid %s), "
        "%s files/s",
        spec.key,
        stats["sequences"],
        stats["tokens"],
        len(failed),
        fidelity["roundtrip"]["f1"],
        fidelity["roundtrip_on_grid"]["f1"],
        speed["encode_files_per_s"],
    )
    return stats


def _sample(ids: list[str], n: int | None, seed: int) -> set[str]:
    """At most `n` of `ids` (all when n is None), a seeded choice independent of order."""
    return set(ids if n is None else seeded_order(seed, ids)[:n])


def _train_vocabulary(
    tokenizer: MusicTokenizer,
    spec: TokenizerSpec,
    pieces: pd.DataFrame,
    layout: Layout,
    seed: int,
) -> dict[str, Any] | None:
    """Train BPE/Unigram on a seeded sample of the train pieces (when the spec asks)."""
    if spec.train is None:
        return None
    if not hasattr(tokenizer, "train"):
        raise ValueError(f"tokenizer {spec.key!r} cannot be trained (BPE/Unigram): drop `train`")
    train_ids = list(pieces.loc[pieces["split"] == "train", "id"])
    sample = _sample(train_ids, spec.train.max_files, seed)
    paths = [layout.root / p for p in pieces.loc[pieces["id"].isin(sample), "path"]]
    tokenizer.train(spec.train.vocab_size, spec.train.model, paths)  # type: ignore[attr-defined]
    return {"model": spec.train.model, "vocab_size": spec.train.vocab_size, "files": len(paths)}
