"""Model builders: an architecture (a model spec's, or a tiny one) -> a transformers model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from midilm.models import MODEL_BUILDERS, build_model, count_parameters
from midilm.specs import ModelSpec
from tests.models.families import CONF_KEYS, TINY

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
    assert set(MODEL_BUILDERS) == {"gpt2", "mistral", "llama", "mamba", "rwkv6"}
    with pytest.raises(ValueError, match=r"'hyena' is not implemented.*gpt2.*rwkv6"):
        build_model({**CFG, "family": "hyena"}, 100, 0, 1, 2)


def test_heads_must_divide_width() -> None:
    with pytest.raises(ValueError, match="n_head"):
        build_model({**CFG, "n_head": 3}, 100, 0, 1, 2)
    with pytest.raises(ValueError, match="n_kv_head"):
        build_model({**TINY["llama"], "n_kv_head": 3}, 100, 0, 1, 2)
    with pytest.raises(ValueError, match="head_size"):
        build_model({**TINY["rwkv6"], "head_size": 12}, 100, 0, 1, 2)


def test_mistral_and_llama_follow_the_config() -> None:
    for family in ("mistral", "llama"):
        config = build_model(TINY[family], 100, 0, 1, 2).config
        assert (config.hidden_size, config.num_hidden_layers) == (32, 2)
        assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
        assert (config.intermediate_size, config.max_position_embeddings) == (64, 32)
        assert config.rope_parameters["rope_theta"] == 10000.0
        assert config._attn_implementation == "sdpa" and not config.tie_word_embeddings
    assert build_model(TINY["mistral"], 100, 0, 1, 2).config.sliding_window == 8


def test_mamba_and_rwkv6_follow_the_config() -> None:
    mamba = build_model(TINY["mamba"], 100, 0, 1, 2).config
    assert (mamba.hidden_size, mamba.num_hidden_layers, mamba.state_size) == (32, 2, 8)
    assert (mamba.conv_kernel, mamba.expand, mamba.intermediate_size) == (4, 2, 64)
    rwkv = build_model(TINY["rwkv6"], 100, 0, 1, 2).config
    assert (rwkv.model_type, rwkv.num_heads, rwkv.context_length) == ("midilm_rwkv6", 2, 32)
    assert (rwkv.mix_lora_rank, rwkv.decay_lora_rank, rwkv.intermediate_size) == (4, 8, 96)


@pytest.mark.parametrize("key", CONF_KEYS)
def test_every_conf_model_builds_at_smoke_size(
    key: str, conf_spec: Callable[..., ModelSpec]
) -> None:
    spec = conf_spec(key)
    assert (spec.key, spec.size, spec.tokenizer) == (key, "smoke", "remi")
    assert spec.family in MODEL_BUILDERS
    model = build_model(spec.architecture, vocab_size=512, pad_id=0, bos_id=1, eos_id=2)
    assert 250_000 < count_parameters(model) < 1_000_000  # smoke: CPU-sized
    context = spec.context
    assert model(input_ids=torch.zeros(1, context, dtype=torch.long)).logits.shape == (
        1,
        context,
        512,
    )


@pytest.mark.parametrize("key", CONF_KEYS)
def test_thesis_sizes_are_100m_class(key: str, conf_spec: Callable[..., ModelSpec]) -> None:
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = build_model(conf_spec(key, "thesis").architecture, 2048, 0, 1, 2)
    assert 50e6 < count_parameters(model) < 150e6


def test_rwkv6_thesis_is_seed_001s(conf_spec: Callable[..., ModelSpec]) -> None:
    spec = conf_spec("rwkv6", "thesis")
    with torch.device("meta"):
        config = build_model(spec.architecture, 2048, 0, 1, 2).config
    assert (config.num_hidden_layers, config.hidden_size, config.head_size) == (20, 512, 64)
    assert config.context_length == 512
    train = spec.train
    assert (train.lr, train.min_lr, train.warmup_steps) == (6e-4, 6e-5, 10)
    assert (train.betas, train.eps, train.weight_decay) == ((0.9, 0.99), 1e-8, 0.001)
