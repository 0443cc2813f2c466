"""Generation with a fine-tuned LLM (seed 004): the training header, then the one sampling loop.

`load_finetuned` rebuilds the base model exactly as training loaded it (hub id, local folder or
the offline stand-in in models/<key>/weights/base/; RoPE scaling; quantization) and puts the
adapter of models/<key>/weights/ on it. `FinetuneCodec` writes a prompt's first notes (as
Simplified MIDI words) into the same Llama-2 chat header and parses the generated text back to a
score, dropping and counting the words that do not parse. No chunked continuation: the header
must stay in view, so a sample ends at the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import symusic
import torch
from peft import PeftModel

from midilm.common.io import read_json
from midilm.finetune.data import Header, prompt_ids
from midilm.finetune.model import BaseLoading, load_base, load_base_tokenizer
from midilm.finetune.train import INSTRUCT
from midilm.generate.codec import Decoded, Prepared
from midilm.generate.prompts import Prompt
from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.simplified_midi import SimplifiedMidiConfig, SimplifiedMidiTokenizer

WEIGHTS = "weights"
WORDS_PER_NOTE_TOKENS = 4  # a Simplified MIDI note is 4 ids (p v d t): prompt_tokens // 4 notes


@dataclass
class FineTuned:
    """A base model with its adapter, its tokenizer and the training header."""

    model: torch.nn.Module
    tokenizer: Any
    header: Header
    bend: bool
    context: int


def load_finetuned(
    out_dir: Path, device: torch.device | str = "cpu", quantize: str | None = None
) -> FineTuned:
    """The model trained into `out_dir` (models/<key>); `quantize` overrides the training one
    (e.g. `none` to sample on CPU from a QLoRA adapter, in the base's full precision)."""
    out_dir = Path(out_dir)
    weights = out_dir / WEIGHTS
    for name in (INSTRUCT, "adapter_config.json", "adapter_model.safetensors"):
        if not (weights / name).exists():
            raise FileNotFoundError(
                f"{weights / name}: missing; run `dvc repro train@{out_dir.name}` first."
            )
    spec = read_json(weights / INSTRUCT)
    loading = BaseLoading(**spec["loading"])
    if quantize is not None:
        loading = BaseLoading(**{**spec["loading"], "quantize": quantize})
    base = weights / spec["base_dir"] if spec.get("base_dir") else spec["base_model"]
    if spec.get("base_dir") and not Path(base).is_dir():
        raise FileNotFoundError(f"{base}: the offline base is missing; re-run train@{out_dir.name}")
    model = PeftModel.from_pretrained(load_base(base, loading, device), weights).eval()
    model.config.use_cache = True
    tokenizer = load_base_tokenizer(weights)
    return FineTuned(
        model, tokenizer, Header(**spec["header"]), bool(spec["bend"]), loading.context
    )


def text_to_score(text: str, bend: bool = False) -> tuple[symusic.Score, int]:
    """(score, dropped words) of Simplified MIDI text: words that do not parse or hold values out
    of range are dropped and counted (the tokenizer's tolerant text decoding)."""
    tokenizer = SimplifiedMidiTokenizer(SimplifiedMidiConfig(bend=bend))
    ids, dropped = tokenizer.from_text_with_report(text)
    score, dropped_ids = tokenizer.decode_with_report(ids)
    return score, dropped + dropped_ids


class FinetuneCodec:
    """Music prompts (ids of the DAG's Simplified MIDI tokenizer) <-> the LLM's text."""

    def __init__(
        self, finetuned: FineTuned, music: MusicTokenizer, prompt_tokens: int, stop_at_end: bool
    ) -> None:
        if not callable(getattr(music, "to_text", None)):
            raise ValueError(
                f"tokenizer {music.name!r} has no text form; fine-tuning uses simplified_midi"
            )
        self.finetuned, self.music = finetuned, music
        self.prompt_notes = max(1, prompt_tokens // WORDS_PER_NOTE_TOKENS)
        self.end_id = int(finetuned.tokenizer.eos_token_id) if stop_at_end else None
        self.context = finetuned.context

    def prepare(self, prompt: Prompt) -> Prepared:
        specials = {self.music.bos_id, self.music.eos_id, self.music.pad_id}
        text = self.music.to_text([i for i in prompt.ids if i not in specials])  # type: ignore[attr-defined]
        notes = " ".join(text.split()[: self.prompt_notes])
        ids = prompt_ids(self.finetuned.tokenizer, self.finetuned.header, notes)
        return Prepared(ids, prompt, notes)

    def decode(self, prepared: Prepared, new: Sequence[int]) -> Decoded:
        text = self.finetuned.tokenizer.decode(list(new), skip_special_tokens=True).strip()
        prompt_score, _ = text_to_score(prepared.extra, self.finetuned.bend)
        score, dropped = text_to_score(f"{prepared.extra} {text}", self.finetuned.bend)
        return Decoded(score, int(prompt_score.note_num()), dropped)
