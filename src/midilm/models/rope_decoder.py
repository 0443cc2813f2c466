"""What Mistral and Llama share: a RoPE/RMSNorm/SwiGLU decoder config from a resolved entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def rope_decoder_kwargs(
    cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> dict[str, Any]:
    """Config kwargs common to MistralConfig and LlamaConfig.

    Entry keys: context (-> max_position_embeddings), n_layer, n_embd, n_head, n_kv_head (GQA;
    default n_head), intermediate_size (default 8/3 n_embd rounded up to 32), rope_theta
    (default 10000), tie_embeddings (default false), dropout (attention dropout).
    """
    n_embd, n_head = int(cfg["n_embd"]), int(cfg["n_head"])
    n_kv_head = int(cfg.get("n_kv_head") or n_head)
    if n_head % n_kv_head:
        raise ValueError(
            f"model {cfg.get('name')!r}: n_head={n_head} is not a multiple of n_kv_head="
            f"{n_kv_head}; fix conf/model/{cfg.get('name', '<name>')}.yaml"
        )
    intermediate = int(cfg.get("intermediate_size") or -(-8 * n_embd // 3 // 32) * 32)
    return {
        "vocab_size": vocab_size,
        "hidden_size": n_embd,
        "intermediate_size": intermediate,
        "num_hidden_layers": int(cfg["n_layer"]),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv_head,
        "max_position_embeddings": int(cfg["context"]),
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(cfg.get("rope_theta", 1e4)),
        },
        "tie_word_embeddings": bool(cfg.get("tie_embeddings", False)),
        "attention_dropout": float(cfg.get("dropout", 0.0)),
        "pad_token_id": pad_id,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
    }
