"""The RWKV-6 WKV recurrence in plain PyTorch: a step-by-step reference and an exact chunked form.

Per head, with a state S [key, value]:
    out_t = r_t (diag(u) k_t^T v_t + S_{t-1})        (u: the `time_faaaa` bonus)
    S_t   = k_t^T v_t + diag(w_t) S_{t-1}            (w_t = exp(-exp(decay_t)), data dependent)

The chunked form computes the same sums in chunks of `chunk` tokens, carrying the state from
chunk to chunk (matmuls). Inside a chunk, pair (i, j < i) decays by exp(A_i - A_{j+1}) with A a
cumulative sum of log decays. When a chunk's decays stay within e^-60 that is one matmul of
r_i exp(A_i) and k_j exp(-A_{j+1}) (10x faster than the loop on CPU); otherwise each pair's
exp(A_i - A_{j+1}) <= 1 is formed directly, so no learned decay can overflow it. Both agree with
the loop to 1e-14 in float64. Tensors are [batch, time, heads, head_size]; states [B, H, N, N].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# A chunk whose decays multiply to at least e^-SAFE_LOG_DECAY uses the one-matmul score form.
SAFE_LOG_DECAY = 60.0


def wkv6_recurrent(
    r: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_w: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs [B, T, H, N] and the final state, one token at a time (the reference)."""
    outputs = []
    decay = log_w.exp()
    for r_t, k_t, v_t, w_t in zip(
        r.unbind(1), k.unbind(1), v.unbind(1), decay.unbind(1), strict=True
    ):
        kv = k_t.unsqueeze(-1) * v_t.unsqueeze(-2)  # [B, H, N, N]
        outputs.append(torch.einsum("bhk,bhkv->bhv", r_t, u.unsqueeze(-1) * kv + state))
        state = kv + w_t.unsqueeze(-1) * state
    return torch.stack(outputs, dim=1), state


def wkv6_chunked(
    r: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_w: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor,
    chunk: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same as `wkv6_recurrent` (up to float rounding), `chunk` tokens at a time."""
    batch, length, heads, size = r.shape
    pad = (-length) % chunk
    # [B, T, H, N] -> [B, H, chunks, chunk, N]; padded steps have k = v = 0 and no decay
    r, k, v, log_w = (
        F.pad(x, (0, 0, 0, 0, 0, pad)).transpose(1, 2).reshape(batch, heads, -1, chunk, size)
        for x in (r, k, v, log_w)
    )
    # A_{i+1}: log decay from the chunk start through i (a triangular matmul, not cumsum, which
    # has no deterministic CUDA kernel under torch.use_deterministic_algorithms)
    through = torch.ones(chunk, chunk, dtype=log_w.dtype, device=log_w.device).tril()
    decay_after = through @ log_w
    decay_before = decay_after - log_w  # A_i: log decay from the chunk start before i

    # inside each chunk: out_i = sum_{j<i} (sum_n r_i k_j exp(A_i - A_{j+1})) v_j + bonus_i v_i
    if float((-decay_after[..., -1, :]).detach().max()) <= SAFE_LOG_DECAY:
        scores = _scores_factored(r, k, decay_before, decay_after)
    else:
        scores = _scores_pairwise(r, k, decay_before, decay_after)
    bonus = (r * u.unsqueeze(1).unsqueeze(1) * k).sum(-1)  # [B, H, C, chunk]
    out = (scores + torch.diag_embed(bonus)) @ v

    # across chunks: each chunk reads the state left by the ones before it
    total = decay_after[..., -1, :]  # [B, H, C, N]
    kv_in = torch.einsum("bhcjk,bhcjv->bhckv", k * (total.unsqueeze(-2) - decay_after).exp(), v)
    starts = []
    for kv_c, total_c in zip(kv_in.unbind(2), total.unbind(2), strict=True):
        starts.append(state)
        state = total_c.exp().unsqueeze(-1) * state + kv_c
    start_states = torch.stack(starts, dim=2)  # [B, H, C, N, N]
    out = out + torch.einsum("bhcik,bhckv->bhciv", r * decay_before.exp(), start_states)

    out = out.reshape(batch, heads, -1, size)[:, :, :length].transpose(1, 2)
    return out, state


def _scores_factored(
    r: torch.Tensor, k: torch.Tensor, decay_before: torch.Tensor, decay_after: torch.Tensor
) -> torch.Tensor:
    """[B, H, C, i, j] as one matmul of r_i exp(A_i) and k_j exp(-A_{j+1}) (strictly j < i).

    Exact while exp(-A) stays finite: the caller checks that a chunk's total log decay is at
    most SAFE_LOG_DECAY, so both factors lie in [e^-60, e^60]."""
    scores = (r * decay_before.exp()) @ (k * (-decay_after).exp()).transpose(-1, -2)
    return scores.tril(-1)


def _scores_pairwise(
    r: torch.Tensor, k: torch.Tensor, decay_before: torch.Tensor, decay_after: torch.Tensor
) -> torch.Tensor:
    """The same scores with each pair's decay exp(A_i - A_{j+1}) <= 1 formed directly (any decay,
    at chunk x more memory)."""
    chunk = r.shape[-2]
    earlier = torch.ones(chunk, chunk, dtype=torch.bool, device=r.device).tril(-1)
    gap = decay_before.unsqueeze(-2) - decay_after.unsqueeze(-3)  # [B, H, C, i, j, N]
    gap = gap.masked_fill(~earlier.unsqueeze(-1), float("-inf"))
    return torch.einsum("bhcin,bhcjn,bhcijn->bhcij", r, k, gap.exp())
