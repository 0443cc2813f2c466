"""LoRA / QLoRA instruction fine-tuning of a pretrained causal LM on Simplified MIDI (seed 004).

`run_lora_training` is the whole train@lora stage once the texts are read: examples in the
Llama-2 chat template (`midilm.train.instruct_data`), the base model by hub id or local folder
(or the offline stand-in when `base_model` is null), LoRA adapters on the seven projections,
AdamW with warm-up and cosine decay (`midilm.train.optim`), gradient accumulation and clipping,
the loss on the continuation only, validation on held-out examples, then the adapter, the
tokenizer, metrics.json and train_log.csv published atomically.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

from midilm.common.io import read_json, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.params import model_entry, to_plain
from midilm.common.paths import Layout
from midilm.models.lora import (
    TARGET_MODULES,
    adapted_modules,
    apply_lora,
    build_offline_base,
    load_base,
    parameter_counts,
)
from midilm.models.registry import resolve_model_cfg, resolve_train_cfg
from midilm.models.runtime import deterministic, peak_memory_mb, quiet_transformers, resolve_device
from midilm.store.stage import training_stats
from midilm.train.instruct_data import (
    IGNORE,
    Example,
    Header,
    batch_indices,
    build_examples,
    collate,
    has_bend,
    read_texts,
)
from midilm.train.loop import LogRow, TrainResult
from midilm.train.optim import lr_at, make_optimizer
from midilm.train.stage import train_log_csv

log = get_logger(__name__)

WEIGHTS, BASE, INSTRUCT = "weights", "base", "instruct.json"  # the stand-in lives in weights/base
OUTPUTS = (WEIGHTS, "train_log.csv", "metrics.json")  # moved into place in this order
# Model-config keys that generation needs to rebuild the model and the prompt exactly.
LOAD_KEYS = ("base_model", "context", "quantize", "dtype", "rope_scaling", "rope_factor")


def lora_train_cfg(
    train_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], n_examples: int
) -> dict[str, Any]:
    """The train group with the size's own `train` block on top (sizes.thesis.train holds seed
    004's hyperparameters); `epochs` (when set) fixes `steps`, `warmup_ratio` `warmup_steps`."""
    cfg = {**dict(train_cfg), **dict(model_cfg.get("train") or {})}
    per_step = int(cfg["batch_size"]) * int(cfg.get("grad_accum", 1))
    if cfg.get("epochs"):
        cfg["steps"] = max(1, math.ceil(float(cfg["epochs"]) * n_examples / per_step))
    if cfg.get("warmup_ratio") is not None:
        cfg["warmup_steps"] = math.ceil(float(cfg["warmup_ratio"]) * int(cfg["steps"]))
    cfg["warmup_steps"] = min(int(cfg["warmup_steps"]), int(cfg["steps"]))
    return cfg


def continuation_loss(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, int]:
    """(summed next-token cross entropy in nats over the labelled tokens, their count)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    flat = logits[:, :-1].float().reshape(-1, logits.size(-1))
    total = F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return total, int((targets != IGNORE).sum())


@torch.no_grad()
def evaluate_examples(
    model: torch.nn.Module, examples: Sequence[Example], batch_size: int, pad_id: int
) -> tuple[float, int]:
    """(mean continuation loss in nats, labelled tokens) over `examples`, dropout off."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = _to(collate(examples[start : start + batch_size], pad_id), device)
        loss, n = continuation_loss(model, batch)
        total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(count, 1), count


