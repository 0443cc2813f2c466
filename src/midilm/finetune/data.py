"""Instruction examples of seed 004: Simplified MIDI text in the Llama-2 chat template.

One example is

    <s>[INST] <<SYS>>\\n{persona} {notation} {task}\\n<</SYS>>\\n\\n{prompt notes} [/INST]
    {continuation notes} </s>

(the report's Figure 14 puts persona, notation and task in the system block and the first notes
in the user turn; the newlines are Llama-2's own template, as the report's inference script
writes it). Labels are -100 everywhere but on the continuation and the final EOS, so the loss is
the continuation's only. A piece longer than the context becomes several windows: each holds as
many notes as fit, about its first `prompt_fraction` (the report's code: 10 %) are the prompt,
and the next window's continuation starts where this one's ended (its prompt is the notes just
before), so every note after the first prompt is a target exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from midilm.specs import FinetuneSpec
from midilm.train.distributed import DistContext
from midilm.train.loop import IGNORE, Batch

NOTE_PREFIX = "p"  # every Simplified MIDI word starts with its pitch field

# The report's wording (seed 004 §6.1, Figure 14, and its inference script for the piano form).
PERSONA = "You are a classical pianist composer."
NOTATION = (
    "In this context, each music note in a musical sequence is described using four "
    "parameters: pitch (p) from 0 to 127 (highest pitch), volume (v) from 0 to 127 (loudest), "
    "duration of the note (d) in ticks, and the length of the pause (t) in ticks before the next "
    "note begins regardless of the previous note's duration. A tick is approximately 5.21 "
    "milliseconds. Each parameter is followed by its value and separated by colons "
    "(e.g. p52:v57:d195:t212)."
)
NOTATION_BEND = (
    "In this context, each music note in a musical sequence is described using five "
    "parameters: pitch (p) from 0 to 127 (highest pitch), volume (v) from 0 to 127 (loudest), "
    "duration of the note (d) in ticks, the length of the pause (t) in ticks before the next "
    "note begins regardless of the previous note's duration (a tick is approximately 5.21 "
    "milliseconds) and the pitch bend of the note (b) from 0 (2 dial tones under the current "
    "pitch) to 46 (2 dial tones over), with 23 meaning no distortion. Each parameter is followed "
    "by its value and separated by colons (e.g. p52:v57:d195:t212:b18)."
)
TASK = (
    "Your composition should demonstrate a clear progression and development, appropriate "
    "pauses, including thoughtful variations in melody, harmony, rhythm. Your Task is to "
    "complete the generation of :"
)
MARKERS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")


@dataclass(frozen=True)
class Header:
    """The fixed instruction before every example's notes; generation must reuse it as is."""

    persona: str = PERSONA
    notation: str = NOTATION
    task: str = TASK

    @classmethod
    def of(cls, spec: FinetuneSpec, bend: bool) -> Header:
        """The spec's `persona` (null: the report's), the report's notation and task."""
        return cls(spec.persona or PERSONA, NOTATION_BEND if bend else NOTATION, TASK)

    @property
    def system(self) -> str:
        return f"{self.persona} {self.notation} {self.task}"

    def prefix(self, prompt_notes: str) -> str:
        """The text before the continuation, without the BOS (`<s>`, added as an id)."""
        return f"[INST] <<SYS>>\n{self.system}\n<</SYS>>\n\n{prompt_notes} [/INST]"

    def as_dict(self) -> dict[str, str]:
        return {"persona": self.persona, "notation": self.notation, "task": self.task}


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    continuation_notes: int


def has_bend(texts: Sequence[str]) -> bool:
    """True when the texts are the guitar form (`:b` field), judged on the first note found."""
    for text in texts:
        words = text.split(maxsplit=1)
        if words:
            return words[0].count(":") == 4
    return False


