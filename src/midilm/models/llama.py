"""Llama: RoPE, RMSNorm, SwiGLU and grouped-query attention (full causal attention)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from midilm.models.rope_decoder import rope_decoder_kwargs


def build_llama(
    cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """A fresh LlamaForCausalLM."""
    config = LlamaConfig(**rope_decoder_kwargs(cfg, vocab_size, pad_id, bos_id, eos_id))
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
