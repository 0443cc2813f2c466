"""Mistral: RoPE, RMSNorm, SwiGLU, grouped-query attention and a sliding attention window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import MistralConfig, MistralForCausalLM, PreTrainedModel

from midilm.models.rope_decoder import rope_decoder_kwargs


def build_mistral(
    cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """A fresh MistralForCausalLM; `sliding_window` null means full attention."""
    window = cfg.get("sliding_window")
    config = MistralConfig(
        **rope_decoder_kwargs(cfg, vocab_size, pad_id, bos_id, eos_id),
        sliding_window=int(window) if window else None,
    )
    return MistralForCausalLM._from_config(config, attn_implementation="sdpa")
