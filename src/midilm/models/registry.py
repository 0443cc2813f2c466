"""Family name -> builder, and the resolution of a `models.<key>` entry into one flat config.

A model entry (conf/model/<name>.yaml) names its `family`, the `size` to build and the `sizes`
it knows (smoke, thesis); `resolve_model_cfg` flattens it so builders see plain keys (context,
n_layer, n_embd, ...). A new family is a builder function and a line in MODEL_BUILDERS.
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

# Keys of a model entry that describe the entry rather than the architecture.
ENTRY_KEYS = ("sizes", "size", "train", "generate")


def resolve_model_cfg(entry: Mapping[str, Any]) -> dict[str, Any]:
    """`entry` without sizes/train, with `entry["sizes"][entry["size"]]` merged on top."""
    sizes = dict(entry.get("sizes") or {})
    size = entry.get("size")
    flat = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    if sizes:
        if size not in sizes:
            raise ValueError(
                f"model {entry.get('name')!r}: size {size!r} is not one of {sorted(sizes)}; "
                "set `size` in conf/model/<name>.yaml or the profile"
            )
        flat.update(sizes[size])
        flat["size"] = size
    return flat


def resolve_train_cfg(train: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The global `train` group with the model entry's own `train` overrides on top."""
    return {**dict(train), **dict(entry.get("train") or {})}


def build_model(
    model_cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """Build the model of family `model_cfg["family"]` with random weights.

    `model_cfg` is a resolved entry (see `resolve_model_cfg`); an unresolved one is resolved here.
    """
    if "sizes" in model_cfg:
        model_cfg = resolve_model_cfg(model_cfg)
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
