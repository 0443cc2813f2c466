"""AdamW with decay on matrices only, and the warm-up + cosine/linear learning-rate schedule."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from midilm.specs import TrainSpec

SCHEDULES = ("cosine", "linear", "constant")


def make_optimizer(model: torch.nn.Module, spec: TrainSpec) -> torch.optim.AdamW:
    """AdamW; weight decay on 2-D weights (linear, embedding), none on biases and LayerNorm."""
    params = {id(p): p for p in model.parameters() if p.requires_grad}  # tied weights once
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = bool(params) and all(p.is_cuda for p in params.values())  # one kernel on a GPU
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, fused=fused)


def lr_at(step: int, spec: TrainSpec) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up, then decay to min_lr
    (cosine or linear), or the peak rate throughout (constant)."""
    lr, min_lr = spec.lr, spec.min_lr
    warmup, total, schedule = spec.warmup_steps, spec.steps, spec.schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={schedule!r}; use one of {SCHEDULES} (conf/train)")
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    if schedule == "cosine":
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    return lr - (lr - min_lr) * progress
