"""Between a prompt and a model, and between a model's ids and music: a codec says how a music
prompt becomes the model's prompt ids and how prompt plus new ids decode to a score. A model
trained on a music tokenizer uses `MusicCodec`; a fine-tuned LLM reads and writes text in its own
tokenizer (`midilm.finetune.generate.FinetuneCodec`). The sampling loop is the same for both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import symusic

from midilm.generate.prompts import Prompt
from midilm.tokenize.base import MusicTokenizer


@dataclass(frozen=True)
class Prepared:
    """A prompt as the model reads it, and what decoding its continuation needs."""

    ids: list[int]
    prompt: Prompt
    extra: Any = None  # codec-specific (e.g. the prompt notes as text)


@dataclass(frozen=True)
class Decoded:
    score: symusic.Score  # prompt notes, then the continuation's
    prompt_notes: int
    dropped: int  # generated tokens (or words) that decoding ignored


class Codec(Protocol):
    end_id: int | None
    context: int | None  # None: the model's own (chunked continuation past it)

    def prepare(self, prompt: Prompt) -> Prepared: ...

    def decode(self, prepared: Prepared, new: Sequence[int]) -> Decoded: ...


class MusicCodec:
    """A model trained on a music tokenizer: prompt ids are the tokenizer's, decoding is its."""

    def __init__(self, tokenizer: MusicTokenizer, stop_at_end: bool = True) -> None:
        self.tokenizer = tokenizer
        self.end_id = tokenizer.eos_id if stop_at_end else None
        self.context = None

    def prepare(self, prompt: Prompt) -> Prepared:
        return Prepared(list(prompt.ids), prompt)

    def decode(self, prepared: Prepared, new: Sequence[int]) -> Decoded:
        score = self.tokenizer.decode([*prepared.ids, *new])
        prompt_notes = int(self.tokenizer.decode(prepared.ids).note_num())
        return Decoded(score, prompt_notes, dropped_tokens(self.tokenizer, new))


def dropped_tokens(tokenizer: MusicTokenizer, ids: Sequence[int]) -> int:
    """Generated ids that decoding ignores: specials (PAD, BOS, EOS) and ids outside the vocab."""
    specials = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
    return sum(1 for i in ids if i in specials or not 0 <= i < tokenizer.vocab_size)


def seconds_of(score: symusic.Score) -> float:
    """How long a score sounds, in seconds (0 for an empty one)."""
    return float(score.to("second").end()) if score.note_num() else 0.0
