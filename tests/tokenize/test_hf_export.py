"""Hugging Face export: `AutoTokenizer` loads what `export_hf_tokenizer` writes, with pad/bos/eos
set, and reading a family's text form through it gives our encoder's ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic
from transformers import AutoTokenizer

from midilm.tokenize import build_tokenizer
from midilm.tokenize.hf import export_hf_tokenizer


@pytest.mark.parametrize("name", ["midicompact", "simplified_midi", "simplified_midi_bend"])
def test_hf_tokenizer_reads_the_text_form_as_our_ids(
    name: str, chorale_midis: list[Path], tmp_path: Path
) -> None:
    tok = build_tokenizer({"name": name})
    export_hf_tokenizer(tok, tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert len(hf) == tok.vocab_size
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2)
    for path in chorale_midis[:3]:
        ids = tok.encode(symusic.Score(str(path)))
        text = tok.to_text(ids)  # type: ignore[attr-defined]
        assert hf(text, add_special_tokens=False)["input_ids"] == ids
        assert hf(text)["input_ids"] == [tok.bos_id, *ids, tok.eos_id]


def test_a_midicompact_text_decodes_back_through_hf(tmp_path: Path) -> None:
    tok = build_tokenizer({"name": "midicompact"})
    hf = export_hf_tokenizer(tok, tmp_path)
    text = "3c:a 40:a t62 3c:0 40:0"
    assert hf.decode(hf(text, add_special_tokens=False)["input_ids"]) == text


def test_miditok_tokenizers_export_by_token_names(tmp_path: Path) -> None:
    tok = build_tokenizer({"name": "tsd", "miditok": {}})
    hf = export_hf_tokenizer(tok, tmp_path)
    names = {i: t for t, i in tok.vocab.items()}
    ids = list(range(3, 40))
    assert hf(" ".join(names[i] for i in ids), add_special_tokens=False)["input_ids"] == ids
