"""Generation from a fine-tuned adapter: same header, nucleus sampling, text back to a score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import symusic
import torch

from midilm.generate.instruct import (
    TEMPERATURE,
    TOP_P,
    generate_sample,
    load_finetuned,
    prompt_from_text,
    text_to_score,
)
from midilm.train.instruct_data import Header


def test_text_to_score_drops_and_counts_bad_words() -> None:
    score, dropped = text_to_score("p60:v80:d96:t0 garbage p64:v80:d96:t96 p200:v1:d1:t1 p67:v80")
    assert dropped == 3
    notes = score.tracks[0].notes
    assert [n.pitch for n in notes] == [60, 64] and [n.time for n in notes] == [0, 0]


def test_generation_uses_the_training_header_and_decodes_to_a_score(
    stand_in_runs: tuple[Path, Path, dict[str, Any]], texts_valid: list[str]
) -> None:
    out, _, _ = stand_in_runs
    finetuned = load_finetuned(out)
    assert finetuned.header == Header() and not finetuned.bend
    assert (TOP_P, TEMPERATURE) == (0.95, 1.0)

    prompt = prompt_from_text(texts_valid[0], 8)
    samples = [
        generate_sample(finetuned, prompt, 60, torch.Generator().manual_seed(seed))
        for seed in (0, 0, 1)
    ]
    first = samples[0]
    assert isinstance(first.score, symusic.Score)
    assert first.prompt_notes == 8
    assert first.notes + first.dropped_words > first.prompt_notes  # it wrote something
    assert first.dropped_words >= 0
    assert len(first.new_ids) <= 60
    assert samples[1].new_ids == first.new_ids  # a generator seed fixes the sample
    assert samples[2].new_ids != first.new_ids
    parsed, dropped = text_to_score(f"{prompt} {first.text}")
    assert parsed.note_num() == first.notes and dropped == first.dropped_words


def test_missing_adapter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"run `dvc repro train@lora` first"):
        load_finetuned(tmp_path / "lora")
