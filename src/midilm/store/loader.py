"""Training windows over a binidx token stream, two layouts and two orders.

Layouts: `packed` concatenates documents (BOS/EOS separate them) and cuts the stream into windows
of `context` inputs plus one shifted target; `padded` cuts each document on its own and pads its
last window with `pad_id` (targets there are IGNORE_INDEX). Orders: `permutation` (a seeded global
permutation per epoch) or `prime_stride` (RWKV-LM's magic prime: window i -> (i * p + offset) mod N,
p a prime = 2 mod 3 near N times the golden ratio; O(1) memory, a full cycle over N).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from midilm.store.binidx import BinIdxDataset

IGNORE_INDEX = -100  # torch cross-entropy's default ignore_index
ORDERS = ("permutation", "prime_stride")
LAYOUTS = ("packed", "padded")
GOLDEN = (math.sqrt(5) - 1) / 2


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def magic_prime(n: int) -> int:
    """The prime p = 2 (mod 3), p < n, not dividing n, nearest to n * golden ratio (1 if none):
    i -> (i * p) mod n is then a permutation of range(n) that strides far between neighbours."""
    target = int(n * GOLDEN)
    for distance in range(n):
        for p in (target - distance, target + distance):
            if 1 < p < n and p % 3 == 2 and n % p != 0 and is_prime(p):
                return p
    return 1


def window_order(n: int, order: str, seed: int, epoch: int) -> np.ndarray:
    """A permutation of range(n) for (`seed`, `epoch`) in the `order` named (see module doc)."""
    if order not in ORDERS:
        raise ValueError(f"window order {order!r}: use one of {ORDERS}")
    rng = np.random.default_rng([int(seed), int(epoch)])
    if order == "permutation":
        return rng.permutation(n).astype(np.int64)
    offset = int(rng.integers(0, max(n, 1)))
    return (np.arange(n, dtype=np.int64) * magic_prime(n) + offset) % max(n, 1)


def window_count(num_tokens: int, context: int) -> int:
    """Non-overlapping windows of `context` + 1 tokens (the +1 is the last target) in a stream."""
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    return max(num_tokens - 1, 0) // context


class TokenWindows(Dataset):
    """Map-style dataset of (input, target) int64 windows in a seeded order.

    `layout="packed"` (default): window `i` starts at ``order[i] * context`` in the concatenated
    stream. `layout="padded"`: windows never cross a document; a short last window is padded with
    `pad_id` and its padded targets are IGNORE_INDEX. `order` is "permutation" (default) or
    "prime_stride". One epoch visits each window once; `set_epoch` gives a fresh order.
    """

    def __init__(
        self,
        dataset: BinIdxDataset,
        context: int,
        seed: int,
        *,
        order: str = "permutation",
        layout: str = "packed",
        pad_id: int = 0,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"window layout {layout!r}: use one of {LAYOUTS}")
        self.tokens = dataset.tokens
        self.context = int(context)
        self.seed, self.order, self.layout, self.pad_id = int(seed), order, layout, int(pad_id)
        if layout == "packed":
            n = window_count(dataset.num_tokens, self.context)
            self._starts = np.arange(n, dtype=np.int64) * self.context
            self._lengths = np.full(n, self.context + 1, dtype=np.int64)
        else:
            self._starts, self._lengths = document_windows(dataset, self.context)
        self.n_windows = int(self._starts.size)
        if self.n_windows == 0:
            raise ValueError(
                f"{dataset.prefix}: {dataset.num_tokens} tokens, fewer than context + 1 = "
                f"{self.context + 1}; lower model.context or add pieces to this split."
            )
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reorder the windows deterministically from (seed, epoch)."""
        self.epoch = int(epoch)
        perm = window_order(self.n_windows, self.order, self.seed, self.epoch)
        self.starts, self.lengths = self._starts[perm], self._lengths[perm]

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.batch([i])
        return inputs[0], targets[0]

    def batch(self, indices: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the windows at `indices` into (B, context) input and target tensors."""
        idx = np.asarray(indices, dtype=np.int64)
        starts, lengths = self.starts[idx], self.lengths[idx]
        offsets = np.arange(self.context + 1, dtype=np.int64)
        valid = offsets[None, :] < lengths[:, None]
        where = np.where(valid, starts[:, None] + offsets[None, :], 0)
        chunk = np.asarray(self.tokens[where], dtype=np.int64)
        inputs = np.where(valid[:, 1:], chunk[:, :-1], self.pad_id)  # no input without target
        targets = np.where(valid[:, 1:], chunk[:, 1:], IGNORE_INDEX)
        return torch.from_numpy(inputs), torch.from_numpy(targets)


def document_windows(dataset: BinIdxDataset, context: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of every padded-layout window: each document of n >= 2 tokens gives
    ceil((n - 1) / context) windows of up to context + 1 tokens, overlapping by one token."""
    itemsize = dataset.dtype.itemsize
    sizes = dataset.sizes.astype(np.int64)
    firsts = dataset.pointers.astype(np.int64) // itemsize
    counts = np.maximum(sizes - 1, 0)
    per_doc = -(-counts // context)
    doc = np.repeat(np.arange(sizes.size), per_doc)
    k = np.arange(doc.size) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    starts = firsts[doc] + k * context
    lengths = np.minimum(context + 1, sizes[doc] - k * context)
    return starts.astype(np.int64), lengths.astype(np.int64)


def sequential_windows(
    dataset: BinIdxDataset, context: int, batch_size: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows in stream order (evaluation): (context,) tensors, or
    (batch_size, context) when `batch_size` is given. The tail shorter than a window is skipped."""
    n = window_count(dataset.num_tokens, context)
    step = batch_size or 1
    offsets = np.arange(context + 1, dtype=np.int64)
    for first in range(0, n, step):
        starts = np.arange(first, min(first + step, n), dtype=np.int64) * context
        chunk = np.asarray(dataset.tokens[starts[:, None] + offsets[None, :]], dtype=np.int64)
        inputs, targets = (
            torch.from_numpy(chunk[:, :-1].copy()),
            torch.from_numpy(chunk[:, 1:].copy()),
        )
        if batch_size is None:
            yield inputs[0], targets[0]
        else:
            yield inputs, targets
