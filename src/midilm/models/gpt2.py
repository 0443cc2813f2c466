"""GPT-2 style decoder: learned positions, LayerNorm, GELU MLP (transformers' GPT2LMHeadModel)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedModel


def build_gpt2(
    cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """A fresh GPT2LMHeadModel whose context (`n_positions`) is `cfg["context"]`."""
    dropout = float(cfg.get("dropout", 0.0))
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=int(cfg["context"]),
        n_layer=int(cfg["n_layer"]),
        n_embd=int(cfg["n_embd"]),
        n_head=int(cfg["n_head"]),
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
