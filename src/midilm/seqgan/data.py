"""The generator's MLE pre-training data, as the one training loop's `Batches`.

Every sequence has the task's fixed length; the model reads the start token and tokens 0..T-2
and predicts tokens 0..T-1 (the reference's pre-training loss is this mean cross entropy). An
epoch is `len(train) // batch_size` full batches (the reference drops the remainder), in a
seeded order per epoch, so a step's batch is a pure function of (seed, step).
"""

from __future__ import annotations

import functools

import torch

from midilm.common.seeding import derive_seed
from midilm.seqgan.lstm import shift_right
from midilm.train.distributed import DistContext
from midilm.train.loop import Batch


class SequenceBatches:
    def __init__(
        self,
        train: torch.Tensor,
        valid: torch.Tensor,
        batch_size: int,
        eval_batches: int,
        seed: int,
        start_token: int,
    ) -> None:
        if len(train) < batch_size:
            raise ValueError(
                f"{len(train)} training sequences are fewer than one batch of {batch_size}; "
                "use more data or a smaller seqgan.mle.batch_size"
            )
        self.train, self.valid = train, valid
        self.batch_size, self.eval_batches = batch_size, eval_batches
        self.seed, self.start_token = seed, start_token
        self.per_epoch = len(train) // batch_size

    @functools.lru_cache(maxsize=2)  # noqa: B019 (a few epochs' orders, the object lives a run)
    def _order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "mle-epoch", epoch))
        return torch.randperm(len(self.train), generator=generator)

    def _batch(self, tokens: torch.Tensor) -> Batch:
        return {"input_ids": shift_right(tokens, self.start_token), "labels": tokens}

    def train_batch(self, step: int, micro: int, ctx: DistContext) -> Batch:
        epoch, index = divmod(step, self.per_epoch)
        rows = self._order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        return self._batch(self.train[rows])

    def valid_batches(self, ctx: DistContext) -> list[Batch]:
        parts = self.valid.split(self.batch_size)[: self.eval_batches]
        return [self._batch(part) for part in parts]
