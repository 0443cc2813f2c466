"""sequences.parquet: the tokenize stage's output and the pack stage's input, in one place.

One row per sequence (a piece, or a segment of it): the manifest columns of its piece, its
segment index, `n_tokens` and `ids` (list<int32>, BOS + tokens + EOS). The table's metadata
names the tokenizer and its vocabulary size, so `pack` needs no other input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from midilm.common.io import atomic_path

SEQUENCES_FILE = "sequences.parquet"
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source_id", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("augmented", pa.bool_()),
        ("segment", pa.int32()),
        ("n_notes", pa.int64()),
        ("duration_s", pa.float64()),
        ("n_tokens", pa.int64()),
        ("ids", pa.list_(pa.int32())),
    ]
)
# the manifest columns a sequence carries from its piece (segments repeat them)
PIECE_COLUMNS = ("id", "source_id", "dataset", "split", "augmented", "n_notes", "duration_s")
META_TOKENIZER, META_VOCAB = b"midilm.tokenizer", b"midilm.vocab_size"


def ids_column(
    lengths: np.ndarray, values: np.ndarray, max_chunk_ids: int = 2**31 - 1
) -> pa.ChunkedArray:
    """list<int32> column of the sequences laid end to end in `values`, `lengths` ids each: one
    Arrow chunk, or several of at most `max_chunk_ids` ids (int32 offsets end at 2**31 - 1)."""
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    chunks, start = [], 0
    while start < len(lengths):
        last = int(np.searchsorted(offsets, offsets[start] + max_chunk_ids, side="right")) - 1
        stop = max(last, start + 1)
        if offsets[stop] - offsets[start] > max_chunk_ids:
            raise ValueError(f"a sequence of {lengths[start]} ids is over {max_chunk_ids} ids")
        local = (offsets[start : stop + 1] - offsets[start]).astype(np.int32)
        chunk = values[offsets[start] : offsets[stop]].astype(np.int32, copy=False)
        chunks.append(pa.ListArray.from_arrays(pa.array(local), pa.array(chunk)))
        start = stop
    return pa.chunked_array(chunks, pa.list_(pa.int32()))


def sequences_table(
    pieces: pd.DataFrame,
    segments: np.ndarray,
    lengths: np.ndarray,
    values: np.ndarray,
    tokenizer: str,
    vocab_size: int,
) -> pa.Table:
    """The table: one row per sequence; `pieces` holds each sequence's piece row (PIECE_COLUMNS;
    repeated for the segments of one piece), `segments` its index within the piece, `lengths`
    its ids, laid end to end in `values`."""
    if not len(pieces) == len(segments) == len(lengths):
        raise ValueError(f"{len(pieces)} rows, {len(segments)} segments, {len(lengths)} lengths")
    columns: dict[str, Any] = {
        c: pa.array(pieces[c].tolist(), type=SCHEMA.field(c).type) for c in PIECE_COLUMNS
    }
    columns["segment"] = pa.array(np.asarray(segments, dtype=np.int32), type=pa.int32())
    columns["n_tokens"] = pa.array(np.asarray(lengths, dtype=np.int64), type=pa.int64())
    columns["ids"] = ids_column(np.asarray(lengths, dtype=np.int64), values)
    meta = {META_TOKENIZER: tokenizer.encode(), META_VOCAB: str(vocab_size).encode()}
    return pa.table({f.name: columns[f.name] for f in SCHEMA}, schema=SCHEMA.with_metadata(meta))


def write_table(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_sequences(path: Path, rows: list[dict[str, Any]], tokenizer: str, vocab: int) -> None:
    """sequences.parquet from row dicts (PIECE_COLUMNS + `ids`, optionally `segment`)."""
    lengths = np.asarray([len(r["ids"]) for r in rows], dtype=np.int64)
    values = np.asarray([i for r in rows for i in r["ids"]], dtype=np.int32)
    pieces = pd.DataFrame([{c: r[c] for c in PIECE_COLUMNS} for r in rows])
    pieces = pieces if rows else pd.DataFrame(columns=list(PIECE_COLUMNS))
    segments = np.asarray([int(r.get("segment", 0)) for r in rows], dtype=np.int32)
    write_table(path, sequences_table(pieces, segments, lengths, values, tokenizer, vocab))


def vocab_size_of(path: Path) -> int | None:
    """The vocabulary size in a sequences.parquet's metadata (None when absent)."""
    meta = pq.read_schema(path).metadata or {}
    return int(meta[META_VOCAB]) if META_VOCAB in meta else None
