"""Family name -> builder. A new family (mistral, llama, mamba, rwkv6) is a function and a line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from midilm.models.gpt2 import build_gpt2

Builder = Callable[[Mapping[str, Any], int, int, int, int], PreTrainedModel]

MODEL_BUILDERS: dict[str, Builder] = {
    "gpt2": build_gpt2,
}


def build_model(
    model_cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """Build the model of family `model_cfg["family"]` (conf/model/*.yaml) with random weights."""
    family = str(model_cfg.get("family", "")).lower()
    if family not in MODEL_BUILDERS:
        raise ValueError(
            f"model family {family!r} is not implemented; set `model.family` in conf/model/*.yaml "
            f"to one of {sorted(MODEL_BUILDERS)}"
        )
    if int(model_cfg["n_embd"]) % int(model_cfg["n_head"]):
        raise ValueError(
            f"model.n_embd={model_cfg['n_embd']} is not divisible by model.n_head="
            f"{model_cfg['n_head']}; fix conf/model/*.yaml"
        )
    return MODEL_BUILDERS[family](model_cfg, vocab_size, pad_id, bos_id, eos_id)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    seen: dict[int, int] = {}
    for p in model.parameters():
        if p.requires_grad:
            seen[id(p)] = p.numel()
    return sum(seen.values())
