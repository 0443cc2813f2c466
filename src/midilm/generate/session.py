"""A trained model ready to sample, whatever its kind: the model and the codec between its ids
and music, the prompts of the spec, the one sampling loop, the samples written. The generate
stage, the CLI's one-piece generation and the text-to-lo-fi path all sample through here."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
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
from midilm.specs.audio import audio_spec
from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.factory import load_tokenizer


def sample_set(
    params: Mapping[str, Any],
    layout: Layout,
    key: str | None,
    out_dir: Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Sample from model `key` into `out_dir` (default outputs/samples/KEY); `overrides`
    replace fields of its generate spec. Returns samples.json's content."""
    spec = model_spec(params, key)
    gen = dataclasses.replace(spec.generate, **overrides) if overrides else spec.generate
    seed = int(params["seed"])
    quiet_transformers()
    device = resolve_device(gen.device)
    music = load_tokenizer(layout.tokens_dir(spec.tokenizer))
    with deterministic(seed, gen.threads):
        model, codec = load_for_sampling(spec, gen, layout, music, device)
        transcribe = _transcriber(params, layout) if gen.prompt == "audio" else None
        prompts = make_prompts(gen, music, spec.tokenizer, layout, seed, transcribe)
        results = continue_prompts(model, codec, prompts, gen, seed)
    settings = json.loads(json.dumps({**dataclasses.asdict(gen), "seed": seed}))  # as written
    return write_samples(
        out_dir or layout.samples_dir(spec.key), layout.root, spec.key, codec, results, settings
    )


def load_for_sampling(
    spec: ModelSpec, gen: GenerateSpec, layout: Layout, music: MusicTokenizer, device: torch.device
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


def continue_midi_file(
    params: Mapping[str, Any], layout: Layout, key: str, work_dir: Path
) -> Callable[[Path], Path]:
    """A function continuing a MIDI file with model `key` (one sample, its generate spec),
    returning the continued MIDI file (in `work_dir`)."""

    def continued(prompt: Path) -> Path:
        out = work_dir / f"continued-{prompt.stem}"
        result = sample_set(
            params,
            layout,
            key,
            out,
            prompt="midi",
            prompt_path=str(prompt),
            num_samples=1,
            batch_size=1,
        )
        return layout.root / result["samples"][0]["path"]

    return continued


def _transcriber(params: Mapping[str, Any], layout: Layout) -> Callable[[Path], Path]:
    """Audio prompts: basic-pitch (midilm.audio.transcribe) with the audio group's thresholds,
    the MIDI written beside the samples' work files."""
    from midilm.audio.transcribe import transcribe

    spec = audio_spec(params).transcribe

    def to_midi(audio: Path) -> Path:
        out = layout.root / "outputs" / "prompts" / f"{audio.stem}.mid"
        transcribe(audio, out, spec)
        return out

    return to_midi
