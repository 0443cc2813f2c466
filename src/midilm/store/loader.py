"""Training windows over a binidx token stream: documents are concatenated (BOS/EOS separate
them) and cut into windows of `context` inputs plus one shifted target token."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from midilm.store.binidx import BinIdxDataset


def window_count(num_tokens: int, context: int) -> int:
    """Non-overlapping windows of `context` + 1 tokens (the +1 is the last target) in a stream."""
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    return max(num_tokens - 1, 0) // context


class TokenWindows(Dataset):
    """Map-style dataset of (input, target) int64 windows, in a global seeded random order.

    Window `i` starts at ``perm[i] * context``; `perm` is a permutation of every window of the
    stream drawn from (`seed`, epoch), so one epoch visits each window exactly once. Call
    `set_epoch` for a fresh order; use with ``DataLoader(shuffle=False)`` or `batch`.
    """

    def __init__(self, dataset: BinIdxDataset, context: int, seed: int) -> None:
        self.tokens = dataset.tokens
        self.context = int(context)
        self.seed = int(seed)
        self.n_windows = window_count(dataset.num_tokens, self.context)
        if self.n_windows == 0:
            raise ValueError(
                f"{dataset.prefix}: {dataset.num_tokens} tokens, fewer than context + 1 = "
                f"{self.context + 1}; lower model.context or add pieces to this split."
            )
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the window order deterministically from (seed, epoch)."""
        self.epoch = int(epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.starts = rng.permutation(self.n_windows).astype(np.int64) * self.context

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.starts[i])
        chunk = np.asarray(self.tokens[start : start + self.context + 1], dtype=np.int64)
        return torch.from_numpy(chunk[:-1].copy()), torch.from_numpy(chunk[1:].copy())

    def batch(self, indices: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the windows at `indices` into (B, context) input and target tensors."""
        starts = self.starts[np.asarray(indices, dtype=np.int64)]
        offsets = np.arange(self.context + 1, dtype=np.int64)
        chunk = np.asarray(self.tokens[starts[:, None] + offsets[None, :]], dtype=np.int64)
        return torch.from_numpy(chunk[:, :-1].copy()), torch.from_numpy(chunk[:, 1:].copy())


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
