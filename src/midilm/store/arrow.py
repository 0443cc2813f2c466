"""Arrow IPC files of token sequences (one per split): columns id, source_id, split, ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from midilm.common.io import atomic_path


def arrow_schema(dtype: np.dtype | type) -> pa.Schema:
    """The packed schema; `ids` is list<uint16> or list<int32>, matching the binidx dtype."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("source_id", pa.string()),
            ("split", pa.string()),
            ("ids", pa.list_(pa.from_numpy_dtype(np.dtype(dtype)))),
        ]
    )


def write_sequences_arrow(
    path: str | Path,
    ids: Sequence[str],
    source_ids: Sequence[str],
    splits: Sequence[str],
    sequences: Sequence[Sequence[int] | np.ndarray],
    dtype: np.dtype | type,
) -> None:
    """Write one Arrow IPC file atomically; ids are cast to `dtype` (range-checked)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    arrays = [np.asarray(s, dtype=np.int64) for s in sequences]
    for name, array in zip(ids, arrays, strict=True):
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(f"{path}: sequence {name} has ids outside {dtype}; use int32")
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    if arrays:
        offsets[1:] = np.cumsum([a.size for a in arrays])
    flat = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)
    schema = arrow_schema(dtype)
    table = pa.table(
        [
            pa.array(list(ids), pa.string()),
            pa.array(list(source_ids), pa.string()),
            pa.array(list(splits), pa.string()),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)),
        ],
        schema=schema,
    )
    with (
        atomic_path(path) as tmp,
        pa.OSFile(str(tmp), "wb") as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        writer.write_table(table)


def read_sequences_arrow(path: str | Path) -> pa.Table:
    """Read a packed Arrow IPC file (memory-mapped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: Arrow file missing; run `dvc repro pack`.")
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()
