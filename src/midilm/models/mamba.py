"""Mamba (selective state space): transformers' MambaForCausalLM.

With `mamba_ssm` / `causal_conv1d` installed (a GPU) transformers runs their CUDA kernels. Without
them it falls back to a PyTorch loop over time whose `states[:, :, t]` indexing makes the
backward pass copy the whole [B, D, T, N] tensor once per step (about 60 s per smoke training
step on one core). `install_cpu_scan` swaps that fallback, and only that, for the same loop over
time steps that forms each step's [B, D, N] decay and input on the fly: the same operations
in the same order (identical logits, gradients equal to float rounding; tests/models), about
0.1 s per layer and smoke step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from transformers import MambaConfig, MambaForCausalLM, PreTrainedModel
from transformers.models.mamba import modeling_mamba

_REFERENCE_SCAN = modeling_mamba.mamba_selective_scan


def build_mamba(
    cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> PreTrainedModel:
    """A fresh MambaForCausalLM: n_layer, n_embd, d_state, d_conv, expand (tied embeddings)."""
    config = MambaConfig(
        vocab_size=vocab_size,
        hidden_size=int(cfg["n_embd"]),
        num_hidden_layers=int(cfg["n_layer"]),
        state_size=int(cfg.get("d_state", 16)),
        conv_kernel=int(cfg.get("d_conv", 4)),
        expand=int(cfg.get("expand", 2)),
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    return MambaForCausalLM(config)


def install_cpu_scan() -> bool:
    """Use `sequential_selective_scan` when mamba_ssm is absent; True when installed."""
    if importlib.util.find_spec("mamba_ssm") is not None:
        return False
    modeling_mamba.mamba_selective_scan = sequential_selective_scan
    return True


def sequential_selective_scan(
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
    use_mambapy: bool = False,
    use_associative_scan: bool = False,
    **kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """transformers' `mamba_selective_scan` reference loop, one unbound time step at a time."""
    if use_mambapy or torch.compiler.is_compiling():  # the other fallbacks stay theirs
        return _REFERENCE_SCAN(
            hidden_states, dt, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
            use_mambapy=use_mambapy, use_associative_scan=use_associative_scan, **kwargs,
        )  # fmt: skip
    batch_size, intermediate_size, _ = hidden_states.shape
    input_dtype = hidden_states.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    # one time step at a time: each step's [batch, channel, state] tensors stay in cache instead
    # of materialising (and differentiating) [batch, channel, time, state] ones
    steps = zip(
        dt.permute(2, 0, 1).unsqueeze(-1).unbind(0),  # [batch, channel, 1]
        hidden_states.permute(2, 0, 1).unsqueeze(-1).float().unbind(0),
        B.permute(2, 0, 1).float().unbind(0),  # [batch, state]
        C.permute(2, 0, 1).unbind(0),
        strict=True,
    )
    ssm_state = torch.zeros(
        batch_size, intermediate_size, A.shape[-1], dtype=input_dtype, device=hidden_states.device
    )
    outputs = []
    for dt_t, x_t, b_t, c_t in steps:
        ssm_state = torch.exp(A * dt_t) * ssm_state + (dt_t * b_t[:, None, :]) * x_t
        outputs.append(torch.matmul(ssm_state.to(input_dtype), c_t.unsqueeze(-1))[:, :, 0])
    scan_output = torch.stack(outputs, dim=-1)
    if D is not None:
        scan_output = scan_output + hidden_states * D[None, :, None]
    if z is not None:
        scan_output = scan_output * F.silu(z)
    return (scan_output, ssm_state) if return_last_state else scan_output


install_cpu_scan()
