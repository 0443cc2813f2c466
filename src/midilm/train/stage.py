"""The train stage `train@<key>`: packed binidx -> models/<key>/{weights/, metrics.json,
train_log.csv} for the model entry `models.<key>` of params.yaml."""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from midilm.common.hashing import stable_json_hash
from midilm.common.io import read_json, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger
from midilm.common.params import model_entry, to_plain
from midilm.common.paths import Layout
from midilm.models import build_model, count_parameters, resolve_model_cfg, resolve_train_cfg
from midilm.models.runtime import deterministic, peak_memory_mb, quiet_transformers, resolve_device
from midilm.store.stage import training_stats
from midilm.tokenize.base import load_tokenizer
from midilm.train.checkpoint import REQUEUE_EXIT_CODE, CheckpointPolicy, clear, latest_step
from midilm.train.data import load_stream
from midilm.train.distributed import barrier, check_strategy, dist_context, process_group
from midilm.train.engine import enable_gradient_checkpointing, make_engine
from midilm.train.loop import Preempted, TrainResult, train
from midilm.train.precision import matmul_precision, resolve_precision
from midilm.train.tracking import LIVE_DIR, LiveTracker, open_trackers

log = get_logger(__name__)

OUTPUTS = ("weights", "train_log.csv", "metrics.json")  # moved into place in this order


def run_train(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, key: str | None = None
) -> dict:
    """Run the stage for model `key`; returns the metrics written to models/<key>/metrics.json.

    Launched once per process: alone, or by torchrun/srun with `train.strategy` ddp or deepspeed
    (every rank trains, rank 0 writes). A model of family `lora` is fine-tuned instead.
    """
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    key, entry = model_entry(plain, key)
    model_cfg = {**resolve_model_cfg(entry), "name": key}
    if str(model_cfg.get("family", "")).lower() == "lora":
        return _train_lora(plain, layout, key)
    train_cfg = resolve_train_cfg(plain["train"], entry)
    tok_name = str(model_cfg.get("tokenizer") or plain["tokenizer"]["name"]).lower()
    seed, context = int(plain["seed"]), int(model_cfg["context"])
    packed, tokens_dir = layout.packed_dir(tok_name), layout.tokens_dir(tok_name)

    quiet_transformers()
    tokenizer = load_tokenizer(tokens_dir)
    packed_stats = training_stats(packed, tok_name, key)
    vocab_size = int(packed_stats["vocab_size"])
    if vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{packed / 'stats.json'}: vocab_size {vocab_size} differs from "
            f"{tokens_dir / 'tokenizer.json'} ({tokenizer.vocab_size}); "
            f"re-run `dvc repro pack@{tok_name}`."
        )
    valid_stats = _read(tokens_dir / "stats.json", "tokenize")["per_split"]["valid"]
    train_tokens = load_stream(packed / "train", context)
    valid_tokens = load_stream(packed / "valid", context)

    ctx = dist_context()
    strategy = check_strategy(str(train_cfg.get("strategy", "single")), ctx)
    device = resolve_device(str(train_cfg.get("device", "auto")))
    if device.type == "cuda" and ctx.distributed:
        device = torch.device("cuda", ctx.local_rank)
    precision = resolve_precision(str(train_cfg.get("precision", "auto")), device)
    identity = {
        "model": model_cfg,
        "train": train_cfg,
        "seed": seed,
        "tokenizer": tok_name,
        "world_size": ctx.world_size,
        "device": device.type,
        "precision": precision,
    }
    model_dir = layout.model_dir(key)
    policy = checkpoint_policy(identity, model_dir, train_tokens.size, valid_tokens.size)

    start = time.perf_counter()
    with (
        process_group(ctx, device, required=strategy == "deepspeed"),
        deterministic(seed, int(train_cfg.get("threads", 1))),
        matmul_precision(device, bool(train_cfg.get("tf32", True))),
    ):
        if device.type == "cuda":  # attention kernels without a deterministic backward: warn
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = build_model(
            model_cfg, vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id
        ).to(device)
        if ctx.is_main:
            log.info(
                "train %s (%s, %d parameters) on %s x %d (%s, %s): %d train / %d valid tokens",
                key,
                model_cfg["family"],
                count_parameters(model),
                device,
                ctx.world_size,
                strategy,
                precision,
                train_tokens.size,
                valid_tokens.size,
            )
        if train_cfg.get("gradient_checkpointing"):
            enable_gradient_checkpointing(model)
        if ctx.rank:  # the same initial weights everywhere, but other dropout masks per rank
            torch.manual_seed(rank_seed(seed, ctx.rank))
        engine = make_engine(strategy, model, train_cfg, ctx, device, precision)
        trackers = open_trackers(
            train_cfg,
            model_dir,
            key,
            {**plain, "model_key": key, "world_size": ctx.world_size},
            latest_step(policy),
            enabled=ctx.is_main,
        )
        val_metrics = functools.partial(validation_metrics, valid_stats=valid_stats)
        with stop_on_sigterm() as stop_requested:
            try:
                result = train(
                    engine,
                    train_tokens,
                    valid_tokens,
                    train_cfg,
                    context,
                    seed,
                    ctx,
                    checkpoint=policy,
                    stop_requested=stop_requested,
                    trackers=trackers,
                    val_metrics=val_metrics,
                )
            except Preempted as exc:
                if ctx.is_main:
                    log.warning("train: %s; exiting with %d to be requeued", exc, REQUEUE_EXIT_CODE)
                raise SystemExit(REQUEUE_EXIT_CODE) from exc
            finally:
                trackers.close()
        trained = engine.export()
        wall = time.perf_counter() - start

        metrics = train_metrics(model_cfg, train_cfg, trained, result, valid_stats)
        metrics.update(strategy=strategy, world_size=ctx.world_size, precision=precision)
        metrics["speed"] = {
            "device": device.type,
            "train_tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "wall_s": round(wall, 2),
        }
        if ctx.is_main:
            publish(model_dir, trained, result, metrics)
            (model_dir / LIVE_DIR).mkdir(exist_ok=True)  # a DVC output, even with dvclive off
            if policy is not None:
                clear(policy)
            log.info("train: val loss %.4f, %s", metrics["val_loss"], metrics["speed"])
        barrier()
    return metrics


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of rank `rank` after the model is built (dropout differs across ranks)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def validation_metrics(val_loss: float, valid_stats: Mapping[str, Any]) -> dict[str, float]:
    """What trackers get at each evaluation: loss, perplexity and (if known) bits per note."""
    values = {"val/loss": val_loss, "val/perplexity": math.exp(val_loss)}
    bits = bits_per_note(val_loss, valid_stats)
    if bits is not None:
        values["val/bits_per_note"] = bits
    return values


