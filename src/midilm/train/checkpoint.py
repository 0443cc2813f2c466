"""Checkpoints for exact resume: safetensors weights plus optimizer, RNG and log state.

A checkpoint is a folder `checkpoints/step-NNNNNNNN/` beside the stage outputs, written under a
temporary name and renamed into place, so a run killed mid-save never leaves one that looks
complete. It carries a fingerprint of everything that shapes training (params, data size); a
checkpoint from other params is never resumed. Loading never unpickles arbitrary objects:
weights come from safetensors, the rest through `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from midilm.common.io import read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.orchestration.launch import REQUEUE_EXIT_CODE

log = get_logger(__name__)

__all__ = ["REQUEUE_EXIT_CODE", "CheckpointPolicy", "clear", "load_latest", "save_checkpoint"]
WEIGHTS, STATE, META = "model.safetensors", "state.pt", "meta.json"


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


def save_checkpoint(
    policy: CheckpointPolicy,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    rows: list[list[Any]],
    tokens_seen: int,
    train_seconds: float,
    val_loss: float,
) -> Path:
    """Save the state after `step` optimizer steps; keep the newest `policy.keep` checkpoints."""
    policy.directory.mkdir(parents=True, exist_ok=True)
    final = policy.directory / f"step-{step:08d}"
    tmp = policy.directory / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / WEIGHTS))
    state: dict[str, Any] = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "rows": rows,
        "tokens_seen": tokens_seen,
        "train_seconds": train_seconds,
        "val_loss": val_loss,
    }
    torch.save(state, tmp / STATE)
    write_json_atomic(tmp / META, {"step": step, "fingerprint": policy.fingerprint})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(policy.directory.glob("step-*"))[: -policy.keep]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("checkpoint: step %d -> %s", step, final)
    return final


def load_latest(
    policy: CheckpointPolicy, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> Resumed | None:
    """Restore the newest complete checkpoint of this run into `model` and `optimizer`."""
    if not policy.directory.is_dir():
        return None
    for path in sorted(policy.directory.glob("step-*"), reverse=True):
        if not all((path / name).exists() for name in (WEIGHTS, STATE, META)):
            continue
        if read_json(path / META).get("fingerprint") != policy.fingerprint:
            log.warning("checkpoint %s is from other params or data; starting fresh", path)
            continue
        device = next(model.parameters()).device
        load_model(model, str(path / WEIGHTS), device=str(device))
        state = torch.load(path / STATE, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        log.info("resuming from %s (step %d)", path, state["step"])
        return Resumed(
            step=int(state["step"]),
            rows=[list(r) for r in state["rows"]],
            tokens_seen=int(state["tokens_seen"]),
            train_seconds=float(state["train_seconds"]),
            val_loss=float(state["val_loss"]),
        )
    return None


def clear(policy: CheckpointPolicy) -> None:
    """Remove the checkpoints once the outputs are published."""
    shutil.rmtree(policy.directory, ignore_errors=True)
