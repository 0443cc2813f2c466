"""Training strategies behind one small interface: `single` (plain PyTorch), `ddp`
(DistributedDataParallel) and `deepspeed` (ZeRO stage 2 through `deepspeed.initialize`).

The loop asks an engine for a micro-step (forward, loss, backward) and an optimizer step; the
engine owns the optimizer, the wrapping, mixed precision and what a checkpoint must hold beyond
the weights. Every engine keeps the bare model as `module` for evaluation and saving.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from safetensors.torch import load_file, save_file

from midilm.common.logging import get_logger
from midilm.train.distributed import DistContext
from midilm.train.optim import make_optimizer
from midilm.train.precision import autocast

if TYPE_CHECKING:
    from midilm.specs import TrainSpec

# (model, batch on the engine's device) -> (mean loss over the batch's targets, their count)
LossFn = Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, int]]

log = get_logger(__name__)

ZERO_STAGES = (1, 2)  # partitioned optimizer state (1) and gradients (2); weights replicated


def enable_gradient_checkpointing(model: torch.nn.Module) -> bool:
    """Recompute activations in backward (transformers' non-reentrant checkpointing)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        log.warning("%s has no gradient checkpointing; training without", type(model).__name__)
        return False
    kwargs = {"use_reentrant": False}  # works under DDP and with frozen inputs
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return True


class Engine(Protocol):
    """What the loop and checkpoints need from a strategy: the bare model, a micro-step
    (forward, loss, backward), an optimizer step, the learning rate, and checkpoint state."""

    module: torch.nn.Module
    device: torch.device

    def autocast(self) -> contextlib.AbstractContextManager[None]: ...

    def set_lr(self, lr: float) -> None: ...

    def micro_step(
        self, batch: dict[str, torch.Tensor], loss: LossFn, weight: float, last: bool
    ) -> float: ...

    def optimizer_step(self) -> None: ...

    def sync(self) -> None: ...

    def checkpoint_state(self) -> dict[str, Any] | None: ...

    def save_shard(self, directory: Path, rank: int) -> None: ...

    def load_checkpoint(self, state: dict[str, Any] | None, directory: Path, rank: int) -> None: ...

    def export(self) -> torch.nn.Module: ...


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TorchEngine:
    """`single` (one process) and `ddp` (a DistributedDataParallel wrapper when world > 1)."""

    def __init__(
        self,
        model: torch.nn.Module,
        spec: TrainSpec,
        ctx: DistContext,
        device: torch.device,
        precision: str,
    ) -> None:
        self.module, self.device, self.precision = model, device, precision
        self.grad_clip = spec.grad_clip
        self.optimizer = make_optimizer(model, spec)
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        forward: torch.nn.Module = model
        if ctx.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
            forward = self.ddp
        self.forward_model = torch.compile(forward) if spec.compile else forward

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return autocast(self.device, self.precision)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def sync(self) -> None:
        _sync(self.device)

    def micro_step(
        self, batch: dict[str, torch.Tensor], loss: LossFn, weight: float, last: bool
    ) -> float:
        """Forward and backward of one micro-batch, its loss scaled by `weight` (its share of
        the step's targets); gradients sync across ranks on the last. The scaled loss."""
        sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
        with sync:
            with self.autocast():
                mean, _ = loss(self.forward_model, batch)
                scaled = mean * weight
            scaled.backward()
        return float(scaled.detach())

    def optimizer_step(self) -> None:
        if self.grad_clip > 0:
            trainable = [p for p in self.module.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # checkpoint: the optimizer is the same on every rank, so rank 0's state.pt holds it
    def checkpoint_state(self) -> dict[str, Any] | None:
        return self.optimizer.state_dict()

    def save_shard(self, directory: Path, rank: int) -> None:
        """Nothing per rank: the replicated optimizer state is in `checkpoint_state`."""

    def load_checkpoint(self, state: dict[str, Any] | None, directory: Path, rank: int) -> None:
        if state is None:
            raise ValueError(f"{directory}: no optimizer state; it was saved by another strategy")
        self.optimizer.load_state_dict(state)

    def export(self) -> torch.nn.Module:
        """The trained model with full-precision weights (call on every rank)."""
        return self.module


class DeepSpeedEngine:
    """DeepSpeed ZeRO (stage 2 by default) with our AdamW as the client optimizer.

    bf16 goes into the DeepSpeed config (GPU only: the weights are kept in bf16 and the fp32
    master copy in the partitioned optimizer); on CPU training stays fp32. Gradient clipping and
    accumulation are DeepSpeed's. A checkpoint holds, per rank, that rank's partition of the fp32
    master weights and Adam moments as safetensors, so resuming unpickles nothing; it needs the
    same world size (the checkpoint fingerprint covers it).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: TrainSpec,
        ctx: DistContext,
        device: torch.device,
        precision: str,
    ) -> None:
        if precision == "bf16" and device.type != "cuda":
            raise ValueError(
                "train.strategy=deepspeed with precision bf16 needs a GPU; set train.precision "
                "to fp32 or auto on CPU"
            )
        stage = spec.zero_stage
        if stage not in ZERO_STAGES:
            raise ValueError(f"train.zero_stage={stage}; use one of {ZERO_STAGES} (conf/train)")
        import deepspeed

        batch, accum = spec.batch_size, spec.grad_accum
        self.accum = accum
        config = {
            "train_micro_batch_size_per_gpu": batch,
            "gradient_accumulation_steps": accum,
            "train_batch_size": batch * accum * ctx.world_size,
            "gradient_clipping": spec.grad_clip,
            "zero_optimization": {
                "stage": stage,
                "contiguous_gradients": True,
                "overlap_comm": device.type == "cuda",
                "reduce_bucket_size": bucket_size(model),
                "allgather_bucket_size": bucket_size(model),
            },
            "bf16": {"enabled": precision == "bf16"},
            "fp16": {"enabled": False},
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
        }
        self.device, self.precision = device, precision
        engine, optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=make_optimizer(model, spec), config=config
        )
        self.engine, self.zero = engine, optimizer
        self.module: torch.nn.Module = engine.module
        self.forward_model = engine
        if spec.compile:
            engine.compile()

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # bf16 weights already; fp32 on CPU

    def set_lr(self, lr: float) -> None:
        for group in self.zero.param_groups:
            group["lr"] = lr

    def sync(self) -> None:
        _sync(self.device)

    def micro_step(
        self, batch: dict[str, torch.Tensor], loss: LossFn, weight: float, last: bool
    ) -> float:
        """Forward and backward; DeepSpeed divides by `accum` itself (so the loss is scaled by
        weight x accum) and steps at the accumulation boundary. The loss scaled by `weight`."""
        mean, _ = loss(self.engine, batch)
        self.engine.backward(mean * (weight * self.accum))
        self.engine.step()
        return float(mean.detach()) * weight

    def optimizer_step(self) -> None:
        """Done by `engine.step()` on the last micro-batch."""

    # checkpoint: each rank saves its own partition of the optimizer
    def checkpoint_state(self) -> dict[str, Any] | None:
        return None

    def _shard_tensors(self) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        base = self.zero.optimizer
        for i, fp32 in enumerate(self.zero.single_partition_of_fp32_groups):
            tensors[f"group{i}.fp32"] = fp32.detach()
            for name, value in base.state[base.param_groups[i]["params"][0]].items():
                if not torch.is_tensor(value):
                    raise TypeError(f"optimizer state {name!r} is not a tensor: cannot save it")
                tensors[f"group{i}.{name}"] = value.detach()
        return {k: v.cpu().contiguous() for k, v in tensors.items()}

    def save_shard(self, directory: Path, rank: int) -> None:
        save_file(self._shard_tensors(), str(directory / shard_name(rank)))

    def load_checkpoint(self, state: dict[str, Any] | None, directory: Path, rank: int) -> None:
        path = directory / shard_name(rank)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; the checkpoint was not saved by DeepSpeed")
        saved = load_file(str(path))
        base = self.zero.optimizer
        for i, fp32 in enumerate(self.zero.single_partition_of_fp32_groups):
            fp32.data.copy_(saved.pop(f"group{i}.fp32"))
            param = base.param_groups[i]["params"][0]
            prefix = f"group{i}."
            for key in [k for k in saved if k.startswith(prefix)]:
                value = saved.pop(key)
                device = fp32.device if value.shape == fp32.shape else value.device
                base.state[param][key[len(prefix) :]] = value.to(device)
        if saved:
            raise ValueError(f"{path}: unexpected entries {sorted(saved)}")
        # the (bf16) weights loaded from the checkpoint are already this master copy rounded

    def export(self) -> torch.nn.Module:
        """The model with the full fp32 master weights (collective: call on every rank).

        In fp32 they equal the model's weights already; gathering them anyway keeps this path
        exercised on CPU, where bf16 is not available.
        """
        from deepspeed.utils import safe_get_full_fp32_param

        full = [(p, safe_get_full_fp32_param(p)) for p in self.module.parameters()]
        for param, value in full:
            param.data = value.detach().clone().view_as(param).to(torch.float32)
        return self.module.float()


def bucket_size(model: torch.nn.Module, cap: int = 200_000_000) -> int:
    """DeepSpeed's reduce/all-gather bucket in elements: the model rounded up to 2^20, at most
    `cap`. Its default (5e8) allocates 2 GB per micro-step, which deterministic mode then fills."""
    total = sum(p.numel() for p in model.parameters())
    return min(cap, -(-total // 2**20) * 2**20)


def shard_name(rank: int) -> str:
    return f"optimizer-rank{rank:05d}.safetensors"


def make_engine(
    strategy: str,
    model: torch.nn.Module,
    spec: TrainSpec,
    ctx: DistContext,
    device: torch.device,
    precision: str,
) -> Engine:
    if strategy == "deepspeed":
        return DeepSpeedEngine(model, spec, ctx, device, precision)
    return TorchEngine(model, spec, ctx, device, precision)
