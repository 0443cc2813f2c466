"""The train stage: packed binidx -> a trained model (safetensors), metrics.json, train_log.csv."""

from __future__ import annotations

import contextlib
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

import torch
from omegaconf import DictConfig

from midilm.common.hashing import stable_json_hash
from midilm.common.io import read_json, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger
from midilm.common.params import to_plain
from midilm.common.paths import Layout
from midilm.models import build_model, count_parameters
from midilm.models.runtime import deterministic, peak_memory_mb, quiet_transformers, resolve_device
from midilm.tokenize.base import load_tokenizer
from midilm.train.checkpoint import REQUEUE_EXIT_CODE, CheckpointPolicy, clear
from midilm.train.data import load_stream
from midilm.train.loop import Preempted, TrainResult, train

log = get_logger(__name__)

OUTPUTS = ("model.safetensors", "config.json", "metrics.json", "train_log.csv")


def run_train(params: Mapping[str, Any] | DictConfig, layout: Layout | None = None) -> dict:
    """Run the stage; returns the metrics written to `model_dir(model)/metrics.json`."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    model_cfg, train_cfg = plain["model"], plain["train"]
    tok_name = str(plain["tokenizer"]["name"]).lower()
    seed, context = int(plain["seed"]), int(model_cfg["context"])
    packed, tokens_dir = layout.packed_dir(tok_name), layout.tokens_dir(tok_name)

    quiet_transformers()
    tokenizer = load_tokenizer(tokens_dir)
    vocab_size = int(_read(packed / "stats.json", "pack")["vocab_size"])
    if vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{packed / 'stats.json'}: vocab_size {vocab_size} differs from "
            f"{tokens_dir / 'tokenizer.json'} ({tokenizer.vocab_size}); re-run `dvc repro pack`."
        )
    valid_stats = _read(tokens_dir / "stats.json", "tokenize")["per_split"]["valid"]
    train_tokens = load_stream(packed / "train", context)
    valid_tokens = load_stream(packed / "valid", context)
    device = resolve_device(str(train_cfg.get("device", "auto")))
    policy = checkpoint_policy(plain, layout, train_tokens.size, valid_tokens.size)

    start = time.perf_counter()
    with deterministic(seed, int(train_cfg.get("threads", 1))):
        model = build_model(
            model_cfg, vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id
        ).to(device)
        log.info(
            "train %s (%s, %d parameters) on %s: %d train / %d valid tokens",
            model_cfg["name"],
            model_cfg["family"],
            count_parameters(model),
            device,
            train_tokens.size,
            valid_tokens.size,
        )
        with stop_on_sigterm() as stop_requested:
            try:
                result = train(
                    model,
                    train_tokens,
                    valid_tokens,
                    train_cfg,
                    context,
                    seed,
                    checkpoint=policy,
                    stop_requested=stop_requested,
                )
            except Preempted as exc:
                log.warning("train: %s; exiting with %d to be requeued", exc, REQUEUE_EXIT_CODE)
                raise SystemExit(REQUEUE_EXIT_CODE) from exc
    wall = time.perf_counter() - start

    metrics = train_metrics(plain, model, result, valid_stats)
    metrics["speed"] = {
        "device": device.type,
        "train_tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "wall_s": round(wall, 2),
    }
    publish(layout.model_dir(str(model_cfg["name"])), model, result, metrics)
    if policy is not None:
        clear(policy)
    log.info("train: val loss %.4f, %s", metrics["val_loss"], metrics["speed"])
    return metrics


def checkpoint_policy(
    plain: Mapping[str, Any], layout: Layout, train_tokens: int, valid_tokens: int
) -> CheckpointPolicy | None:
    """Checkpoint every `train.checkpoint_interval` steps (0: never) beside the outputs.

    The fingerprint covers what shapes the result (model, train params, seed, tokenizer, data
    size) and not the interval itself, so only a checkpoint of the same run is ever resumed.
    """
    train_cfg = dict(plain["train"])
    interval = int(train_cfg.pop("checkpoint_interval", 0) or 0)
    if interval <= 0:
        return None
    identity = {
        "model": plain["model"],
        "train": train_cfg,
        "seed": plain["seed"],
        "tokenizer": plain["tokenizer"]["name"],
        "tokens": [train_tokens, valid_tokens],
    }
    directory = layout.model_dir(str(plain["model"]["name"])) / "checkpoints"
    return CheckpointPolicy(directory, interval, stable_json_hash(identity))


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
    plain: Mapping[str, Any],
    model: torch.nn.Module,
    result: TrainResult,
    valid_stats: Mapping[str, Any],
) -> dict[str, Any]:
    """metrics.json without `speed`: byte-identical across runs with the same seed."""
    model_cfg, train_cfg = plain["model"], plain["train"]
    val_loss = result.val_loss
    notes, tokens = int(valid_stats.get("notes", 0)), int(valid_stats.get("tokens", 0))
    bits_per_note = val_loss * tokens / notes / math.log(2) if notes else None
    return {
        "model": str(model_cfg["name"]),
        "family": str(model_cfg["family"]),
        "parameters": count_parameters(model),
        "context": int(model_cfg["context"]),
        "steps": int(train_cfg["steps"]),
        "tokens_seen": result.tokens_seen,
        "train_loss": _r(result.recent_train_loss(int(train_cfg["eval_interval"]))),
        "val_loss": _r(val_loss),
        "val_perplexity": _r(math.exp(val_loss)),
        "val_bits_per_note": _r(bits_per_note) if bits_per_note is not None else None,
    }


def publish(out_dir: Path, model: Any, result: TrainResult, metrics: Mapping[str, Any]) -> None:
    """Write every output into a temporary folder beside `out_dir`, then rename each into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        write_json_atomic(tmp / "metrics.json", metrics)
        write_text_atomic(tmp / "train_log.csv", train_log_csv(result))
        for name in OUTPUTS:
            os.replace(tmp / name, out_dir / name)
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
