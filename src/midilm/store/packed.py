"""data/packed/<tok>/: a tokenizer's sequences per split as Arrow IPC, Megatron binidx and (for
text encodings) JSONL, with stats.json; and the check that training may use them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from midilm.common.io import atomic_dir, atomic_path, read_json, write_json_atomic
from midilm.store.arrow import write_sequences_arrow
from midilm.store.binidx import BinIdxWriter, dtype_for_vocab

SPLITS = ("train", "valid", "test")
STATS_FILE = "stats.json"


def pack(
    sequences: Path,
    out_dir: Path,
    tokenizer: str,
    vocab_size: int,
    text_tokenizer: Any | None,
    max_pieces: int | None,
) -> dict[str, Any]:
    """Write `out_dir` (atomically) from sequences.parquet; returns its stats.json content.

    `text_tokenizer` (a tokenizer with `to_text`, or None) adds `<split>.jsonl`; `max_pieces`
    is recorded so training refuses a tokenizer that holds only a sample.
    """
    table = pq.read_table(sequences, columns=["id", "source_id", "split", "ids"])
    dtype = dtype_for_vocab(vocab_size)
    stats: dict[str, Any] = {
        "tokenizer": tokenizer,
        "vocab_size": vocab_size,
        "dtype": dtype.name,
        "splits": {},
        "jsonl": text_tokenizer is not None,
        "max_pieces": max_pieces,
    }
    with atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            part = table.filter(pc.equal(table.column("split"), split))
            seqs = _sequences(part.column("ids"))
            flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
            if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
                raise ValueError(
                    f"{sequences}: {split} holds ids outside 0..{vocab_size - 1}; re-tokenize"
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
        write_json_atomic(tmp / STATS_FILE, stats)
    return stats


def write_jsonl(path: Path, tokenizer: Any, seqs: list[np.ndarray]) -> None:
    """One `{"text": ...}` line per sequence (RWKV-LM make_data.py's input); BOS/EOS dropped."""
    specials = {tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id}
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for seq in seqs:
            ids = [int(i) for i in seq.tolist() if int(i) not in specials]
            handle.write(json.dumps({"text": tokenizer.to_text(ids)}, ensure_ascii=False) + "\n")


def read_texts(path: Path) -> list[str]:
    """The texts of a packed JSONL file, in order."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro pack@<tokenizer>` first.")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def _sequences(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each list<int> row as a numpy view into one flat int64 buffer (no per-row Python lists)."""
    if column.num_chunks == 0 or len(column) == 0:
        return []
    ids = column.combine_chunks()
    offsets = ids.offsets.to_numpy()
    values = ids.flatten().to_numpy().astype(np.int64)
    base = int(offsets[0])
    return [values[a - base : b - base] for a, b in itertools.pairwise(offsets)]


def training_stats(packed: Path, tokenizer: str, key: str) -> dict[str, Any]:
    """data/packed/<tok>/stats.json for training model `key`, refused with the fix when the
    tokenizer holds a sample only (`max_pieces`) or produced no training document (every piece
    skipped: see the tokenize stage's warnings, e.g. drum tracks with `include_drums: false`)."""
    path = packed / STATS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro pack@{tokenizer}` first.")
    stats = read_json(path)
    if stats.get("max_pieces") is not None:
        raise ValueError(
            f"{path}: tokenizers.{tokenizer}.max_pieces is set, so it holds a sample only; "
            f"set it to null in conf/tokenizers to train model {key!r} on it."
        )
    empty = [s for s in ("train", "valid") if not stats["splits"][s]["documents"]]
    if empty:
        raise ValueError(
            f"{path}: no {' or '.join(empty)} document for model {key!r}: tokenizer {tokenizer!r} "
            "skipped every piece of the split (the tokenize stage logs why; drums only with "
            "`include_drums: true` or `auto`); pick another tokenizer for the model in conf/model."
        )
    return stats
