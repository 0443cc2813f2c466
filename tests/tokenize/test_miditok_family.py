"""Every MidiTok family behind the protocol: one flat id stream, exact decode, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic

from midilm.specs.tokenizer import tokenizer_spec
from midilm.tokenize import load_tokenizer
from midilm.tokenize.factory import build_tokenizer
from midilm.tokenize.fidelity import note_f1
from midilm.tokenize.miditok_family import MIDITOK_CLASSES, MidiTokTokenizer


@pytest.mark.parametrize("name", sorted(MIDITOK_CLASSES))
def test_family_round_trips_a_chorale(
    name: str, params: dict, chorale_midis: list[Path], tmp_path: Path
) -> None:
    tokenizer = build_tokenizer(tokenizer_spec(params, name).build_cfg)
    score = symusic.Score(str(chorale_midis[1]))
    ids = tokenizer.encode(score)
    assert all(isinstance(i, int) and 0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.bos_id not in ids and tokenizer.eos_id not in ids
    decoded = tokenizer.decode([tokenizer.bos_id, *ids, tokenizer.eos_id])
    assert note_f1(score, decoded, tpq=tokenizer.resolution)[2] > 0.98
    tokenizer.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path)
    assert again.encode(score) == ids and again.vocab_size == tokenizer.vocab_size


def test_compound_tokens_are_flattened_by_sub_vocabulary_offsets(
    params: dict, chorale_midis: list[Path]
) -> None:
    tokenizer = build_tokenizer(tokenizer_spec(params, "octuple").build_cfg)
    assert isinstance(tokenizer, MidiTokTokenizer) and tokenizer.is_compound
    score = symusic.Score(str(chorale_midis[1]))
    compounds = tokenizer._tok.encode(score).ids
    width = len(compounds[0])
    ids = tokenizer.encode(score)
    assert len(ids) == width * len(compounds)
    sizes = [len(v) for v in tokenizer._tok.vocab]
    assert tokenizer.vocab_size == sum(sizes) == len(tokenizer.vocab)
    assert ids[:width] == [sum(sizes[:k]) + i for k, i in enumerate(compounds[0])]
    # a stray id breaking a compound drops that compound only
    broken = ids[: width + 3] + ids[width:]
    assert tokenizer.decode(broken).note_num() == tokenizer.decode(ids).note_num()
