"""One SeqGAN experiment run end to end: device, seeds and SIGTERM, Algorithm 1 (resumable in
out_dir/work), the task's final scores, then the outputs published atomically.

Outputs in `out_dir`: curve.csv (the learning curve: one row per point, `epoch` counting MLE
epochs then adversarial batches after them, as the paper's figures), speed.json (wall time and
peak memory; differs between runs; or in a `speed_file` of its own) and metrics.json (written
last: its presence means the rest is complete). out_dir/work holds the checkpoints while
running and is removed on success.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from midilm.common.io import publish_outputs, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger
from midilm.models.runtime import deterministic, peak_memory_mb, resolve_device
from midilm.orchestration.launch import REQUEUE_EXIT_CODE
from midilm.seqgan.algorithm import CURVE_KEYS, Task, Trained, train_seqgan
from midilm.specs.seqgan import SeqGANSpec
from midilm.train.loop import Preempted
from midilm.train.run import stop_on_sigterm

log = get_logger(__name__)

WORK, CURVE, SPEED, METRICS = "work", "curve.csv", "speed.json", "metrics.json"
OUTPUTS = (CURVE, SPEED, METRICS)  # moved into place in this order


def run_experiment(
    spec: SeqGANSpec,
    make_task: Callable[[torch.device], Task],
    score: Callable[[Trained, torch.device], dict[str, Any]],
    out_dir: Path,
    speed_file: Path | None = None,
) -> dict[str, Any]:
    """Build the task, train (resuming from out_dir/work), score and publish; metrics.json's
    content. On SIGTERM: checkpoint, then exit with REQUEUE_EXIT_CODE. The measured speed goes
    to `speed_file` when given (kept out of the deterministic outputs), else out_dir/speed.json."""
    device = resolve_device(spec.mle.device)
    start = time.perf_counter()
    with deterministic(spec.seed, spec.mle.threads), stop_on_sigterm() as stop_requested:
        if device.type == "cuda":  # no deterministic kernel for some ops: warn only
            torch.use_deterministic_algorithms(True, warn_only=True)
        task = make_task(device)
        try:
            trained = train_seqgan(spec, task, out_dir / WORK, device, stop_requested)
        except Preempted as exc:
            log.warning("seqgan %s: %s; exiting with %d to be requeued", task.name, exc,
                        REQUEUE_EXIT_CODE)  # fmt: skip
            raise SystemExit(REQUEUE_EXIT_CODE) from exc
        metrics = {
            "task": task.name,
            "rollout_policy": trained.rollout_policy,
            "rollout_update_rate": task.schedule.rollout_update_rate,
            "sizes": sizes(spec, task),
            **score(trained, device),
        }
    speed = {
        "device": device.type,
        "threads": spec.mle.threads,
        "phase_seconds": {k: round(v, 3) for k, v in trained.seconds.items()},
        "wall_s": round(time.perf_counter() - start, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }
    if speed_file is not None:
        write_json_atomic(speed_file, speed)
    names = OUTPUTS if speed_file is None else tuple(n for n in OUTPUTS if n != SPEED)
    with publish_outputs(out_dir, names) as tmp:
        write_text_atomic(tmp / CURVE, curve_csv(trained.curve))
        if speed_file is None:
            write_json_atomic(tmp / SPEED, speed)
        write_json_atomic(tmp / METRICS, metrics)
    shutil.rmtree(out_dir / WORK, ignore_errors=True)
    log.info("seqgan %s: %s", task.name, metrics.get("rows"))
    return metrics


def sizes(spec: SeqGANSpec, task: Task) -> dict[str, Any]:
    """What the run's numbers depend on, for the table's notes."""
    s = task.schedule
    return {
        "vocab": task.vocab,
        "length": task.length,
        "train_sequences": len(task.train),
        "valid_sequences": len(task.valid),
        "mle_epochs": task.mle_epochs,
        "mle_batch_size": spec.mle.batch_size,
        "d_pretrain_rounds": s.d_pretrain_rounds,
        "d_epochs": s.d_epochs,
        "negatives": s.negatives or len(task.train),
        "adversarial_batches": s.adversarial_batches,
        "d_rounds": s.d_rounds,
        "rollouts": s.rollouts,
        "g_batch_size": s.g_batch_size,
        "discriminator_filters": sum(task.discriminator.kernel_counts),
    }


def curve_csv(rows: list[dict[str, Any]]) -> str:
    """The learning curve as CSV: the position columns, then every metric in first-seen order."""
    columns = list(CURVE_KEYS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value
