"""Instruction examples: the Llama-2 chat template, labels on the continuation only, windows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from transformers import AutoTokenizer

from midilm.finetune.data import (
    NOTATION_BEND,
    PERSONA,
    Header,
    batch_indices,
    build_examples,
    collate,
    encode_example,
    has_bend,
    prompt_ids,
)
from midilm.train.loop import IGNORE
from tests.finetune.conftest import finetune_spec

CONTEXT = 256


def test_template_is_llama2_chat_with_the_report_header() -> None:
    header = Header()
    prefix = header.prefix("p60:v80:d96:t0")
    assert prefix.startswith(
        "[INST] <<SYS>>\nYou are a classical pianist composer. In this context"
    )
    assert (
        "Your Task is to complete the generation of :\n<</SYS>>\n\np60:v80:d96:t0 [/INST]" in prefix
    )
    assert header.system.startswith(PERSONA)


def test_labels_keep_only_the_continuation_and_eos(
    tiny_llama: Path, chorale_texts: list[str]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    words = chorale_texts[0].split()
    prompt, continuation = " ".join(words[:5]), " ".join(words[5:30])
    ids, labels = encode_example(tokenizer, Header(), prompt, continuation)

    assert len(ids) == len(labels)
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    kept = [i for i, label in zip(ids, labels, strict=True) if label != IGNORE]
    assert [label for label in labels if label != IGNORE] == kept
    assert kept[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(kept[:-1]).strip() == continuation
    # everything before the continuation is masked and is exactly the generation prompt
    first = next(i for i, label in enumerate(labels) if label != IGNORE)
    assert ids[:first] == prompt_ids(tokenizer, Header(), prompt)
    assert tokenizer.decode(ids[1:first]).endswith("[/INST]")


def test_windows_fit_the_context_and_cover_every_note(
    tiny_llama: Path, chorale_texts: list[str]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    text = chorale_texts[0]
    examples = build_examples(tokenizer, Header(), [text], CONTEXT, prompt_fraction=0.1)

    assert len(examples) > 1  # a chorale is longer than one window
    assert all(len(e.input_ids) <= CONTEXT for e in examples)
    continued = []
    for example in examples:
        kept = [
            i for i, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE
        ]
        words = tokenizer.decode(kept[:-1]).split()
        assert len(words) == example.continuation_notes
        continued += words
    notes = text.split()
    # every note after the first prompt is a target, in order, once
    assert continued == notes[len(notes) - len(continued) :]
    assert len(continued) >= 0.85 * len(notes)


def test_collate_pads_right_and_shifts_labels_to_targets(
    tiny_llama: Path, chorale_texts: list[str]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    examples = build_examples(tokenizer, Header(), chorale_texts[:2], CONTEXT)[:3]
    batch = collate(examples, tokenizer.pad_token_id)
    width = max(len(e.input_ids) for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, width)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        assert batch["attention_mask"][row].sum() == n
        # position t's target is the label of token t + 1; none after the last real token
        assert batch["labels"][row, : n - 1].tolist() == example.labels[1:]
        assert (batch["labels"][row, n - 1 :] == IGNORE).all()
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()


def test_batches_walk_seeded_epochs() -> None:
    first_epoch = [i for step in range(5) for i in batch_indices(10, 7, step, 0, 1, 2)]
    assert sorted(first_epoch) == list(range(10))
    assert batch_indices(10, 7, 3, 1, 2, 4) == batch_indices(10, 7, 3, 1, 2, 4)
    assert first_epoch != [i for step in range(5) for i in batch_indices(10, 8, step, 0, 1, 2)]


def test_bend_texts_get_the_five_parameter_notation() -> None:
    assert has_bend(["p49:v71:d196:t1174:b23 p44:v77:d196:t8:b23"])
    assert not has_bend(["", "p60:v80:d96:t0"])
    spec = finetune_spec(None).finetune
    assert Header.of(spec, bend=True).notation == NOTATION_BEND
    metal = dataclasses.replace(spec, persona="You are a metal guitarist composer.")
    assert Header.of(metal, True).persona == "You are a metal guitarist composer."
