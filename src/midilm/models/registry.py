"""Family name -> builder. A builder reads a flat architecture mapping (`family`, `context`,
n_layer, n_embd, ...: `midilm.specs.ModelSpec.architecture`). A new family is a builder function
and a line in MODEL_BUILDERS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from midilm.models.gpt2 import build_gpt2
from midilm.models.llama import build_llama
from midilm.models.mamba import build_mamba
from midilm.models.mistral import build_mistral
from midilm.models.rwkv6 import build_rwkv6

Builder = Callable[[Mapping[str, Any], int, int, int, int], PreTrainedModel]

MODEL_BUILDERS: dict[str, Builder] = {
    "gpt2": build_gpt2,
    "mistral": build_mistral,
    "llama": build_llama,
    "mamba": build_mamba,
    "rwkv6": build_rwkv6,
}


def build_model(
    model_cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """Build the model of family `model_cfg["family"]` with random weights."""
    family = str(model_cfg.get("family", "")).lower()
    if family not in MODEL_BUILDERS:
        raise ValueError(
            f"model family {family!r} is not implemented; set `family` in conf/model/*.yaml "
            f"to one of {sorted(MODEL_BUILDERS)}"
        )
    if "n_head" in model_cfg and int(model_cfg["n_embd"]) % int(model_cfg["n_head"]):
        raise ValueError(
            f"model n_embd={model_cfg['n_embd']} is not divisible by n_head="
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
