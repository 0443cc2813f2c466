"""Running any family one chunk at a time: what it carries between calls and how far it reaches.

Attention families (gpt2, mistral, llama) carry a KV cache (`cache=` / `out.cache` in
transformers 5) and read at most `max_position_embeddings` tokens; Mamba carries its conv and
SSM states in the same `cache=` object; RWKV-6 carries its recurrent `state=` / `out.state`.
The two recurrent families have no context limit.
"""

from __future__ import annotations

from typing import Any

import torch

RECURRENT_MODEL_TYPES = frozenset({"mamba", "midilm_rwkv6"})


def is_recurrent(model: torch.nn.Module) -> bool:
    """True for families whose memory is a fixed-size state (Mamba, RWKV-6)."""
    return str(getattr(model.config, "model_type", "")) in RECURRENT_MODEL_TYPES


def model_context(model: torch.nn.Module) -> int | None:
    """How many tokens an attention model attends to (its position table); None if recurrent."""
    if is_recurrent(model):
        return None
    context = getattr(model.config, "max_position_embeddings", None)
    if context is None:
        raise ValueError(
            f"{type(model).__name__}: config has no max_position_embeddings; pass `context`"
        )
    return int(context)


def forward_with_cache(
    model: torch.nn.Module, input_ids: torch.Tensor, cache: Any, seen: int
) -> tuple[torch.Tensor, Any]:
    """Logits [B, T, V] of `input_ids` [B, T] after the `seen` tokens held in `cache` (None at
    the start), and the cache (or state) that now also holds them."""
    if str(model.config.model_type) == "midilm_rwkv6":
        out = model(input_ids=input_ids, state=cache, use_cache=True)
        return out.logits, out.state
    if is_recurrent(model):  # Mamba: no attention mask (it would be read as padding)
        out = model(input_ids=input_ids, cache=cache, use_cache=True)
        return out.logits, out.cache
    batch, length = input_ids.shape
    mask = torch.ones(batch, seen + length, dtype=torch.long, device=input_ids.device)
    out = model(input_ids=input_ids, attention_mask=mask, cache=cache, use_cache=True)
    return out.logits, out.cache


def tensor_nbytes(obj: Any) -> int:
    """Bytes of the distinct tensors inside a cache, a state tuple or any nesting of them."""
    seen: set[int] = set()

    def walk(item: Any) -> int:
        if isinstance(item, torch.Tensor):
            key = item.untyped_storage().data_ptr() if item.numel() else id(item)
            if key in seen:
                return 0
            seen.add(key)
            return item.numel() * item.element_size()
        if id(item) in seen or item is None or isinstance(item, (str, int, float, bool)):
            return 0
        seen.add(id(item))
        if isinstance(item, dict):
            return sum(walk(v) for v in item.values())
        if isinstance(item, (list, tuple, set)):
            return sum(walk(v) for v in item)
        if hasattr(item, "__dict__"):
            return sum(walk(v) for v in vars(item).values())
        return 0

    return walk(obj)