def encode_example(
    tokenizer: Any, header: Header, prompt_notes: str, continuation: str
) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one example: BOS + template + continuation + EOS; labels keep the
    continuation tokens and EOS only. The template part is tokenized exactly as
    `prompt_ids(tokenizer, header, prompt_notes)` gives it at generation."""
    prefix = header.prefix(prompt_notes)
    text = f"{prefix} {continuation}"
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    cut = next((i for i, (_, end) in enumerate(offsets) if end > len(prefix)), len(ids))
    input_ids = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
    labels = [IGNORE] * (cut + 1) + ids[cut:] + [tokenizer.eos_token_id]
    return input_ids, labels


def prompt_ids(tokenizer: Any, header: Header, prompt_notes: str) -> list[int]:
    """BOS + the template around `prompt_notes`, ending at `[/INST]` (the generation prompt)."""
    ids = tokenizer(header.prefix(prompt_notes), add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id, *ids]


def word_token_counts(tokenizer: Any, words: Sequence[str]) -> np.ndarray:
    """Tokens per note word as it appears inside a text (with its leading space)."""
    if not words:
        return np.zeros(0, dtype=np.int64)
    enc = tokenizer([f" {w}" for w in words], add_special_tokens=False)["input_ids"]
    return np.asarray([len(e) for e in enc], dtype=np.int64)


def build_examples(
    tokenizer: Any,
    header: Header,
    texts: Sequence[str],
    context: int,
    prompt_fraction: float = 0.1,
) -> list[Example]:
    """Every window of every text as an example of at most `context` tokens (see module doc)."""
    overhead = len(encode_example(tokenizer, header, "", "")[0]) + 2  # template, BOS, EOS, spaces
    budget = context - overhead
    if budget < 2 * 16:
        raise ValueError(
            f"context {context} leaves {budget} tokens for notes after the {overhead}-token "
            "instruction header; raise `context` in conf/model/finetune.yaml or shorten the header"
        )
    examples = []
    for text in texts:
        words = text.split()
        if len(words) >= 2:
            examples += _piece_examples(tokenizer, header, words, budget, context, prompt_fraction)
    return examples


def _piece_examples(
    tokenizer: Any,
    header: Header,
    words: Sequence[str],
    budget: int,
    context: int,
    prompt_fraction: float,
) -> list[Example]:
    """The windows of one piece: each continuation starts where the previous one ended."""
    counts = word_token_counts(tokenizer, words)
    examples: list[Example] = []
    start = 0
    n_prompt = _prompt_size(prompt_fraction, _window_end(counts, 0, budget))
    while True:
        end = _window_end(counts, start, budget)
        split = start + min(n_prompt, end - start - 1)
        example = _fitted_example(tokenizer, header, words, start, split, end, context)
        end = split + (example.continuation_notes if example else 1)
        if example is not None:
            examples.append(example)
        if end >= len(words):
            return examples
        n_prompt = _prompt_size(prompt_fraction, end - start)  # the next prompt ends at `end`
        start = end - n_prompt


def _prompt_size(fraction: float, window: int) -> int:
    """`fraction` of a window's notes, at least one and leaving one to continue."""
    return min(max(1, math.floor(fraction * window)), max(window - 1, 1))


def _window_end(counts: np.ndarray, start: int, budget: int) -> int:
    """The end of the longest run of words from `start` within `budget` tokens (two at least)."""
    total = np.cumsum(counts[start:])
    fit = int(np.searchsorted(total, budget, side="right"))
    return start + max(fit, 2)


def _fitted_example(
    tokenizer: Any,
    header: Header,
    words: Sequence[str],
    start: int,
    split: int,
    end: int,
    context: int,
) -> Example | None:
    """The example of words[start:split] -> words[split:end], dropping trailing words until it
    fits `context` (token counts of separate words can differ slightly from the joined text's)."""
    prompt = " ".join(words[start:split])
    while end > split:
        input_ids, labels = encode_example(tokenizer, header, prompt, " ".join(words[split:end]))
        if len(input_ids) <= context:
            return Example(input_ids, labels, end - split)
        end -= 1
    return None


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    """Right-padded `input_ids` and `attention_mask`, and `labels` as the training loop takes
    them: the target of each position (the next token's label; IGNORE on the prompt, padding and
    the last position)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, : n - 1] = torch.tensor(example.labels[1:])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def labelled_tokens(examples: Sequence[Example]) -> int:
    """Tokens the loss is computed on (the continuation and EOS)."""
    return sum(1 for e in examples for label in e.labels[1:] if label != IGNORE)


@dataclass(frozen=True)
class ExampleBatches:
    """The training loop's batches for fine-tuning: seeded epochs over the examples; the first
    `eval_batches` global batches of the validation examples."""

    train: Sequence[Example]
    valid: Sequence[Example]
    batch_size: int  # per process
    accum: int
    seed: int
    pad_id: int
    eval_batches: int

    def train_batch(self, step: int, micro: int, ctx: DistContext) -> Batch:
        """Micro-batch `micro` of step `step`: the global batch (world x batch_size examples)
        drawn once, rank r taking the r-th slice."""
        size = self.batch_size * ctx.world_size
        chosen = batch_indices(len(self.train), self.seed, step, micro, self.accum, size)
        mine = chosen[ctx.rank * self.batch_size : (ctx.rank + 1) * self.batch_size]
        return collate([self.train[i] for i in mine], self.pad_id)

    def valid_batches(self, ctx: DistContext) -> list[Batch]:
        size = self.batch_size * ctx.world_size
        chosen = self.valid_examples(ctx.world_size)
        return [collate(chosen[i : i + size], self.pad_id) for i in range(0, len(chosen), size)]

    def valid_examples(self, world_size: int = 1) -> Sequence[Example]:
        return self.valid[: self.eval_batches * self.batch_size * world_size]


def batch_indices(count: int, seed: int, step: int, micro: int, accum: int, size: int) -> list[int]:
    """Example indices of micro-batch `micro` of optimizer step `step` (epochs in seeded order):
    a batch depends only on its coordinates."""
    first = (step * accum + micro) * size
    epochs: dict[int, np.ndarray] = {}
    out = []
    for position in range(first, first + size):
        epoch, index = divmod(position, count)
        if epoch not in epochs:
            epochs[epoch] = np.random.default_rng([seed, epoch]).permutation(count)
        out.append(int(epochs[epoch][index]))
    return out
