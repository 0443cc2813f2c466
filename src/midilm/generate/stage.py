"""Stage `generate@KEY`: continue prompts (by default the first tokens of test pieces) with model
KEY through the one sampling loop; write outputs/samples/KEY/sample_NNN.mid and samples.json."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from midilm.common.paths import Layout
from midilm.generate.codec import Codec, MusicCodec
from midilm.generate.prompts import make_prompts
from midilm.generate.samples import continue_prompts, write_samples
from midilm.models.io import load_model
from midilm.models.runtime import deterministic, quiet_transformers, resolve_device
from midilm.specs import GenerateSpec, ModelSpec, model_spec
from midilm.tokenize.base import load_tokenizer


def run_generate(
    params: Mapping[str, Any],
    layout: Layout,
    key: str | None = None,
    out_dir: Path | None = None,
    **overrides: Any,
) -> dict:
    """Sample from model `key`; returns samples.json's content. `overrides` replace fields of the
    model's generate spec (the CLI's options); `out_dir` defaults to outputs/samples/KEY."""
    spec = model_spec(params, key)
    gen = dataclasses.replace(spec.generate, **overrides) if overrides else spec.generate
    seed = int(params["seed"])
    quiet_transformers()
    device = resolve_device(gen.device)
    music = load_tokenizer(layout.tokens_dir(spec.tokenizer))
    with deterministic(seed, gen.threads):
        model, codec = load_for_sampling(spec, gen, layout, music, device)
        prompts = make_prompts(gen, music, spec.tokenizer, layout, seed, _transcriber(gen))
        results = continue_prompts(model, codec, prompts, gen, seed)
    settings = json.loads(json.dumps({**dataclasses.asdict(gen), "seed": seed}))  # as written
    return write_samples(
        out_dir or layout.samples_dir(spec.key), layout.root, spec.key, codec, results, settings
    )


def load_for_sampling(
    spec: ModelSpec, gen: GenerateSpec, layout: Layout, music: Any, device: torch.device
) -> tuple[torch.nn.Module, Codec]:
    """The trained model of `spec` in eval mode and the codec between its ids and music."""
    if spec.is_finetune:
        from midilm.finetune.generate import FinetuneCodec, load_finetuned

        quantize = "none" if device.type == "cpu" else None  # NF4 needs CUDA
        finetuned = load_finetuned(layout.model_dir(spec.key), device, quantize)
        codec = FinetuneCodec(finetuned, music, gen.prompt_tokens, gen.stop_at_end)
        return finetuned.model, codec
    model = load_model(layout.weights_dir(spec.key), spec.key).to(device).eval()
    return model, MusicCodec(music, gen.stop_at_end)


def _transcriber(gen: GenerateSpec) -> Any:
    """Audio prompts go through basic-pitch (midilm.audio), imported only when asked for."""
    if gen.prompt != "audio":
        return None
    from midilm.audio.transcribe import transcribe_to_midi

    return transcribe_to_midi
