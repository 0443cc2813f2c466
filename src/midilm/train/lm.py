"""The training job of a from-scratch causal LM (gpt2, mistral, llama, mamba, rwkv6): random
windows of its tokenizer's packed binidx stream, next-token loss, save_pretrained weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from midilm.common.io import read_json
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.models import build_model, count_parameters
from midilm.specs import ModelSpec
from midilm.store.packed import training_stats
from midilm.tokenize.factory import load_tokenizer
from midilm.train.data import WindowBatches, load_stream
from midilm.train.loop import TrainResult
from midilm.train.metrics import loss_metrics, split_counts, validation_metrics
from midilm.train.run import TrainJob

log = get_logger(__name__)


def lm_job(spec: ModelSpec, seed: int, layout: Layout, config: dict[str, Any]) -> TrainJob:
    """The job of model `spec` on data/packed/<tokenizer> (checked against its tokenizer)."""
    packed, tokens_dir = layout.packed_dir(spec.tokenizer), layout.tokens_dir(spec.tokenizer)
    tokenizer = load_tokenizer(tokens_dir)
    stats = training_stats(packed, spec.tokenizer, spec.key)
    vocab_size = int(stats["vocab_size"])
    if vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{packed / 'stats.json'}: vocab_size {vocab_size} differs from "
            f"{tokens_dir / 'tokenizer.json'} ({tokenizer.vocab_size}); "
            f"re-run `dvc repro pack@{spec.tokenizer}`."
        )
    token_stats = _read(tokens_dir / "stats.json", f"tokenize@{spec.tokenizer}")
    valid_tokens, valid_notes = split_counts(token_stats, "valid")
    batches = WindowBatches(
        load_stream(packed / "train", spec.context),
        load_stream(packed / "valid", spec.context),
        spec.context,
        spec.train.batch_size,
        seed,
        spec.train.eval_batches,
    )

    def build(device: torch.device) -> torch.nn.Module:
        model = build_model(
            spec.architecture, vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id
        )
        log.info(
            "train %s (%s, %d parameters): %d train / %d valid tokens",
            spec.key,
            spec.family,
            count_parameters(model),
            batches.train_tokens.size,
            batches.valid_tokens.size,
        )
        return model.to(device)

    def report(model: torch.nn.Module, result: TrainResult) -> dict[str, Any]:
        return {
            "model": spec.key,
            "family": spec.family,
            "size": spec.size,
            "tokenizer": spec.tokenizer,
            "parameters": count_parameters(model),
            "context": spec.context,
            **loss_metrics(
                result, spec.train.steps, spec.train.eval_interval, valid_tokens, valid_notes
            ),
        }

    return TrainJob(
        key=spec.key,
        spec=spec.train,
        seed=seed,
        build=build,
        batches=batches,
        identity={
            "family": spec.family,
            "arch": spec.arch,
            "context": spec.context,
            "tokenizer": spec.tokenizer,
            "tokens": [int(batches.train_tokens.size), int(batches.valid_tokens.size)],
        },
        save=lambda model, folder: model.save_pretrained(folder),
        report=report,
        val_metrics=lambda loss: validation_metrics(loss, valid_tokens, valid_notes),
        config=config,
    )


def _read(path: Path, stage: str) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro {stage}` first.")
    return read_json(path)
