"""Megatron MMapIndexedDataset v1 (`.bin` + `.idx`), the format GPT-NeoX and RWKV-LM train from.

Layout of `.idx` (little endian): magic ``MMIDIDX\\x00\\x00``; u64 version (1); u8 dtype code;
u64 sequence count; u64 document-index length; int32 sizes[n]; int64 byte pointers[n];
int64 doc_idx[m] (0, then the sequence count after each document). `.bin` holds the tokens.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import numpy as np

from midilm.common.io import atomic_path

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES: dict[int, type[np.generic]] = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}
CODE_OF_DTYPE = {np.dtype(v): k for k, v in DTYPE_CODES.items()}


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """u16 when every id fits below 65,500 (Megatron's rule), else i32."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


class BinIdxWriter:
    """Stream documents to `<prefix>.bin`, then write `<prefix>.idx`; both land atomically."""

    def __init__(self, prefix: str | Path, dtype: np.dtype | type) -> None:
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in CODE_OF_DTYPE:
            raise ValueError(f"unsupported binidx dtype {self.dtype}")
        self.sizes: list[int] = []
        self._bin_ctx = atomic_path(self.prefix.with_suffix(".bin"))
        self._bin_tmp = self._bin_ctx.__enter__()
        self._bin = open(self._bin_tmp, "wb")  # noqa: SIM115 - closed in close()

    def add_document(self, ids: Iterable[int] | np.ndarray) -> None:
        array = np.asarray(ids)
        if array.size and (array.min() < 0 or array.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"{self.prefix}: token id out of range for {self.dtype}")
        self._bin.write(array.astype(self.dtype, copy=False).tobytes(order="C"))
        self.sizes.append(int(array.size))

    def close(self) -> None:
        self._bin.close()
        self._bin_ctx.__exit__(None, None, None)
        write_index(self.prefix.with_suffix(".idx"), self.sizes, self.dtype)

    def abort(self) -> None:
        self._bin.close()
        self._bin_ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> BinIdxWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_index(path: Path, sizes: list[int], dtype: np.dtype) -> None:
    sizes_arr = np.asarray(sizes, dtype=np.int32)
    pointers = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        pointers[1:] = np.cumsum(sizes_arr[:-1], dtype=np.int64) * dtype.itemsize
    doc_idx = np.arange(len(sizes) + 1, dtype=np.int64)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(MAGIC)
        handle.write(struct.pack("<Q", VERSION))
        handle.write(struct.pack("<B", CODE_OF_DTYPE[dtype]))
        handle.write(struct.pack("<Q", len(sizes)))
        handle.write(struct.pack("<Q", len(doc_idx)))
        handle.write(sizes_arr.tobytes(order="C"))
        handle.write(pointers.tobytes(order="C"))
        handle.write(doc_idx.tobytes(order="C"))


class BinIdxDataset:
    """Read-only memmap view: `tokens` (all ids, flat), `sizes`, `pointers`, `doc_idx`."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        idx_path = self.prefix.with_suffix(".idx")
        bin_path = self.prefix.with_suffix(".bin")
        for path in (idx_path, bin_path):
            if not path.exists():
                raise FileNotFoundError(f"{path}: binidx file missing; run `dvc repro pack`.")
        with open(idx_path, "rb") as handle:
            magic = handle.read(len(MAGIC))
            if magic != MAGIC:
                raise ValueError(f"{idx_path}: not a Megatron binidx index (bad magic {magic!r})")
            (version,) = struct.unpack("<Q", handle.read(8))
            if version != VERSION:
                raise ValueError(f"{idx_path}: unsupported binidx version {version}")
            (code,) = struct.unpack("<B", handle.read(1))
            (n_seq,) = struct.unpack("<Q", handle.read(8))
            (n_doc,) = struct.unpack("<Q", handle.read(8))
            offset = handle.tell()
        self.dtype = np.dtype(DTYPE_CODES[code])
        index = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.sizes = np.frombuffer(index, dtype=np.int32, count=n_seq, offset=offset)
        offset += self.sizes.nbytes
        self.pointers = np.frombuffer(index, dtype=np.int64, count=n_seq, offset=offset)
        offset += self.pointers.nbytes
        self.doc_idx = np.frombuffer(index, dtype=np.int64, count=n_doc, offset=offset)
        if bin_path.stat().st_size == 0:
            self.tokens = np.zeros(0, dtype=self.dtype)
        else:
            self.tokens = np.memmap(bin_path, mode="r", dtype=self.dtype)
        expected = int(self.sizes.sum())
        if self.tokens.size != expected:
            raise ValueError(
                f"{bin_path}: holds {self.tokens.size} tokens but the index says {expected}; "
                "the pair is inconsistent, re-run `dvc repro pack`."
            )

    def __len__(self) -> int:
        return int(self.sizes.size)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return np.asarray(self.tokens[start : start + int(self.sizes[i])])

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.size)
