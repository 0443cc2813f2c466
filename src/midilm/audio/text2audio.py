"""Text -> audio with MusicGen through transformers' own loading code (hub id or local folder),
and seed 001's whole text-to-lo-fi path: MusicGen audio -> basic-pitch MIDI -> (optionally
continued by a midilm model) -> lo-fi mix."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from midilm.audio.lofi import lofi_mix
from midilm.audio.pcm import seconds_of, write_audio
from midilm.audio.transcribe import transcribe
from midilm.common.logging import get_logger
from midilm.specs.audio import AudioSpec, MusicgenSpec, load_audio_spec

log = get_logger(__name__)

Musicgen = tuple[Any, Any]  # (MusicgenForConditionalGeneration, MusicgenProcessor)


class MusicgenUnavailable(RuntimeError):
    """MusicGen's weights can be neither found locally nor downloaded; says how to provide them."""


def load_musicgen(name_or_path: str, device: str = "auto") -> Musicgen:
    """(model, processor) by hub id (`facebook/musicgen-small`) or a save_pretrained folder.

    The local cache is tried first (no network round trip when the weights are there); the Hub
    only when that fails and HF_HUB_OFFLINE is not set."""
    from midilm.common.hub import hub_offline, looks_like_path
    from midilm.models.runtime import quiet_transformers, resolve_device

    quiet_transformers()
    name = str(name_or_path)
    local = looks_like_path(name)
    if local and not Path(name).expanduser().is_dir():
        raise MusicgenUnavailable(
            f"MusicGen {name!r}: no such folder; set audio.musicgen.model to a folder holding a "
            "MusicGen save_pretrained output (config.json, weights, processor files) or a hub id"
        )
    attempts = [True] if local or hub_offline() else [True, False]
    error: Exception | None = None
    for local_only in attempts:
        try:
            return _load(name, local_only, resolve_device(device))
        except OSError as exc:  # transformers reports missing files and repos as OSError
            error = exc
    raise MusicgenUnavailable(_unavailable_message(name, local, error)) from error


def _load(name: str, local_only: bool, device: Any) -> Musicgen:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    path = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    processor = AutoProcessor.from_pretrained(path, local_files_only=local_only)
    model = MusicgenForConditionalGeneration.from_pretrained(path, local_files_only=local_only)
    return model.to(device).eval(), processor


def _unavailable_message(name: str, local: bool, error: Exception | None) -> str:
    from huggingface_hub import constants

    if local:
        return f"MusicGen {name!r}: cannot load the folder ({error})"
    return (
        f"MusicGen model {name!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
        f"and the Hub cannot serve it (offline or unreachable: {str(error).splitlines()[0]}). "
        f"Fix: on a machine with network run `hf download {name}` and copy the cache here (or "
        "point HF_HOME at it), or save the model with save_pretrained into a folder and set "
        "audio.musicgen.model to that folder's path."
    )


def text_to_audio(
    text: str,
    seconds: float,
    out_path: str | Path,
    spec: MusicgenSpec,
    seed: int,
    musicgen: Musicgen | None = None,
) -> dict[str, Any]:
    """`seconds` of MusicGen audio for `text`, written as 16-bit WAV or FLAC at the model's rate."""
    import torch

    from midilm.models.runtime import deterministic

    if not text.strip():
        raise ValueError("text_to_audio: the text prompt is empty")
    if Path(out_path).suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"{out_path}: text_to_audio writes .wav or .flac")
    model, processor = musicgen or load_musicgen(spec.model, spec.device)
    rate = int(model.config.audio_encoder.sampling_rate)
    frame_rate = float(model.config.audio_encoder.frame_rate)
    codebooks = int(model.decoder.config.num_codebooks)
    # the delay pattern: n tokens give n - codebooks + 1 audio frames
    tokens = math.ceil(seconds * frame_rate) + codebooks - 1
    limit = int(model.decoder.config.max_position_embeddings)
    if seconds <= 0 or tokens > limit:
        raise ValueError(
            f"text_to_audio: {seconds} s needs {tokens} tokens; {spec.model} allows 1..{limit} "
            f"({(limit - codebooks + 1) / frame_rate:.1f} s)"
        )
    inputs = processor(text=[text], padding=True, return_tensors="pt").to(model.device)
    with deterministic(seed), torch.no_grad():
        audio = model.generate(
            **inputs,
            do_sample=True,
            guidance_scale=spec.guidance_scale,
            top_k=spec.top_k,
            temperature=spec.temperature,
            max_new_tokens=tokens,
        )
    waveform = audio[0].float().cpu().numpy().T  # (frames, channels)
    write_audio(out_path, waveform, rate)
    return {
        "text": text,
        "model": spec.model,
        "seed": seed,
        "path": str(out_path),
        "sample_rate": rate,
        "seconds": seconds_of(waveform, rate),
    }


def text_to_lofi(
    text: str,
    out_path: str | Path,
    seconds: float,
    seed: int,
    spec: AudioSpec | None = None,
    continue_midi: Callable[[Path], Path] | None = None,
    drums_midi: str | Path | None = None,
    loops_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    musicgen: Musicgen | None = None,
) -> dict[str, Any]:
    """Seed 001's text-to-lo-fi path: MusicGen audio for `text` -> basic-pitch MIDI ->
    `continue_midi(prompt) -> continued MIDI` when given (a midilm model) -> lo-fi mix of
    `seconds` at `out_path`. Intermediate files go to `work_dir` (default `<out>.parts/`)."""
    spec = spec or load_audio_spec()
    out_path = Path(out_path)
    work = Path(work_dir) if work_dir else out_path.parent / f"{out_path.stem}.parts"
    audio = text_to_audio(
        text, spec.musicgen.prompt_seconds, work / "musicgen.wav", spec.musicgen, seed, musicgen
    )
    transcription = transcribe(work / "musicgen.wav", work / "prompt.mid", spec.transcribe)
    if transcription["notes"] == 0:
        raise ValueError(
            f"{work / 'musicgen.wav'}: basic-pitch heard no notes in MusicGen's audio for "
            f"{text!r}; try another seed or text, or lower audio.transcribe's thresholds"
        )
    piano = work / "prompt.mid"
    if continue_midi is not None:
        piano = Path(continue_midi(piano))
        log.info("text_to_lofi: the model continued the prompt into %s", piano)
    mix = lofi_mix(piano, out_path, seconds, seed, drums_midi, loops_dir, spec)
    return {
        "text": text,
        "musicgen": audio,
        "transcription": transcription,
        "continued": continue_midi is not None,
        "piano_midi": str(piano),
        "mix": mix,
    }
