"""The training job of a fine-tuned LLM (seed 004): instruction examples of its tokenizer's packed
JSONL texts, the base model by hub id or local folder (or the offline stand-in when
`base_model` is null) with LoRA adapters on the seven projections, the loss on the continuation
only. It runs through the same `midilm.train.run.run_job` as every model.

weights/ then holds the adapter, the LLM's tokenizer, instruct.json (what generation needs to
rebuild the model and the prompt) and, for the stand-in, the base model itself in weights/base/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from midilm.common.io import read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.finetune.data import (
    ExampleBatches,
    Header,
    build_examples,
    has_bend,
    labelled_tokens,
)
from midilm.finetune.model import (
    TARGET_MODULES,
    BaseLoading,
    adapted_modules,
    apply_lora,
    load_base,
    load_base_tokenizer,
    parameter_counts,
)
from midilm.finetune.standin import build_offline_base
from midilm.models.runtime import deterministic, quiet_transformers
from midilm.specs import FinetuneSpec, ModelSpec
from midilm.store.packed import read_texts, training_stats
from midilm.train.loop import ALONE, TrainResult, evaluate
from midilm.train.metrics import loss_metrics, rounded, validation_metrics
from midilm.train.run import TrainJob

log = get_logger(__name__)

BASE, INSTRUCT = "base", "instruct.json"  # the stand-in lives in weights/base


def finetune_texts(spec: ModelSpec, layout: Layout) -> tuple[list[str], list[str]]:
    """The train and valid texts of model `spec`: data/packed/<tokenizer>/{train,valid}.jsonl."""
    packed = layout.packed_dir(spec.tokenizer)
    stats = training_stats(packed, spec.tokenizer, spec.key)
    if not stats.get("jsonl"):
        raise ValueError(
            f"{packed / 'stats.json'}: tokenizer {spec.tokenizer!r} has no text form, so model "
            f"{spec.key!r} (family finetune) has no text to learn; set its `tokenizer: "
            "simplified_midi` in conf/model"
        )
    return read_texts(packed / "train.jsonl"), read_texts(packed / "valid.jsonl")


@contextlib.contextmanager
def finetune_job(
    spec: ModelSpec,
    seed: int,
    texts_train: list[str],
    texts_valid: list[str],
    scratch_root: Path,
    config: dict[str, Any] | None = None,
) -> Iterator[TrainJob]:
    """The job of fine-tuning model `spec` on Simplified MIDI texts. Without `base_model`, the
    stand-in is built first, in a temporary folder under `scratch_root` that lives while the job
    runs (its `save` copies it into weights/base)."""
    finetune = _finetune(spec)
    bend = has_bend(texts_train)
    header = Header.of(finetune, bend)
    loading = BaseLoading.of(finetune, spec.context)
    quiet_transformers()
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".standin-", dir=scratch_root))
    try:
        base_name: str | Path | None = finetune.base_model
        if not base_name:
            if finetune.offline_base is None:
                raise ValueError(
                    f"conf/model/finetune.yaml: model {spec.key!r} has neither `base_model` nor "
                    "`offline_base`; name a base model or give the stand-in's sizes"
                )
            with deterministic(seed, spec.train.threads):
                base_name = build_offline_base(
                    scratch, texts_train, finetune.offline_base, seed, spec.context, header.system
                )
        yield _job(
            spec,
            finetune,
            seed,
            config or {},
            header,
            bend,
            loading,
            base_name,
            texts_train,
            texts_valid,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _job(
    spec: ModelSpec,
    finetune: FinetuneSpec,
    seed: int,
    config: dict[str, Any],
    header: Header,
    bend: bool,
    loading: BaseLoading,
    base_name: str | Path,
    texts_train: list[str],
    texts_valid: list[str],
) -> TrainJob:
    tokenizer = load_base_tokenizer(base_name)
    pad_id = int(tokenizer.pad_token_id)
    examples = build_examples(
        tokenizer, header, texts_train, spec.context, finetune.prompt_fraction
    )
    valid_all = build_examples(
        tokenizer, header, texts_valid, spec.context, finetune.prompt_fraction
    )
    train_spec = spec.train.with_examples(len(examples))
    if not examples:
        raise ValueError(f"model {spec.key!r}: no training example (every text has < 2 notes)")
    batches = ExampleBatches(
        examples,
        valid_all,
        train_spec.batch_size,
        train_spec.grad_accum,
        seed,
        pad_id,
        train_spec.eval_batches,
    )
    valid = batches.valid_examples()
    valid_tokens = labelled_tokens(valid)
    valid_notes = sum(e.continuation_notes for e in valid)
    base_loss: dict[str, float] = {}
    offline = not finetune.base_model

    def build(device: torch.device) -> torch.nn.Module:
        model = load_base(base_name, loading, device)
        model = apply_lora(model, finetune)
        log.info(
            "finetune %s on %s: %d train / %d valid examples, adapters on %d layers x %s",
            base_name,
            device,
            len(examples),
            len(valid),
            len(adapted_modules(model)),
            TARGET_MODULES,
        )
        if valid:  # the loss before fine-tuning, for metrics.json
            base_loss["val"] = evaluate(model, batches.valid_batches(ALONE))
        return model

    def save(model: Any, folder: Path) -> None:
        model.peft_config["default"].base_model_name_or_path = BASE if offline else str(base_name)
        save_adapter(model, folder)
        tokenizer.save_pretrained(folder)
        write_json_atomic(
            folder / INSTRUCT, instruct_spec(loading, finetune, header, bend, base_name, offline)
        )
        if offline:
            shutil.copytree(base_name, folder / BASE)

    def report(model: torch.nn.Module, result: TrainResult) -> dict[str, Any]:
        trainable, total = parameter_counts(model)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        per_step = train_spec.batch_size * train_spec.grad_accum
        before = base_loss.get("val")
        return {
            "model": spec.key,
            "family": spec.family,
            "size": spec.size,
            "tokenizer": spec.tokenizer,
            "base_model": finetune.base_model or "offline stand-in (weights/base)",
            "quantize": finetune.quantize,
            "rope": dict(getattr(base.config, "rope_parameters", None) or {}),
            "lora": {
                "r": finetune.lora_r,
                "alpha": finetune.lora_alpha,
                "dropout": finetune.lora_dropout,
                "target_modules": list(TARGET_MODULES),
            },
            "parameters": trainable,
            "parameters_total": total,
            "context": spec.context,
            "epochs": rounded(train_spec.steps * per_step / max(len(examples), 1)),
            "train_examples": len(examples),
            "valid_examples": len(valid),
            "val_tokens": valid_tokens,
            "val_loss_base": rounded(before) if before is not None else None,
            **loss_metrics(
                result, train_spec.steps, train_spec.eval_interval, valid_tokens, valid_notes
            ),
        }

    return TrainJob(
        key=spec.key,
        spec=train_spec,
        seed=seed,
        build=build,
        batches=batches,
        identity={
            "family": spec.family,
            "finetune": dataclasses.asdict(finetune),
            "context": spec.context,
            "tokenizer": spec.tokenizer,
            "examples": [len(examples), len(valid_all)],
        },
        save=save,
        report=report,
        val_metrics=lambda loss: validation_metrics(loss, valid_tokens, valid_notes),
        config=config,
    )


def _finetune(spec: ModelSpec) -> FinetuneSpec:
    if spec.finetune is None:
        raise ValueError(f"model {spec.key!r} is not a finetune entry")
    return spec.finetune


def instruct_spec(
    loading: BaseLoading,
    finetune: FinetuneSpec,
    header: Header,
    bend: bool,
    base_name: str | Path,
    offline: bool,
) -> dict[str, Any]:
    """weights/instruct.json: what generation needs to rebuild the model and the prompt."""
    return {
        "base_model": None if offline else str(base_name),
        "base_dir": BASE if offline else None,  # the stand-in, relative to weights/
        "loading": dataclasses.asdict(loading),
        "header": header.as_dict(),
        "bend": bend,
        "prompt_fraction": finetune.prompt_fraction,
        "template": "llama2-chat",
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
