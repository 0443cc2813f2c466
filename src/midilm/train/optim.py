"""AdamW with decay on matrices only, and the warm-up + cosine/linear learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

SCHEDULES = ("cosine", "linear")


def make_optimizer(model: torch.nn.Module, cfg: Mapping[str, Any]) -> torch.optim.AdamW:
    """AdamW; weight decay on 2-D weights (linear, embedding), none on biases and LayerNorm."""
    params = {id(p): p for p in model.parameters() if p.requires_grad}  # tied weights once
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": float(cfg["weight_decay"])},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    betas = tuple(float(b) for b in cfg["betas"])
    return torch.optim.AdamW(groups, lr=float(cfg["lr"]), betas=betas, eps=float(cfg["eps"]))


def lr_at(step: int, cfg: Mapping[str, Any]) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up, then decay to min_lr."""
    lr, min_lr = float(cfg["lr"]), float(cfg["min_lr"])
    warmup, total = int(cfg["warmup_steps"]), int(cfg["steps"])
    schedule = str(cfg.get("schedule", "cosine"))
    if schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={schedule!r}; use one of {SCHEDULES} (conf/train)")
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    if schedule == "cosine":
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    return lr - (lr - min_lr) * progress
