"""Tiny configs of every family (milliseconds per forward) and the conf/model keys."""

from __future__ import annotations

from typing import Any

# Tiny versions of each family: a forward/backward takes milliseconds.
TINY: dict[str, dict[str, Any]] = {
    "gpt2": {"family": "gpt2", "context": 32, "n_layer": 2, "n_embd": 32, "n_head": 2},
    "mistral": {"family": "mistral", "context": 32, "n_layer": 2, "n_embd": 32, "n_head": 4,
                "n_kv_head": 2, "intermediate_size": 64, "sliding_window": 8},
    "llama": {"family": "llama", "context": 32, "n_layer": 2, "n_embd": 32, "n_head": 4,
              "n_kv_head": 2, "intermediate_size": 64},
    "mamba": {"family": "mamba", "context": 32, "n_layer": 2, "n_embd": 32, "d_state": 8},
    "rwkv6": {"family": "rwkv6", "context": 32, "n_layer": 2, "n_embd": 32, "head_size": 16,
              "mix_lora_rank": 4, "decay_lora_rank": 8, "chunk_size": 8},
}  # fmt: skip

CONF_KEYS = ("gpt", "mistral", "llama", "mamba", "rwkv6")
