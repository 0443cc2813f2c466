"""Checkpoints for exact resume: safetensors weights plus optimizer, RNG and log state.

A checkpoint is a folder `checkpoints/step-NNNNNNNN/` beside the stage outputs, written under a
temporary name and renamed into place by rank 0, so a run killed mid-save never leaves one that
looks complete. It carries a fingerprint of everything that shapes training (params, data size,
world size); a checkpoint from other params is never resumed. Loading never unpickles arbitrary
objects: weights (and DeepSpeed's per-rank optimizer partitions) come from safetensors, the rest
through `torch.load(weights_only=True)`. Every rank's RNG state is kept, indexed by rank.

Saving and loading are collective: every rank calls them (the folder must be on a filesystem all
ranks see, as the model folder is).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file

from midilm.common.io import read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.train.distributed import DistContext, all_gather_tensor, barrier

log = get_logger(__name__)

__all__ = [
    "CheckpointPolicy",
    "clear",
    "latest_step",
    "load_latest",
    "save_checkpoint",
]
WEIGHTS, STATE, META = "model.safetensors", "state.pt", "meta.json"


class CheckpointEngine(Protocol):
    """What a checkpoint needs from a training engine (see `midilm.train.engine`)."""

    module: torch.nn.Module
    device: torch.device

    def checkpoint_state(self) -> dict[str, Any] | None: ...

    def save_shard(self, directory: Path, rank: int) -> None: ...

    def load_checkpoint(self, state: dict[str, Any] | None, directory: Path, rank: int) -> None: ...


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where and how often to checkpoint; `fingerprint` identifies the run that may resume."""

    directory: Path
    interval: int
    fingerprint: str
    keep: int = 1


@dataclass
class Resumed:
    step: int
    rows: list[list[Any]]
    tokens_seen: int
    train_seconds: float
    val_loss: float


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """The module's state as safetensors, each tied parameter once (under its first name).

    Copies are saved, not the tensors themselves: under DeepSpeed the parameters are views into
    one flat buffer, which safetensors would refuse.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in _checkpointed(module).items():
        if id(value) not in seen:
            seen.add(id(value))
            tensors[name] = value.detach().cpu().clone().contiguous()
    save_file(tensors, str(path))


def _checkpointed(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint holds of the model: every tensor, or only the trained parameters when
    some are frozen (fine-tuning: the base is reloaded from where it came, never saved)."""
    state = module.state_dict(keep_vars=True)
    if all(p.requires_grad for p in module.parameters()):
        return state
    return {k: v for k, v in state.items() if isinstance(v, torch.nn.Parameter) and v.requires_grad}


def load_weights(module: torch.nn.Module, path: Path, device: torch.device) -> None:
    """Load `save_weights`' file; only aliases of tied parameters may be absent from it."""
    missing, unexpected = module.load_state_dict(load_file(str(path), device=str(device)), False)
    names_by_id: dict[int, list[str]] = {}
    for name, value in _checkpointed(module).items():
        names_by_id.setdefault(id(value), []).append(name)
    aliases = {name for names in names_by_id.values() for name in names[1:]}
    expected = {name for names in names_by_id.values() for name in names}
    if unexpected or (set(missing) & expected) - aliases:
        raise ValueError(
            f"{path}: weights do not fit the model (missing "
            f"{sorted((set(missing) & expected) - aliases)}, "
            f"unexpected {sorted(unexpected)}); delete the checkpoint folder to start fresh"
        )


def _rng_states(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This rank's CPU (and CUDA) generator states gathered from every rank: [world, n]."""
    cpu = all_gather_tensor(torch.get_rng_state())
    cuda = all_gather_tensor(torch.cuda.get_rng_state(device)) if device.type == "cuda" else None
    return cpu, cuda


def save_checkpoint(
    policy: CheckpointPolicy,
    engine: CheckpointEngine,
    ctx: DistContext,
    step: int,
    rows: list[list[Any]],
    tokens_seen: int,
    train_seconds: float,
    val_loss: float,
) -> Path:
    """Save the state after `step` optimizer steps; keep the newest `policy.keep` checkpoints."""
    final = policy.directory / f"step-{step:08d}"
    tmp = policy.directory / f".tmp-step-{step:08d}"
    torch_rng, cuda_rng = _rng_states(engine.device)
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    engine.save_shard(tmp, ctx.rank)
    if ctx.is_main:
        save_weights(engine.module, tmp / WEIGHTS)
        state: dict[str, Any] = {
            "step": step,
            "optimizer": engine.checkpoint_state(),
            "torch_rng": torch_rng,
            "cuda_rng": cuda_rng,
            "rows": rows,
            "tokens_seen": tokens_seen,
            "train_seconds": train_seconds,
            "val_loss": val_loss,
        }
        torch.save(state, tmp / STATE)
    barrier()
    if ctx.is_main:
        meta = {"step": step, "fingerprint": policy.fingerprint, "world_size": ctx.world_size}
        write_json_atomic(tmp / META, meta)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in sorted(policy.directory.glob("step-*"))[: -policy.keep]:
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint: step %d -> %s", step, final)
    barrier()
    return final


def _complete(policy: CheckpointPolicy) -> list[Path]:
    """This run's complete checkpoints, newest first."""
    if not policy.directory.is_dir():
        return []
    found = []
    for path in sorted(policy.directory.glob("step-*"), reverse=True):
        if not all((path / name).exists() for name in (WEIGHTS, STATE, META)):
            continue
        if read_json(path / META).get("fingerprint") != policy.fingerprint:
            log.warning("checkpoint %s is from other params or data; not resuming it", path)
            continue
        found.append(path)
    return found


def latest_step(policy: CheckpointPolicy | None) -> int:
    """The step a run with this policy would resume from (0: none)."""
    found = _complete(policy) if policy else []
    return int(read_json(found[0] / META)["step"]) if found else 0


def load_latest(
    policy: CheckpointPolicy, engine: CheckpointEngine, ctx: DistContext
) -> Resumed | None:
    """Restore the newest complete checkpoint of this run into the engine (on every rank)."""
    found = _complete(policy)
    if not found:
        return None
    path, device = found[0], engine.device
    load_weights(engine.module, path / WEIGHTS, device)
    state = torch.load(path / STATE, map_location=device, weights_only=True)
    engine.load_checkpoint(state["optimizer"], path, ctx.rank)
    torch_rng = state["torch_rng"]
    torch_rng = torch_rng if torch_rng.dim() == 2 else torch_rng.unsqueeze(0)
    torch.set_rng_state(torch_rng[ctx.rank].cpu().clone())  # a view at an offset crashes it
    cuda_rng = state.get("cuda_rng")
    if device.type == "cuda" and isinstance(cuda_rng, torch.Tensor) and cuda_rng.dim() == 2:
        torch.cuda.set_rng_state(cuda_rng[ctx.rank].cpu().clone(), device)
    log.info("resuming from %s (step %d)", path, state["step"])
    return Resumed(
        step=int(state["step"]),
        rows=[list(r) for r in state["rows"]],
        tokens_seen=int(state["tokens_seen"]),
        train_seconds=float(state["train_seconds"]),
        val_loss=float(state["val_loss"]),
    )


def clear(policy: CheckpointPolicy) -> None:
    """Remove the checkpoints once the outputs are published."""
    shutil.rmtree(policy.directory, ignore_errors=True)
