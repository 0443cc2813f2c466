"""Generation from a fine-tuned adapter: the same header, the one sampling loop, text to score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import symusic
import torch

from midilm.finetune.data import Header
from midilm.finetune.generate import FinetuneCodec, load_finetuned, text_to_score
from midilm.generate.prompts import Prompt
from midilm.generate.sampling import Sampling, generate
from midilm.tokenize.simplified_midi import SimplifiedMidiTokenizer


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
    music = SimplifiedMidiTokenizer()
    codec = FinetuneCodec(finetuned, music, prompt_tokens=32, stop_at_end=True)
    prompt = Prompt([music.bos_id, *music.from_text(texts_valid[0])], "piece", None)
    prepared = codec.prepare(prompt)
    assert prepared.extra == " ".join(texts_valid[0].split()[:8])  # 32 ids = 8 notes
    assert finetuned.tokenizer.decode(prepared.ids).rstrip().endswith("[/INST]")

    def sample(seed: int) -> list[int]:
        generator = [torch.Generator().manual_seed(seed)]
        new = generate(
            finetuned.model,
            [prepared.ids],
            generator,
            60,
            Sampling(top_p=0.95),
            codec.end_id,
            codec.context,
        )
        return new[0]

    first = sample(0)
    assert 0 < len(first) <= 60
    assert sample(0) == first and sample(1) != first  # a generator seed fixes the sample
    decoded = codec.decode(prepared, first)
    assert isinstance(decoded.score, symusic.Score) and decoded.prompt_notes == 8
    assert decoded.score.note_num() + decoded.dropped > decoded.prompt_notes  # it wrote something


def test_missing_adapter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"run `dvc repro train@finetune` first"):
        load_finetuned(tmp_path / "finetune")
