"""The `generate` group (conf/generate/default.yaml), with a model entry's `generate` block on top.

Sampling as seed 001 describes it (temperature, top-k, top-p, presence and frequency penalties
whose counts decay by `alpha_decay` per step, stop at the end token, chunked continuation up to a
target length) and the prompt: the first tokens of test pieces by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from midilm.common.spec import from_mapping

WHERE = "conf/generate/default.yaml"
PROMPT_KINDS = ("test", "midi", "text", "random", "audio", "none")


@dataclass(frozen=True)
class RandomPromptSpec:
    """Seed 001's random-notes prompt: notes with pitch, velocity bin and wait drawn uniformly."""

    notes: int
    pitch: tuple[int, int]
    velocity_bin: tuple[int, int]
    wait: tuple[int, int]  # in the encoding's wait steps (MIDICompact: 8 ms)
    repeat: int


@dataclass(frozen=True)
class GenerateSpec:
    num_samples: int
    batch_size: int  # sequences sampled together (the same tokens as one at a time)
    prompt: Literal["test", "midi", "text", "random", "audio", "none"]
    prompt_path: str | None  # the MIDI, text or audio file of prompt kinds midi/text/audio
    prompt_tokens: int  # prompt = the first tokens of the prompt piece
    random_prompt: RandomPromptSpec
    max_new_tokens: int  # per sample; 0 with target_seconds: until the target
    target_seconds: float | None  # continue (in chunks) until the music lasts this long
    temperature: float
    top_k: int | None
    top_p: float | None
    presence_penalty: float
    frequency_penalty: float
    alpha_decay: float
    stop_at_end: bool  # stop a sequence at the tokenizer's end token (EOS / <end>)
    device: str
    threads: int


def generate_spec(group: Mapping[str, Any], override: Mapping[str, Any] | None) -> GenerateSpec:
    merged = {**dict(group), **dict(override or {})}
    where = WHERE if not override else f"{WHERE} + the model's `generate` block"
    return from_mapping(GenerateSpec, merged, where)
