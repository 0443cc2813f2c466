"""The pack stage: sequences.parquet -> per split Arrow IPC + Megatron binidx, and stats.json."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import DictConfig

from midilm.common.io import atomic_dir, atomic_path, read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.params import to_plain
from midilm.common.paths import Layout
from midilm.store.arrow import write_sequences_arrow
from midilm.store.binidx import BinIdxWriter, dtype_for_vocab
from midilm.tokenize import load_tokenizer

log = get_logger(__name__)

SPLITS = ("train", "valid", "test")


def run_pack(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, key: str | None = None
) -> dict:
    """Run the stage `pack@<key>` (without a key: the training tokenizer); returns the stats
    written to `packed_dir(key)/stats.json`."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    name = training_tokenizer(plain) if key is None else key
    sample_of = ((plain.get("tokenizers") or {}).get(name) or {}).get("max_pieces")
    src = layout.tokens_dir(name) / "sequences.parquet"
    if not src.exists():
        raise FileNotFoundError(f"{src}: sequences missing; run `dvc repro tokenize` first.")
    table = pq.read_table(src, columns=["id", "source_id", "split", "ids"])
    vocab_size = _vocab_size(table.schema.metadata or {}, layout, name)
    dtype = dtype_for_vocab(vocab_size)
    text_tokenizer = _text_tokenizer(layout, name)

    stats: dict[str, Any] = {
        "tokenizer": name,
        "vocab_size": vocab_size,
        "dtype": dtype.name,
        "splits": {},
        "jsonl": text_tokenizer is not None,
        "max_pieces": sample_of,  # not null: a sample for T2 only; train refuses it
    }
    with atomic_dir(layout.packed_dir(name)) as tmp:
        for split in SPLITS:
            part = table.filter(pc.equal(table.column("split"), split))
            seqs = _sequences(part.column("ids"))
            flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
            if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
                raise ValueError(
                    f"{src}: {split} holds ids outside 0..{vocab_size - 1}; re-tokenize"
                )
            with BinIdxWriter(tmp / split, dtype) as writer:
                for seq in seqs:
                    writer.add_document(seq)
            write_sequences_arrow(
                tmp / f"{split}.arrow",
                part.column("id").to_pylist(),
                part.column("source_id").to_pylist(),
                part.column("split").to_pylist(),
                seqs,
                dtype,
            )
            if text_tokenizer is not None:
                write_jsonl(tmp / f"{split}.jsonl", text_tokenizer, seqs)
            stats["splits"][split] = {"documents": len(seqs), "tokens": int(flat.size)}
        write_json_atomic(tmp / "stats.json", stats)
    log.info("pack %s: %s (%s)", name, stats["splits"], dtype.name)
    return stats


def training_tokenizer(plain: Mapping[str, Any]) -> str:
    """params.tokenizer.name, checked against params.tokenizers (its tokens must be complete)."""
    name = str(plain["tokenizer"]["name"])
    entries = plain.get("tokenizers")
    if entries is None:
        return name
    if name not in entries:
        raise ValueError(
            f"params.yaml: tokenizer.name {name!r} is not one of the tokenizers the tokenize "
            f"stage runs ({', '.join(entries)}); add it to conf/tokenizers/*.yaml or pick one."
        )
    if (entries[name] or {}).get("max_pieces") is not None:
        raise ValueError(
            f"params.yaml: tokenizers.{name}.max_pieces is set, so data/tokens/{name} holds a "
            "sample only; set it to null to train on this tokenizer."
        )
    return name


def _text_tokenizer(layout: Layout, name: str) -> Any | None:
    """The saved tokenizer when it can write text (`to_text`), else None."""
    path = layout.tokens_dir(name) / "tokenizer.json"
    if not path.exists():
        return None
    tokenizer = load_tokenizer(path)
    return tokenizer if callable(getattr(tokenizer, "to_text", None)) else None


def write_jsonl(path: Path, tokenizer: Any, seqs: list[np.ndarray]) -> None:
    """One `{"text": ...}` line per sequence (RWKV-LM make_data.py's input); BOS/EOS dropped."""
    specials = {tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id}
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for seq in seqs:
            ids = [int(i) for i in seq.tolist() if int(i) not in specials]
            handle.write(json.dumps({"text": tokenizer.to_text(ids)}, ensure_ascii=False) + "\n")


def _sequences(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each list<int> row as a numpy view into one flat int64 buffer (no per-row Python lists)."""
    if column.num_chunks == 0 or len(column) == 0:
        return []
    ids = column.combine_chunks()
    offsets = ids.offsets.to_numpy()
    values = ids.flatten().to_numpy().astype(np.int64)
    base = int(offsets[0])
    return [values[a - base : b - base] for a, b in itertools.pairwise(offsets)]


def _vocab_size(metadata: Mapping[bytes, bytes], layout: Layout, name: str) -> int:
    """Vocabulary size from sequences.parquet's metadata, else from the tokenize stats.json."""
    if b"midilm.vocab_size" in metadata:
        return int(metadata[b"midilm.vocab_size"])
    stats_path = layout.tokens_dir(name) / "stats.json"
    if not stats_path.exists():
        raise FileNotFoundError(f"{stats_path}: no vocab size found; run `dvc repro tokenize`.")
    return int(read_json(stats_path)["vocab_size"])


def training_stats(packed: Path, tok_name: str, key: str) -> dict[str, Any]:
    """data/packed/<tok>/stats.json for training model `key`, refused with the fix when the
    tokenizer holds a sample only (`max_pieces`) or produced no training document (every piece
    skipped: see the tokenize stage's warnings, e.g. drum tracks with `include_drums: false`)."""
    path = packed / "stats.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro pack@{tok_name}` first.")
    stats = read_json(path)
    if stats.get("max_pieces") is not None:
        raise ValueError(
            f"{path}: tokenizers.{tok_name}.max_pieces is set, so it holds a sample only; "
            f"set it to null in conf/tokenizers to train model {key!r} on it."
        )
    empty = [s for s in ("train", "valid") if not stats["splits"][s]["documents"]]
    if empty:
        raise ValueError(
            f"{path}: no {' or '.join(empty)} document for model {key!r}: tokenizer {tok_name!r} "
            "skipped every piece of the split (the tokenize stage logs why; drums only with "
            "`include_drums: true` or `auto`); pick another tokenizer for the model in conf/model."
        )
    return stats
