"""Windows of `context` + 1 tokens over a packed token stream (documents are concatenated; BOS and
EOS separate them): random windows for training, fixed sequential ones for validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from midilm.store.binidx import BinIdxDataset
from midilm.train.distributed import DistContext
from midilm.train.loop import Batch


@dataclass(frozen=True)
class WindowBatches:
    """The training loop's batches for a causal LM over token streams (`midilm.train.loop`)."""

    train_tokens: np.ndarray
    valid_tokens: np.ndarray
    context: int
    batch_size: int  # per process
    seed: int
    eval_batches: int

    def train_batch(self, step: int, micro: int, ctx: DistContext) -> Batch:
        inputs, targets = random_batch(
            self.train_tokens,
            self.context,
            self.batch_size,
            self.seed,
            step,
            micro,
            ctx.rank,
            ctx.world_size,
        )
        return {"input_ids": inputs, "labels": targets}

    def valid_batches(self, ctx: DistContext) -> list[Batch]:
        """`eval_batches` global batches (batch_size x world_size windows), split over ranks."""
        windows = sequential_batches(
            self.valid_tokens, self.context, self.batch_size * ctx.world_size, self.eval_batches
        )
        return [{"input_ids": inputs, "labels": targets} for inputs, targets in windows]


def load_stream(prefix: Path, context: int) -> np.ndarray:
    """The flat token ids of `<prefix>.bin` (memmap): at least `context` + 1, else an error."""
    tokens = BinIdxDataset(prefix).tokens
    if tokens.size < context + 1:
        raise ValueError(
            f"{prefix}.bin: {tokens.size} tokens, fewer than context + 1 = {context + 1}; "
            "lower `model.context` or add data (conf/dataset)"
        )
    return tokens


def random_batch(
    tokens: np.ndarray,
    context: int,
    batch_size: int,
    seed: int,
    step: int,
    micro: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) int64 [batch, context] at random starts drawn from (seed, step, micro).

    A batch depends only on its coordinates, never on the batches before it, so a resumed run
    sees exactly the batches an uninterrupted one would. With several processes the global batch
    of `world_size` x `batch_size` windows is drawn once and rank r takes the r-th slice: ranks see
    different windows, and together exactly those of one process with `world_size` x the batch.
    """
    rng = np.random.default_rng([seed, step, micro])
    starts = rng.integers(0, tokens.size - context, size=batch_size * world_size)
    return _windows(tokens, starts[rank * batch_size : (rank + 1) * batch_size], context)


def sequential_batches(
    tokens: np.ndarray, context: int, batch_size: int, max_batches: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `max_batches` batches of non-overlapping windows from the start of the stream."""
    count = min((tokens.size - 1) // context, batch_size * max_batches)
    starts = np.arange(count, dtype=np.int64) * context
    return [
        _windows(tokens, starts[i : i + batch_size], context) for i in range(0, count, batch_size)
    ]


def _windows(
    tokens: np.ndarray, starts: np.ndarray, context: int
) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.stack([np.asarray(tokens[s : s + context + 1], dtype=np.int64) for s in starts])
    block = torch.from_numpy(rows)
    return block[:, :-1], block[:, 1:]
