"""The one training loop, top to bottom: batch, forward, loss, backward, step, log, evaluate,
checkpoint.

Plain PyTorch on a `transformers`-style model (forward returns `.logits`); no Trainer. Every
model trains through `train`: the from-scratch LMs on windows of a token stream, fine-tuning on
instruction examples with the loss on the continuation only, the fine-tuning stand-in's
pre-training, SeqGAN's MLE pre-training. What differs is an input: the batches (`Batches`), the
loss (`LossFn`), which parameters train (those with `requires_grad`), and the engine. The
strategy (one process, DDP, DeepSpeed) hides behind the engine (`midilm.train.engine`).

Each optimizer step draws its batches from (seed, step, micro, rank), so a checkpoint needs only
the weights, the optimizer, the step and the RNGs. With several processes every rank runs this
loop; only rank 0 logs, and all ranks agree on stopping (a SIGTERM on any rank stops all after
the same step).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from midilm.common.logging import get_logger, progress_disabled
from midilm.train.checkpoint import CheckpointPolicy, load_latest, save_checkpoint
from midilm.train.distributed import DistContext, all_reduce_sum
from midilm.train.optim import lr_at

if TYPE_CHECKING:
    from midilm.specs import TrainSpec
    from midilm.train.engine import Engine
    from midilm.train.tracking import Trackers

log = get_logger(__name__)
ALONE = DistContext()  # one process
IGNORE = -100  # a label that is not a target (prompt, padding)

# input_ids [B, T], labels [B, T] (the target of each position; IGNORE where none), and
# optionally attention_mask [B, T] (1 = a real token)
Batch = dict[str, torch.Tensor]
# (mean loss in nats over the batch's targets, how many targets): the loop weights micro-batches
# by their targets, so a step's loss is the mean over all its targets
LossFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, int]]


class Batches(Protocol):
    """Where a run's data comes from: one training batch per (step, micro-batch, rank), always
    the same for the same coordinates, and the fixed validation batches (global, not per rank)."""

    def train_batch(self, step: int, micro: int, ctx: DistContext) -> Batch: ...

    def valid_batches(self, ctx: DistContext) -> list[Batch]: ...


@dataclass
class LogRow:
    step: int
    train_loss: float
    val_loss: float | None
    lr: float


@dataclass
class TrainResult:
    rows: list[LogRow] = field(default_factory=list)
    val_loss: float = float("nan")
    tokens_seen: int = 0
    train_seconds: float = 0.0  # optimizer steps only, evaluation excluded

    def recent_train_loss(self, last: int) -> float:
        """Mean training loss of the last `last` steps (less noisy than the final step's)."""
        return float(np.mean([r.train_loss for r in self.rows[-max(last, 1) :]]))


class Preempted(Exception):
    """Training stopped on request (SIGTERM) after saving a checkpoint at `step`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pre-empted after step {step}; checkpoint saved")
        self.step = step


def lm_loss(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
    """Mean next-token cross entropy in nats over the labelled positions, and their count."""
    kwargs = {"input_ids": batch["input_ids"]}
    if "attention_mask" in batch:
        kwargs["attention_mask"] = batch["attention_mask"]
    logits = model(**kwargs).logits
    labels = batch["labels"]
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE
    )
    return loss, target_count(batch)


def target_count(batch: Batch) -> int:
    return int((batch["labels"] != IGNORE).sum())


def token_count(batch: Batch) -> int:
    """Tokens the model reads: the real (unpadded) ones."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: list[Batch],
    ctx: DistContext = ALONE,
    precision: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    loss: LossFn = lm_loss,
) -> float:
    """Mean loss over fixed validation batches (dropout off), weighted by targets.

    With several processes each batch is split in `world_size` equal row slices, rank r takes
    the r-th, and the sums are reduced: the same windows as one process evaluates alone.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = count = 0.0
    for full in batches:
        rows = -(-full["input_ids"].size(0) // ctx.world_size)
        part = slice(ctx.rank * rows, (ctx.rank + 1) * rows)
        batch = {k: v[part] for k, v in full.items()}
        if batch["input_ids"].numel() == 0 or target_count(batch) == 0:
            continue
        with precision():
            mean, n = loss(model, to_device(batch, device))
        total += float(mean) * n
        count += n
    model.train(was_training)
    total, count = all_reduce_sum([total, count])
    return total / count if count else float("nan")


def default_val_metrics(val_loss: float) -> dict[str, float]:
    return {"val/loss": val_loss, "val/perplexity": math.exp(val_loss)}


def train(
    engine: Engine,
    batches: Batches,
    spec: TrainSpec,
    ctx: DistContext = ALONE,
    *,
    loss: LossFn = lm_loss,
    checkpoint: CheckpointPolicy | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    trackers: Trackers | None = None,
    val_metrics: Callable[[float], dict[str, float]] = default_val_metrics,
    desc: str = "train",
) -> TrainResult:
    """Train `engine.module` in place for `spec.steps` optimizer steps.

    With a checkpoint policy it resumes from the newest checkpoint of the same run and saves one
    every `policy.interval` steps; when `stop_requested()` turns true on any rank it saves and
    raises `Preempted` on every rank. A resumed run ends exactly where an uninterrupted one does.
    `trackers` (rank 0) receive train loss, lr and tokens/s each step and `val_metrics` at each
    evaluation; they only observe. Without validation batches (`eval_batches: 0`) the result's
    `val_loss` stays NaN.
    """
    valid = batches.valid_batches(ctx) if spec.eval_batches > 0 else []
    result = TrainResult()
    start_step = _resume(checkpoint, engine, ctx, result)
    engine.module.train()

    bar = tqdm(
        range(start_step, spec.steps),
        initial=start_step,
        total=spec.steps,
        desc=desc,
        disable=progress_disabled() or not ctx.is_main,
        dynamic_ncols=True,
    )
    for step in bar:
        lr = lr_at(step, spec)
        engine.set_lr(lr)
        engine.sync()
        start = time.perf_counter()

        # batch; forward, loss, backward per micro-batch (weighted by its share of the targets)
        micro_batches = [batches.train_batch(step, m, ctx) for m in range(spec.grad_accum)]
        targets = [target_count(b) for b in micro_batches]
        step_loss, tokens = 0.0, 0
        for micro, batch in enumerate(micro_batches):
            last = micro == len(micro_batches) - 1
            weight = targets[micro] / max(sum(targets), 1)
            step_loss += engine.micro_step(to_device(batch, engine.device), loss, weight, last)
            tokens += token_count(batch)

        # step; the global loss, tokens and the stop vote in one reduction
        engine.optimizer_step()
        loss_sum, stop_votes, tokens_all = all_reduce_sum(
            [step_loss, float(stop_requested()), float(tokens)]
        )
        step_loss = loss_sum / ctx.world_size
        engine.sync()
        seconds = time.perf_counter() - start
        result.train_seconds += seconds
        result.tokens_seen += int(tokens_all)

        # log, evaluate
        done, stopping = step + 1, stop_votes > 0
        val_loss = None
        logged = {"train/loss": step_loss, "train/lr": lr}
        logged["train/tokens_per_s"] = tokens_all / max(seconds, 1e-9)
        if valid and (done % spec.eval_interval == 0 or done == spec.steps):
            val_loss = evaluate(engine.module, valid, ctx, engine.autocast, loss)
            result.val_loss = val_loss
            logged.update(val_metrics(val_loss))
            if ctx.is_main:
                log.info(
                    "%s step %d: train loss %.4f, val loss %.4f", desc, done, step_loss, val_loss
                )
        result.rows.append(LogRow(done, step_loss, val_loss, lr))
        if trackers is not None:
            trackers.log(done, logged)
        speed = result.tokens_seen / max(result.train_seconds, 1e-9)
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{speed:,.0f}")

        # checkpoint (every `interval` steps, and before stopping on request)
        if checkpoint and done < spec.steps and (stopping or done % checkpoint.interval == 0):
            rows = [[r.step, r.train_loss, r.val_loss, r.lr] for r in result.rows]
            save_checkpoint(
                checkpoint,
                engine,
                ctx,
                done,
                rows,
                result.tokens_seen,
                result.train_seconds,
                result.val_loss,
            )
        if stopping and done < spec.steps:
            raise Preempted(done)
    return result


def _resume(
    checkpoint: CheckpointPolicy | None, engine: Engine, ctx: DistContext, result: TrainResult
) -> int:
    """Load the newest checkpoint into the engine and result; the step to start from."""
    resumed = load_latest(checkpoint, engine, ctx) if checkpoint else None
    if resumed is None:
        return 0
    result.rows = [LogRow(int(s), float(t), v, float(lr)) for s, t, v, lr in resumed.rows]
    result.tokens_seen = resumed.tokens_seen
    result.train_seconds = resumed.train_seconds
    result.val_loss = resumed.val_loss
    return resumed.step
