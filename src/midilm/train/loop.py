"""The training loop, top to bottom: batch, forward, loss, backward, step, log, evaluate.

Plain PyTorch on a `transformers` model; no Trainer. Each optimizer step draws its batches from
(seed, step), so a checkpoint needs only the weights, the optimizer, the step and the torch RNG.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from midilm.common.logging import get_logger, progress_disabled
from midilm.train.checkpoint import CheckpointPolicy, load_latest, save_checkpoint
from midilm.train.data import random_batch, sequential_batches
from midilm.train.optim import lr_at, make_optimizer

log = get_logger(__name__)


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
def evaluate(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean loss over fixed validation batches (dropout off), weighted by tokens."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = count = 0.0
    for inputs, targets in batches:
        loss = lm_loss(model, inputs.to(device), targets.to(device))
        total += float(loss) * targets.numel()
        count += targets.numel()
    model.train(was_training)
    return total / count


def train(
    model: torch.nn.Module,
    train_tokens: np.ndarray,
    valid_tokens: np.ndarray,
    cfg: Mapping[str, Any],
    context: int,
    seed: int,
    checkpoint: CheckpointPolicy | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train `model` in place for `cfg["steps"]` optimizer steps (params.yaml's `train` group).

    With a checkpoint policy it resumes from the newest checkpoint of the same run and saves one
    every `policy.interval` steps; when `stop_requested()` turns true it saves and raises
    `Preempted`. A resumed run ends exactly where an uninterrupted one does.
    """
    device = next(model.parameters()).device
    steps, batch_size = int(cfg["steps"]), int(cfg["batch_size"])
    accum, eval_interval = int(cfg["grad_accum"]), int(cfg["eval_interval"])
    valid = sequential_batches(valid_tokens, context, batch_size, int(cfg["eval_batches"]))
    optimizer = make_optimizer(model, cfg)
    result = TrainResult()
    start_step = _resume(checkpoint, model, optimizer, result)
    model.train()

    bar = tqdm(
        range(start_step, steps),
        initial=start_step,
        total=steps,
        desc="train",
        disable=progress_disabled(),
        dynamic_ncols=True,
    )
    for step in bar:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _sync(device)
        start = time.perf_counter()

        # batch, forward, loss, backward (gradients accumulate over `accum` micro-batches)
        step_loss = 0.0
        for micro in range(accum):
            inputs, targets = random_batch(train_tokens, context, batch_size, seed, step, micro)
            loss = lm_loss(model, inputs.to(device), targets.to(device)) / accum
            loss.backward()
            step_loss += float(loss.detach())

        # step
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        result.train_seconds += time.perf_counter() - start
        result.tokens_seen += accum * batch_size * context

        # log, evaluate
        val_loss = None
        if (step + 1) % eval_interval == 0 or step + 1 == steps:
            val_loss = evaluate(model, valid)
            result.val_loss = val_loss
            log.info("step %d: train loss %.4f, val loss %.4f", step + 1, step_loss, val_loss)
        result.rows.append(LogRow(step + 1, step_loss, val_loss, lr))
        speed = result.tokens_seen / max(result.train_seconds, 1e-9)
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{speed:,.0f}")

        # checkpoint (every `interval` steps, and before stopping on request)
        done, stopping = step + 1, stop_requested()
        if checkpoint and done < steps and (stopping or done % checkpoint.interval == 0):
            rows = [[r.step, r.train_loss, r.val_loss, r.lr] for r in result.rows]
            save_checkpoint(
                checkpoint,
                model,
                optimizer,
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
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
) -> int:
    """Load the newest checkpoint into model, optimizer and result; the step to start from."""
    resumed = load_latest(checkpoint, model, optimizer) if checkpoint else None
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
