"""Stages `render@KEY` (model KEY's samples and the pieces they continued as FLAC and MP3) and
`lofi` (seed 001's lo-fi mixes of the piano model's samples)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from midilm.audio.mixes import write_lofi_mixes
from midilm.audio.render import render_samples
from midilm.audio.text2audio import text_to_lofi
from midilm.common.logging import get_logger
from midilm.common.paths import SAMPLES_FILE, Layout
from midilm.specs import main_model, sample_set_key, samples_stage
from midilm.specs.audio import audio_spec

log = get_logger(__name__)


def run_render(params: Mapping[str, Any], layout: Layout, key: str) -> dict[str, Any]:
    """Render outputs/samples/KEY to outputs/audio/KEY (audio.json lists every file)."""
    key = sample_set_key(params, key)
    samples = layout.samples_dir(key) / SAMPLES_FILE
    if not samples.exists():
        raise FileNotFoundError(f"{samples}: missing; run `dvc repro {samples_stage(key)}` first.")
    return render_samples(samples, layout.audio_dir(key), audio_spec(params), layout.root)


def run_text_to_lofi(
    params: Mapping[str, Any],
    layout: Layout,
    text: str,
    seconds: float | None,
    model: str | None,
    out: Path,
) -> dict[str, Any]:
    """Seed 001's text-to-lo-fi path: MusicGen audio -> basic-pitch MIDI -> (model `model`
    continues it, when given) -> a lo-fi mix of `seconds` (default: lofi.seconds) at `out`."""
    spec = audio_spec(params)
    continue_midi = None
    if model is not None:
        from midilm.generate.session import continue_midi_file

        continue_midi = continue_midi_file(params, layout, model, out.parent / f"{out.stem}.parts")
    return text_to_lofi(
        text,
        out,
        seconds or spec.lofi.seconds,
        int(params["seed"]),
        spec,
        continue_midi,
        loops_dir=spec.lofi.loops_dir,
    )


def run_lofi(params: Mapping[str, Any], layout: Layout) -> dict[str, Any]:
    """outputs/lofi/mix_NNN.{flac,mp3} and lofi.json from the piano model's samples."""
    spec = audio_spec(params)
    piano = sample_set_key(params, spec.lofi.piano_model or main_model(params))
    drums = spec.lofi.drum_model and sample_set_key(params, spec.lofi.drum_model)
    return write_lofi_mixes(
        layout.samples_dir(piano) / SAMPLES_FILE,
        layout.lofi_dir,
        spec,
        int(params["seed"]),
        layout.root,
        layout.samples_dir(drums) / SAMPLES_FILE if drums else None,
        spec.lofi.loops_dir,
    )
