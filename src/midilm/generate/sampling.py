"""Autoregressive sampling with temperature, top-k and top-p, over each family's cache or state.

Sampling draws on the CPU from a caller's `torch.Generator`, so a seed gives the same tokens
whatever device ran the model. Attention models (gpt2, mistral, llama) decode over a KV cache;
when it fills the model's context, the last half of the sequence is re-encoded and generation
goes on (chunked continuation). Recurrent models (mamba, rwkv6) carry a fixed-size state and
have no context limit (midilm.models.incremental).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from midilm.models.incremental import forward_with_cache, is_recurrent, model_context


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Logits [vocab] with every id outside the top-k and the top-p nucleus set to -inf."""
    logits = logits.clone()
    if top_k and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the more likely ids
        remove = before >= top_p  # the most likely id always stays
        logits[order[remove]] = float("-inf")
    return logits


def sample_next(
    logits: torch.Tensor,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """One id drawn from `logits` [vocab]; temperature 0 means greedy."""
    logits = logits.detach().float().cpu()
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate_ids(
    model: torch.nn.Module,
    prompt: Sequence[int],
    max_new_tokens: int,
    eos_id: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    context: int | None = None,
) -> list[int]:
    """New ids after `prompt` (the EOS included when drawn), at most `max_new_tokens`.

    `context` (default: the model's position table) bounds what an attention model reads;
    recurrent models read the whole prompt and ignore it.
    """
    if not prompt:
        raise ValueError("generate_ids needs a non-empty prompt (at least BOS)")
    window = None if is_recurrent(model) else (context or model_context(model))
    device = next(model.parameters()).device
    sequence, new = [int(i) for i in prompt], []
    logits, cache, cached = _encode(
        model, sequence if window is None else sequence[-window:], device
    )
    while len(new) < max_new_tokens:
        token = sample_next(logits, generator, temperature, top_k, top_p)
        sequence.append(token)
        new.append(token)
        if token == eos_id:
            break
        if window is not None and cached >= window:  # cache full: re-encode the last half
            logits, cache, cached = _encode(model, sequence[-max(window // 2, 1) :], device)
            continue
        step = torch.tensor([[token]], device=device)
        out, cache = forward_with_cache(model, step, cache, cached)
        logits, cached = out[0, -1], cached + 1
    return new


def _encode(
    model: torch.nn.Module, ids: Sequence[int], device: torch.device
) -> tuple[torch.Tensor, object, int]:
    """Logits after `ids` from scratch, the fresh cache (or state), and how many it holds."""
    logits, cache = forward_with_cache(model, torch.tensor([list(ids)], device=device), None, 0)
    return logits[0, -1], cache, len(ids)
