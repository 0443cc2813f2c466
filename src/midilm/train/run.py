"""One training run around the loop: processes, device and precision, the model, the engine,
checkpoints, trackers and SIGTERM, then the outputs published atomically.

A `TrainJob` says what differs between runs: how to build the model, its batches and loss, how
to save the trained weights and what metrics to report. `run_job` does the rest the same way for
every model (from-scratch LMs, fine-tuning, the fine-tuning stand-in's pre-training).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from midilm.common.hashing import stable_json_hash
from midilm.common.io import publish_outputs, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger
from midilm.common.seeding import derive_seed
from midilm.models.runtime import deterministic, peak_memory_mb, resolve_device
from midilm.orchestration.launch import REQUEUE_EXIT_CODE
from midilm.specs import TrainSpec
from midilm.train.checkpoint import CheckpointPolicy, clear, latest_step
from midilm.train.distributed import (
    DistContext,
    barrier,
    check_strategy,
    dist_context,
    process_group,
)
from midilm.train.engine import enable_gradient_checkpointing, make_engine
from midilm.train.loop import (
    Batches,
    LossFn,
    Preempted,
    TrainResult,
    default_val_metrics,
    lm_loss,
    train,
)
from midilm.train.metrics import (
    METRICS_FILE,
    SPEED_FILE,
    TRAIN_LOG,
    speed_metrics,
    train_log_csv,
)
from midilm.train.precision import matmul_precision, resolve_precision
from midilm.train.tracking import LIVE_DIR, open_trackers

log = get_logger(__name__)

WEIGHTS = "weights"
OUTPUTS = (WEIGHTS, TRAIN_LOG, SPEED_FILE, METRICS_FILE)  # moved into place in this order


@dataclass
class TrainJob:
    """What one training run needs that differs between models."""

    key: str  # the model key (models/<key>), the trackers' run name
    spec: TrainSpec
    seed: int
    build: Callable[[torch.device], torch.nn.Module]  # the model to train, on the device
    batches: Batches
    identity: Mapping[str, Any]  # what shapes the weights besides `spec` (checkpoint fingerprint)
    save: Callable[[torch.nn.Module, Path], None]  # write the trained weights into a folder
    report: Callable[[torch.nn.Module, TrainResult], dict[str, Any]]  # metrics.json
    loss: LossFn = lm_loss
    val_metrics: Callable[[float], dict[str, float]] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)  # the trackers' run config


def run_job(job: TrainJob, out_dir: Path, *, trackers: bool = True) -> dict[str, Any]:
    """Train `job` and publish out_dir/{weights/, train_log.csv, speed.json, metrics.json};
    returns metrics.json's content.

    Launched once per process: alone, or by torchrun/srun with strategy ddp or deepspeed (every
    rank trains, rank 0 writes). On SIGTERM it checkpoints and exits with REQUEUE_EXIT_CODE.
    """
    spec, ctx = job.spec, dist_context()
    strategy = check_strategy(spec.strategy, ctx)
    device = resolve_device(spec.device)
    if device.type == "cuda" and ctx.distributed:
        device = torch.device("cuda", ctx.local_rank)
    precision = resolve_precision(spec.precision, device)
    identity = {**job.identity, "train": spec.identity(), "seed": job.seed}
    identity.update(world_size=ctx.world_size, device=device.type, precision=precision)
    policy = checkpoint_policy(spec, out_dir, identity)

    start = time.perf_counter()
    with (
        process_group(ctx, device, required=strategy == "deepspeed"),
        deterministic(job.seed, spec.threads),
        matmul_precision(device, spec.tf32),
    ):
        if device.type == "cuda":  # attention kernels without a deterministic backward: warn
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = job.build(device)
        if spec.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if ctx.rank:  # the same initial weights everywhere, but other dropout masks per rank
            torch.manual_seed(derive_seed(job.seed, "rank", ctx.rank))
        engine = make_engine(strategy, model, spec, ctx, device, precision)
        tracking = open_trackers(
            spec,
            out_dir,
            job.key,
            {**job.config, "world_size": ctx.world_size},
            latest_step(policy),
            enabled=trackers and ctx.is_main,
        )
        with stop_on_sigterm() as stop_requested:
            try:
                result = train(
                    engine,
                    job.batches,
                    spec,
                    ctx,
                    loss=job.loss,
                    checkpoint=policy,
                    stop_requested=stop_requested,
                    trackers=tracking,
                    val_metrics=job.val_metrics or default_val_metrics,
                    desc=f"train {job.key}",
                )
            except Preempted as exc:
                if ctx.is_main:
                    log.warning("train: %s; exiting with %d to be requeued", exc, REQUEUE_EXIT_CODE)
                raise SystemExit(REQUEUE_EXIT_CODE) from exc
            finally:
                tracking.close()
        trained = engine.export()
        metrics = {
            **job.report(trained, result),
            "strategy": strategy,
            "world_size": ctx.world_size,
            "precision": precision,
        }
        speed = speed_metrics(
            result, device.type, peak_memory_mb(device), time.perf_counter() - start
        )
        if ctx.is_main:
            publish(out_dir, job, trained, result, metrics, speed)
            (out_dir / LIVE_DIR).mkdir(exist_ok=True)  # a DVC output, even with dvclive off
            if policy is not None:
                clear(policy)
            log.info("train %s: val loss %s, %s", job.key, metrics.get("val_loss"), speed)
        barrier()
    return metrics


def publish(
    out_dir: Path,
    job: TrainJob,
    model: torch.nn.Module,
    result: TrainResult,
    metrics: Mapping[str, Any],
    speed: Mapping[str, Any],
) -> None:
    """Every output written into a temporary folder beside `out_dir`, then moved into place
    (metrics.json last, so its presence means the weights beside it are complete)."""
    with publish_outputs(out_dir, OUTPUTS) as tmp:
        job.save(model, tmp / WEIGHTS)
        write_text_atomic(tmp / TRAIN_LOG, train_log_csv(result))
        write_json_atomic(tmp / SPEED_FILE, speed)
        write_json_atomic(tmp / METRICS_FILE, metrics)


def checkpoint_policy(
    spec: TrainSpec, out_dir: Path, identity: Mapping[str, Any]
) -> CheckpointPolicy | None:
    """Checkpoint every `checkpoint_interval` steps (0: never) in out_dir/checkpoints. The
    fingerprint covers what shapes the result and not the interval itself, so only a checkpoint
    of the same run is ever resumed."""
    if spec.checkpoint_interval <= 0:
        return None
    fingerprint = stable_json_hash(dict(identity))
    return CheckpointPolicy(out_dir / "checkpoints", spec.checkpoint_interval, fingerprint)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[Callable[[], bool]]:
    """While active, SIGTERM (Slurm pre-emption, scancel) asks training to checkpoint and stop."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: requested.set())
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_in_process(
    model: torch.nn.Module, batches: Batches, spec: TrainSpec, seed: int, loss: LossFn = lm_loss
) -> TrainResult:
    """Train an already built model in this process, nothing written (no checkpoints, no
    trackers): the fine-tuning stand-in's pre-training and SeqGAN's MLE pre-training."""
    device = next(model.parameters()).device
    with deterministic(seed, spec.threads):
        engine = make_engine("single", model, spec, DistContext(), device, "fp32")
        return train(engine, batches, spec, loss=loss, desc="pretrain")