def train_adapter(
    model: torch.nn.Module,
    train_examples: Sequence[Example],
    valid_examples: Sequence[Example],
    cfg: Mapping[str, Any],
    pad_id: int,
    seed: int,
) -> TrainResult:
    """Train the trainable (adapter) weights of `model` in place for `cfg["steps"]` steps.

    Each optimizer step takes `grad_accum` micro-batches of `batch_size` examples from seeded
    epoch permutations; the loss of a step is the mean over all its labelled tokens.
    """
    if not train_examples:
        raise ValueError("no training example: every text has fewer than two notes")
    device = next(p for p in model.parameters() if p.requires_grad).device
    steps, size = int(cfg["steps"]), int(cfg["batch_size"])
    accum, eval_interval = int(cfg.get("grad_accum", 1)), int(cfg["eval_interval"])
    optimizer = make_optimizer(model, cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    result = TrainResult()
    model.train()
    bar = tqdm(range(steps), desc="lora", disable=progress_disabled(), dynamic_ncols=True)
    for step in bar:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        n = len(train_examples)
        micro = [
            [train_examples[i] for i in batch_indices(n, seed, step, m, accum, size)]
            for m in range(accum)
        ]
        targets = sum(labelled_tokens(examples) for examples in micro)
        step_loss = 0.0
        for examples in micro:
            batch = _to(collate(examples, pad_id), device)
            loss, _ = continuation_loss(model, batch)
            (loss / targets).backward()
            step_loss += float(loss.detach()) / targets
            result.tokens_seen += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(trainable, float(cfg["grad_clip"]))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result.train_seconds += time.perf_counter() - start

        val_loss = None
        if valid_examples and ((step + 1) % eval_interval == 0 or step + 1 == steps):
            val_loss, _ = evaluate_examples(model, valid_examples, size, pad_id)
            result.val_loss = val_loss
            log.info("lora step %d: train loss %.4f, val loss %.4f", step + 1, step_loss, val_loss)
        result.rows.append(LogRow(step + 1, step_loss, val_loss, lr))
        bar.set_postfix(loss=f"{step_loss:.3f}")
    return result


def run_lora_training(
    entry: dict,
    train_cfg: dict,
    texts_train: list[str],
    texts_valid: list[str],
    out_dir: Path,
    seed: int,
) -> dict:
    """Fine-tune model entry `entry` (conf/model/lora.yaml, resolved or not) on Simplified MIDI
    texts and publish out_dir/{weights/, train_log.csv, metrics.json} (the layout of the train
    stage): weights/ holds the adapter, the tokenizer, instruct.json and, for the offline
    stand-in, the base model itself in weights/base/.

    `train_cfg` is the global train group with the entry's `train` overrides (the size's own
    `train` block goes on top here). Returns the metrics written to metrics.json.
    """
    model_cfg = resolve_model_cfg(entry) if "sizes" in entry else dict(entry)
    out_dir = Path(out_dir)
    quiet_transformers()
    device = resolve_device(str(train_cfg.get("device", "auto")))
    header = Header.from_cfg(model_cfg, has_bend(texts_train))
    context = int(model_cfg["context"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        start = time.perf_counter()
        with deterministic(seed, int(train_cfg.get("threads", 1))):
            if device.type == "cuda":  # bitsandbytes / attention kernels: warn, don't fail
                torch.use_deterministic_algorithms(True, warn_only=True)
            base_name = model_cfg.get("base_model")
            if not base_name:
                base_name = build_offline_base(
                    tmp / WEIGHTS / BASE, texts_train, model_cfg, seed, header.system
                )
            model, tokenizer = load_base(base_name, model_cfg, device)
            pad_id = int(tokenizer.pad_token_id)
            fraction = float(model_cfg.get("prompt_fraction", 0.1))
            train_examples = build_examples(tokenizer, header, texts_train, context, fraction)
            valid_all = build_examples(tokenizer, header, texts_valid, context, fraction)
            cfg = lora_train_cfg(train_cfg, model_cfg, len(train_examples))
            valid = valid_all[: int(cfg["eval_batches"]) * int(cfg["batch_size"])]
            model = apply_lora(model, model_cfg, bool(model_cfg.get("gradient_checkpointing")))
            layers = adapted_modules(model)
            base_loss = evaluate_examples(model, valid, int(cfg["batch_size"]), pad_id)[0]
            log.info(
                "lora %s on %s: %d train / %d valid examples, adapters on %d layers x %s",
                base_name,
                device,
                len(train_examples),
                len(valid),
                len(layers),
                TARGET_MODULES,
            )
            result = train_adapter(model, train_examples, valid, cfg, pad_id, seed)
        wall = time.perf_counter() - start
        offline = not model_cfg.get("base_model")
        model.peft_config["default"].base_model_name_or_path = BASE if offline else str(base_name)
        metrics = lora_metrics(model_cfg, cfg, model, result, valid, train_examples)
        metrics["val_loss_base"] = _r(base_loss) if valid else None  # before fine-tuning
        metrics["speed"] = {
            "device": device.type,
            "train_tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "wall_s": round(wall, 2),
        }
        save_adapter(model, tmp / WEIGHTS)
        tokenizer.save_pretrained(tmp / WEIGHTS)
        spec = instruct_spec(model_cfg, header, has_bend(texts_train), offline)
        write_json_atomic(tmp / WEIGHTS / INSTRUCT, spec)
        write_text_atomic(tmp / "train_log.csv", train_log_csv(result))
        write_json_atomic(tmp / "metrics.json", metrics)
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "lora: val loss %s (base %s), %s",
        metrics["val_loss"],
        metrics["val_loss_base"],
        metrics["speed"],
    )
    return metrics


def run_lora_stage(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, key: str | None = None
) -> dict:
    """The stage train@<key> for a model of family `lora`: the packed JSONL texts of its
    tokenizer (data/packed/<tokenizer>/{train,valid}.jsonl) -> `run_lora_training`."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    key, entry = model_entry(plain, key)
    tok_name = str(entry.get("tokenizer") or plain["tokenizer"]["name"]).lower()
    packed = layout.packed_dir(tok_name)
    stats = training_stats(packed, tok_name, key)
    if not stats.get("jsonl"):
        raise ValueError(
            f"{packed / 'stats.json'}: tokenizer {tok_name!r} has no text form, so model {key!r} "
            "(family lora) has no text to learn; set its `tokenizer: simplified_midi` in conf/model"
        )
    return run_lora_training(
        {**entry, "name": key},
        resolve_train_cfg(plain["train"], entry),
        read_texts(packed / "train.jsonl"),
        read_texts(packed / "valid.jsonl"),
        layout.model_dir(key),
        int(plain["seed"]),
    )


def instruct_spec(
    model_cfg: Mapping[str, Any], header: Header, bend: bool, offline: bool
) -> dict[str, Any]:
    """weights/instruct.json: what generation needs to rebuild the model and the prompt."""
    return {
        **{k: model_cfg.get(k) for k in LOAD_KEYS},
        "base_dir": BASE if offline else None,  # the stand-in, relative to weights/
        "header": header.as_dict(),
        "bend": bend,
        "prompt_fraction": float(model_cfg.get("prompt_fraction", 0.1)),
        "template": "llama2-chat",
    }


def lora_metrics(
    model_cfg: Mapping[str, Any],
    cfg: Mapping[str, Any],
    model: torch.nn.Module,
    result: TrainResult,
    valid: Sequence[Example],
    train_examples: Sequence[Example],
) -> dict[str, Any]:
    """metrics.json without `speed` (identical across runs with the same seed)."""
    trainable, total = parameter_counts(model)
    val_loss = result.val_loss
    notes = sum(e.continuation_notes for e in valid)
    count = labelled_tokens(valid)
    finite = math.isfinite(val_loss)
    bits_per_note = val_loss * count / notes / math.log(2) if finite and notes else None
    per_step = int(cfg["batch_size"]) * int(cfg.get("grad_accum", 1))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {
        "model": str(model_cfg.get("name", "lora")),
        "family": str(model_cfg.get("family", "lora")),
        "size": model_cfg.get("size"),
        "tokenizer": str(model_cfg.get("tokenizer")),
        "base_model": model_cfg.get("base_model") or "offline stand-in (weights/base)",
        "quantize": str(model_cfg.get("quantize") or "none"),
        "rope": dict(getattr(base.config, "rope_parameters", None) or {}),
        "lora": {
            "r": int(model_cfg["lora_r"]),
            "alpha": int(model_cfg["lora_alpha"]),
            "dropout": float(model_cfg.get("lora_dropout", 0.0)),
            "target_modules": list(TARGET_MODULES),
        },
        "parameters": trainable,
        "parameters_total": total,
        "context": int(model_cfg["context"]),
        "steps": int(cfg["steps"]),
        "epochs": _r(int(cfg["steps"]) * per_step / max(len(train_examples), 1)),
        "train_examples": len(train_examples),
        "valid_examples": len(valid),
        "tokens_seen": result.tokens_seen,
        "train_loss": _r(result.recent_train_loss(int(cfg["eval_interval"]))),
        "val_loss": _r(val_loss) if finite else None,
        "val_perplexity": _r(math.exp(val_loss)) if finite else None,
        "val_tokens": count,
        "val_bits_per_note": _r(bits_per_note) if bits_per_note is not None else None,
    }


def save_adapter(model: Any, directory: Path) -> None:
    """peft's save_pretrained (adapter_model.safetensors, adapter_config.json), made
    reproducible: target_modules sorted (peft writes a set) and no model card (it names the
    temporary folder)."""
    model.save_pretrained(directory, save_embedding_layers=False)
    (directory / "README.md").unlink(missing_ok=True)
    config_path = directory / "adapter_config.json"
    config = read_json(config_path)
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    write_json_atomic(config_path, config)


def labelled_tokens(examples: Sequence[Example]) -> int:
    """Tokens the loss is computed on (continuation and EOS), as `continuation_loss` counts."""
    return sum(1 for e in examples for label in e.labels[1:] if label != IGNORE)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move each output of `tmp` into `out_dir` (metrics.json last)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp / name, target)


def _to(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _r(value: float) -> float:
    return round(float(value), 6)