def bits_per_note(val_loss: float, valid_stats: Mapping[str, Any]) -> float | None:
    """Validation loss per note in bits: nats/token x tokens/note / ln 2 (None without notes)."""
    notes, tokens = int(valid_stats.get("notes", 0)), int(valid_stats.get("tokens", 0))
    return val_loss * tokens / notes / math.log(2) if notes else None


def _train_lora(plain: dict[str, Any], layout: Layout, key: str) -> dict:
    """A model of family `lora`: LoRA/QLoRA fine-tuning on its packed JSONL texts
    (`midilm.train.instruct.run_lora_stage`, which calls `run_lora_training`)."""

    from midilm.train.instruct import run_lora_stage

    metrics = run_lora_stage(plain, layout, key)
    live_dir = layout.model_dir(key) / LIVE_DIR
    train_cfg = resolve_train_cfg(plain["train"], plain["models"][key])
    if bool(train_cfg.get("dvclive", True)):  # the loss curve for DVC, from the published log
        shutil.rmtree(live_dir, ignore_errors=True)
        tracker = LiveTracker(live_dir, 0)
        with open(layout.model_dir(key) / "train_log.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                values = {
                    k: float(v) for k, v in row.items() if k != "step" and v not in ("", None)
                }
                tracker.log(int(row["step"]), values)
        tracker.close()
    live_dir.mkdir(parents=True, exist_ok=True)  # a declared DVC output, even with dvclive off
    return metrics


def checkpoint_policy(
    identity: Mapping[str, Any], model_dir: Path, train_tokens: int, valid_tokens: int
) -> CheckpointPolicy | None:
    """Checkpoint every `train.checkpoint_interval` steps (0: never) in model_dir/checkpoints.

    The fingerprint covers what shapes the result (model, train params, seed, tokenizer, data
    size) and not the interval itself, so only a checkpoint of the same run is ever resumed.
    """
    train_cfg = dict(identity["train"])
    interval = int(train_cfg.pop("checkpoint_interval", 0) or 0)
    for observer in ("wandb", "dvclive"):  # trackers only observe
        train_cfg.pop(observer, None)
    if interval <= 0:
        return None
    fingerprint = {**identity, "train": train_cfg, "tokens": [train_tokens, valid_tokens]}
    return CheckpointPolicy(model_dir / "checkpoints", interval, stable_json_hash(fingerprint))


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


def train_metrics(
    model_cfg: Mapping[str, Any],
    train_cfg: Mapping[str, Any],
    model: torch.nn.Module,
    result: TrainResult,
    valid_stats: Mapping[str, Any],
) -> dict[str, Any]:
    """metrics.json without `speed`: byte-identical across runs with the same seed."""
    val_loss = result.val_loss
    bits = bits_per_note(val_loss, valid_stats)
    return {
        "model": str(model_cfg["name"]),
        "family": str(model_cfg["family"]),
        "size": model_cfg.get("size"),
        "tokenizer": str(model_cfg.get("tokenizer")),
        "parameters": count_parameters(model),
        "context": int(model_cfg["context"]),
        "steps": int(train_cfg["steps"]),
        "tokens_seen": result.tokens_seen,
        "train_loss": _r(result.recent_train_loss(int(train_cfg["eval_interval"]))),
        "val_loss": _r(val_loss),
        "val_perplexity": _r(math.exp(val_loss)),
        "val_bits_per_note": _r(bits) if bits is not None else None,
    }


def publish(out_dir: Path, model: Any, result: TrainResult, metrics: Mapping[str, Any]) -> None:
    """Write every output into a temporary folder beside `out_dir`, then move each into place
    (metrics.json last, so its presence means the weights beside it are complete)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp / "weights")
        write_text_atomic(tmp / "train_log.csv", train_log_csv(result))
        write_json_atomic(tmp / "metrics.json", metrics)
        for name in OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def train_log_csv(result: TrainResult) -> str:
    """step,train_loss,val_loss,lr per optimizer step; val_loss empty where not evaluated."""
    lines = ["step,train_loss,val_loss,lr"]
    for row in result.rows:
        val = "" if row.val_loss is None else f"{_r(row.val_loss)}"
        lines.append(f"{row.step},{_r(row.train_loss)},{val},{_r(row.lr)}")
    return "\n".join(lines) + "\n"


def _read(path: Path, stage: str) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro {stage}` first.")
    return read_json(path)


def _r(value: float) -> float:
    return round(float(value), 6)
