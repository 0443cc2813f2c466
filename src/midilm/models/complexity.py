"""Inference cost against context length: decode time per token and the memory the model carries.

Seed 001 contrasts RWKV's O(T d) time and O(d) state with a transformer's O(T^2 d) time and
O(T d) KV cache. For each model and context L this builds the model (random weights; an attention
model gets max_position_embeddings > L), fills a real cache or state with L tokens, then times
one-token decode steps, each from a copy of that same L-token cache (median of `repeats` after
`warmup`). The cache size is the bytes of the tensors it really holds.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from midilm.models.incremental import forward_with_cache, tensor_nbytes
from midilm.models.registry import build_model, count_parameters
from midilm.models.runtime import peak_memory_mb, resolve_device


@torch.no_grad()
def measure_complexity(
    architectures: Mapping[str, Mapping[str, Any]],
    contexts: Sequence[int],
    vocab_size: int,
    device: str | torch.device = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    prefill_chunk: int = 1024,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (model, context): family, context, ms_per_token, cache_bytes, device.

    `architectures` maps a model key to what its builder reads (`ModelSpec.architecture`, plus
    an optional `size` label for the rows). Peak memory is CUDA's peak allocation for that row, or on CPU the process's peak RSS so far.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    rows = []
    for key, architecture in architectures.items():
        cfg = dict(architecture)
        cfg["context"] = max(int(cfg["context"]), max(contexts) + 1)
        torch.manual_seed(seed)
        model = build_model(cfg, vocab_size, 0, 1, 2).to(device).eval()
        generator = torch.Generator().manual_seed(seed)
        for length in contexts:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            ids = torch.randint(3, vocab_size, (1, length + 1), generator=generator).to(device)
            cache = prefill(model, ids[:, :length], prefill_chunk)
            times = [
                _timed_step(model, ids[:, length:], copy.deepcopy(cache), length, device)
                for _ in range(warmup + repeats)
            ][warmup:]
            rows.append(
                {
                    "model": key,
                    "family": str(cfg["family"]),
                    "size": cfg.get("size"),
                    "params": count_parameters(model),
                    "context": int(length),
                    "ms_per_token": 1000 * statistics.median(times),
                    "cache_bytes": tensor_nbytes(cache),
                    "peak_memory_mb": peak_memory_mb(device),
                    "device": str(device),
                    "repeats": repeats,
                }
            )
            del cache
    return rows


def prefill(model: torch.nn.Module, ids: torch.Tensor, chunk: int) -> Any:
    """The cache (or state) after `ids` [1, L], fed `chunk` tokens at a time.

    Mamba gets the whole sequence at once: transformers' Mamba restarts its SSM state at zero on
    every multi-token call (only one-token steps continue a cache)."""
    if str(model.config.model_type) == "mamba":
        chunk = ids.shape[1]
    cache, seen = None, 0
    for start in range(0, ids.shape[1], chunk):
        _, cache = forward_with_cache(model, ids[:, start : start + chunk], cache, seen)
        seen = min(start + chunk, ids.shape[1])
    return cache


def _timed_step(
    model: torch.nn.Module, token: torch.Tensor, cache: Any, seen: int, device: torch.device
) -> float:
    _sync(device)
    start = time.perf_counter()
    forward_with_cache(model, token, cache, seen)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
