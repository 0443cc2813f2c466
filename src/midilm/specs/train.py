"""The `train` group (conf/train/default.yaml), with a model entry's own `train` block on top."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from midilm.common.spec import from_mapping

WHERE = "conf/train/default.yaml"


@dataclass(frozen=True)
class WandbSpec:
    mode: Literal["offline", "online", "disabled"]
    project: str
    entity: str | None


@dataclass(frozen=True)
class TrainSpec:
    """How one model trains: steps, batches, AdamW and its schedule, strategy and precision."""

    steps: int
    batch_size: int  # per process (micro-batch)
    grad_accum: int
    lr: float
    min_lr: float
    warmup_steps: int
    schedule: Literal["cosine", "linear", "constant"]
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    grad_clip: float  # 0: no clipping
    eval_interval: int
    eval_batches: int  # 0: no validation
    checkpoint_interval: int  # 0: no checkpoints
    device: str
    threads: int
    strategy: Literal["single", "ddp", "deepspeed"]
    zero_stage: int
    precision: Literal["auto", "fp32", "bf16"]
    tf32: bool
    gradient_checkpointing: bool
    compile: bool
    wandb: WandbSpec
    dvclive: bool
    epochs: float | None  # when set, fixes `steps` from the number of training examples
    warmup_ratio: float | None  # when set, fixes `warmup_steps` as a share of `steps`

    def with_examples(self, n_examples: int) -> TrainSpec:
        """`steps` from `epochs` over `n_examples`, `warmup_steps` from `warmup_ratio` (both
        only when set); warm-up never longer than training."""
        steps = self.steps
        if self.epochs:
            per_step = self.batch_size * self.grad_accum
            steps = max(1, math.ceil(self.epochs * n_examples / per_step))
        warmup = self.warmup_steps
        if self.warmup_ratio is not None:
            warmup = math.ceil(self.warmup_ratio * steps)
        return dataclasses.replace(self, steps=steps, warmup_steps=min(warmup, steps))

    def identity(self) -> dict[str, Any]:
        """What shapes the trained weights (for checkpoint fingerprints): everything but the
        observers (wandb, dvclive) and the checkpoint interval."""
        values = dataclasses.asdict(self)
        for observer in ("wandb", "dvclive", "checkpoint_interval"):
            values.pop(observer)
        return values


def train_spec(group: Mapping[str, Any], *overrides: Mapping[str, Any] | None) -> TrainSpec:
    """The `train` group with each override block merged on top, in order."""
    merged: dict[str, Any] = dict(group)
    where = WHERE
    for block in overrides:
        if block:
            merged.update(block)
            where = f"{WHERE} + the model's `train` block (conf/model/*.yaml)"
    return from_mapping(TrainSpec, merged, where)
