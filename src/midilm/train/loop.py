"""The training loop, top to bottom: batch, forward, loss, backward, step, log, evaluate.

Plain PyTorch on a `transformers` model; no Trainer. The strategy (one process, DDP, DeepSpeed)
hides behind an engine (`midilm.train.engine`). Each optimizer step draws its batches from
(seed, step, rank), so a checkpoint needs only the weights, the optimizer, the step and the RNGs.
With several processes every rank runs this loop; only rank 0 logs, and all ranks agree on
stopping (a SIGTERM on any rank stops all after the same step).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from midilm.common.logging import get_logger, progress_disabled
from midilm.train.checkpoint import CheckpointPolicy, load_latest, save_checkpoint
from midilm.train.data import random_batch, sequential_batches
from midilm.train.distributed import DistContext, all_reduce_sum
from midilm.train.optim import lr_at

if TYPE_CHECKING:
    from midilm.train.engine import DeepSpeedEngine, TorchEngine
    from midilm.train.tracking import Trackers

log = get_logger(__name__)
ALONE = DistContext()  # one process


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
        return float(np.mean([r.train_loss for r in self.rows[-last:]]))


class Preempted(Exception):
    """Training stopped on request (SIGTERM) after saving a checkpoint at `step`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pre-empted after step {step}; checkpoint saved")
        self.step = step


def lm_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy in nats; `targets` are the inputs shifted by one."""
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    ctx: DistContext = ALONE,
    precision: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> float:
    """Mean loss over fixed validation batches (dropout off), weighted by tokens.

    With several processes each batch is split in `world_size` equal row slices, rank r takes
    the r-th, and the sums are reduced: the same windows as one process evaluates alone.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = count = 0.0
    for full_inputs, full_targets in batches:
        rows = -(-full_inputs.size(0) // ctx.world_size)
        part = slice(ctx.rank * rows, (ctx.rank + 1) * rows)
        inputs, targets = full_inputs[part], full_targets[part]
        if targets.numel() == 0:
            continue
        with precision():
            loss = lm_loss(model, inputs.to(device), targets.to(device))
        total += float(loss) * targets.numel()
        count += targets.numel()
    model.train(was_training)
    total, count = all_reduce_sum([total, count])
    return total / count


def default_val_metrics(val_loss: float) -> dict[str, float]:
    return {"val/loss": val_loss, "val/perplexity": math.exp(val_loss)}


def train(
    engine: TorchEngine | DeepSpeedEngine,
    train_tokens: np.ndarray,
    valid_tokens: np.ndarray,
    cfg: Mapping[str, Any],
    context: int,
    seed: int,
    ctx: DistContext = ALONE,
    checkpoint: CheckpointPolicy | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    trackers: Trackers | None = None,
    val_metrics: Callable[[float], dict[str, float]] = default_val_metrics,
) -> TrainResult:
    """Train `engine.module` in place for `cfg["steps"]` optimizer steps (the `train` group).

    With a checkpoint policy it resumes from the newest checkpoint of the same run and saves one
    every `policy.interval` steps; when `stop_requested()` turns true on any rank it saves and
    raises `Preempted` on every rank. A resumed run ends exactly where an uninterrupted one does.
    `trackers` (rank 0) receive train loss, lr and tokens/s each step and `val_metrics` at each
    evaluation; they only observe.
    """
    device = engine.device
    steps, batch_size = int(cfg["steps"]), int(cfg["batch_size"])
    accum, eval_interval = int(cfg["grad_accum"]), int(cfg["eval_interval"])
    step_tokens = ctx.world_size * accum * batch_size * context
    valid = sequential_batches(  # eval_batches global batches, split over the ranks
        valid_tokens, context, batch_size * ctx.world_size, int(cfg["eval_batches"])
    )
    result = TrainResult()
    start_step = _resume(checkpoint, engine, ctx, result)
    engine.module.train()

    bar = tqdm(
        range(start_step, steps),
        initial=start_step,
        total=steps,
        desc="train",
        disable=progress_disabled() or not ctx.is_main,
        dynamic_ncols=True,
    )
    for step in bar:
        lr = lr_at(step, cfg)
        engine.set_lr(lr)
        _sync(device)
        start = time.perf_counter()

        # batch, forward, loss, backward (gradients accumulate over `accum` micro-batches)
        step_loss = 0.0
        for micro in range(accum):
            inputs, targets = random_batch(
                train_tokens, context, batch_size, seed, step, micro, ctx.rank, ctx.world_size
            )
            last = micro == accum - 1
            step_loss += engine.micro_step(inputs.to(device), targets.to(device), accum, last)

        # step; the global loss and the stop vote in one reduction
        engine.optimizer_step()
        loss_sum, stop_votes = all_reduce_sum([step_loss, float(stop_requested())])
        step_loss = loss_sum / ctx.world_size
        _sync(device)
        seconds = time.perf_counter() - start
        result.train_seconds += seconds
        result.tokens_seen += step_tokens

        # log, evaluate
        done, stopping = step + 1, stop_votes > 0
        val_loss = None
        logged = {"train/loss": step_loss, "train/lr": lr}
        logged["train/tokens_per_s"] = step_tokens / max(seconds, 1e-9)
        if done % eval_interval == 0 or done == steps:
            val_loss = evaluate(engine.module, valid, ctx, engine.autocast)
            result.val_loss = val_loss
            logged.update(val_metrics(val_loss))
            if ctx.is_main:
                log.info("step %d: train loss %.4f, val loss %.4f", done, step_loss, val_loss)
        result.rows.append(LogRow(done, step_loss, val_loss, lr))
        if trackers is not None:
            trackers.log(done, logged)
        speed = result.tokens_seen / max(result.train_seconds, 1e-9)
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{speed:,.0f}")

        # checkpoint (every `interval` steps, and before stopping on request)
        if checkpoint and done < steps and (stopping or done % checkpoint.interval == 0):
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
        if stopping and done < steps:
            raise Preempted(done)
    return result


def _resume(
    checkpoint: CheckpointPolicy | None,
    engine: TorchEngine | DeepSpeedEngine,
    ctx: DistContext,
    result: TrainResult,
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
