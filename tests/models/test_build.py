"""Model builders: params.yaml's `model` group -> a transformers model."""

from __future__ import annotations

import pytest
import torch

from midilm.models import MODEL_BUILDERS, build_model, count_parameters

CFG = {"family": "gpt2", "context": 32, "n_layer": 2, "n_embd": 16, "n_head": 2, "dropout": 0.1}


def test_gpt2_follows_the_config() -> None:
    model = build_model(CFG, vocab_size=100, pad_id=0, bos_id=1, eos_id=2)
    config = model.config
    assert (config.n_positions, config.n_layer, config.n_embd, config.n_head) == (32, 2, 16, 2)
    assert (config.vocab_size, config.pad_token_id, config.bos_token_id) == (100, 0, 1)
    assert config.eos_token_id == 2 and config.resid_pdrop == 0.1
    assert config._attn_implementation == "sdpa"
    logits = model(input_ids=torch.zeros(3, 32, dtype=torch.long)).logits
    assert logits.shape == (3, 32, 100)


def test_parameters_count_tied_embeddings_once() -> None:
    model = build_model(CFG, 100, 0, 1, 2)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert count_parameters(model) < sum(p.numel() for p in model.state_dict().values())


def test_unknown_family_lists_the_choices() -> None:
    assert "gpt2" in MODEL_BUILDERS
    with pytest.raises(ValueError, match=r"'mamba' is not implemented.*gpt2"):
        build_model({**CFG, "family": "mamba"}, 100, 0, 1, 2)


def test_heads_must_divide_width() -> None:
    with pytest.raises(ValueError, match="n_head"):
        build_model({**CFG, "n_head": 3}, 100, 0, 1, 2)
