"""Mamba's selective scan in chunks: transformers' reference recurrence in T/L steps, not T.

Per batch row b, channel d and state n, with dt already biased (and softplus'd):
    h_t = exp(A dt_t) h_{t-1} + dt_t B_t x_t          y_t = sum_n C_t h_t + D x_t, times silu(z_t)
A does not change with time, so the decay from step j to step i >= j is exp(A (S_i - S_j)) with
S the running sum of dt. In chunks of `chunk` steps (S counted from the chunk's start):
  - inside a chunk, h_i = exp(A S_i) (h_start + sum_{j<=i} exp(-A S_j) dt_j B_j x_j): a running
    sum along the chunk, for every chunk at once (a few elementwise ops over [B, D, T, N]);
  - across chunks, the state h_start left by the chunks before (T/L small steps).
The factored form needs exp(-A S) finite: the chunk halves until every chunk's largest
|A| * sum(dt) is at most SAFE_LOG_DECAY (chunk 1 is the recurrence itself). Why: the reference
loop runs ~15 tiny ops per time step, each an OpenMP region; on a CPU shared with other work every
region waits for a descheduled thread, and a smoke step crawled at a minute (docs/decisions.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from midilm.models.wkv6 import SAFE_LOG_DECAY

# Steps per chunk; the fastest on 2 CPU cores at smoke size (benchmarks/bench_shared_cpu.py).
DEFAULT_CHUNK = 32


def chunked_selective_scan(
    hidden_states: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """transformers' `mamba_selective_scan` (recurrent path), `chunk` steps at a time.

    hidden_states, dt, z: [batch, channels, time]; A: [channels, state]; B, C: [batch, state,
    time]; D: [channels]. Returns [batch, channels, time] (and the last state [batch, channels,
    state] in float32)."""
    batch, channels, length = hidden_states.shape
    input_dtype = hidden_states.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    dt, A = dt.float(), A.float()
    chunk = safe_chunk(dt, A, max(1, min(chunk, length)))
    pad = (-length) % chunk  # padded steps: dt = 0 (no decay) and x = 0 (no input)
    # [B, D, T] -> [B, D, chunks, chunk]; [B, N, T] -> [B, 1, chunks, chunk, N]
    dt_c, u = (
        F.pad(t, (0, pad)).reshape(batch, channels, -1, chunk)
        for t in (dt, dt * hidden_states.float())
    )
    b_c, c_c = (
        F.pad(t.float(), (0, pad)).transpose(1, 2).reshape(batch, 1, -1, chunk, t.shape[1])
        for t in (B, C)
    )
    elapsed = dt_c.cumsum(-1).unsqueeze(-1)  # S_i, through step i: [B, D, chunks, chunk, 1]
    log_decay = A[:, None, None, :] * elapsed  # A S_i <= 0: [B, D, chunks, chunk, N]
    decay = log_decay.exp()
    # inside a chunk, from a zero state: h_i = exp(A S_i) sum_{j<=i} exp(-A S_j) B_j u_j
    if chunk == 1:  # one step per chunk: the decays cancel, exp(A S_i - A S_i) = 1
        inner = b_c * u.unsqueeze(-1)
    else:
        written = b_c * (-log_decay).exp() * u.unsqueeze(-1)  # <= |B_j u_j| e^SAFE_LOG_DECAY
        inner = decay * written.cumsum(-2)  # [B, D, chunks, chunk, N]
    chunk_decay = decay[..., -1, :]  # exp(A S_end): [B, D, chunks, N]
    added = inner[..., -1, :]  # what chunk c adds to the state at its end

    # across chunks: each chunk starts from the state the chunks before it left
    state = hidden_states.new_zeros(batch, channels, A.shape[-1], dtype=torch.float32)
    starts = []
    for decay_c, added_c in zip(chunk_decay.unbind(2), added.unbind(2), strict=True):
        starts.append(state)
        state = decay_c * state + added_c
    start_states = torch.stack(starts, dim=2).unsqueeze(-2)  # [B, D, chunks, 1, N]
    states = decay * start_states + inner  # h_i: [B, D, chunks, chunk, N]
    out = (states * c_c).sum(-1)  # y_i = sum_n C_i h_i: [B, D, chunks, chunk]

    scan_output = out.reshape(batch, channels, -1)[..., :length].to(input_dtype)
    if D is not None:
        scan_output = scan_output + hidden_states * D[None, :, None]
    if z is not None:
        scan_output = scan_output * F.silu(z)
    return (scan_output, state) if return_last_state else scan_output


def safe_chunk(dt: torch.Tensor, A: torch.Tensor, chunk: int) -> int:
    """The largest chunk <= `chunk` (halving) whose every chunk keeps |A| * sum(dt) within
    SAFE_LOG_DECAY, so exp(-A S) cannot overflow."""
    fastest = (-A).amax(-1).detach()[None, :, None]  # [1, D, 1]: the fastest decay per channel
    dt = dt.detach()
    while chunk > 1:
        pad = (-dt.shape[-1]) % chunk
        sums = F.pad(dt, (0, pad)).unflatten(-1, (-1, chunk)).sum(-1)
        if float((fastest * sums).max()) <= SAFE_LOG_DECAY:
            return chunk
        chunk //= 2
    return 1
