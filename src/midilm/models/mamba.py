"""Mamba (selective state space): transformers' MambaForCausalLM.

With `mamba_ssm` / `causal_conv1d` installed (a GPU) transformers runs their CUDA kernels. Without
them it falls back to a PyTorch loop over time steps: ~15 tiny ops per step, each an OpenMP
region, whose backward also copies the whole [B, D, T, N] state tensor once per step. On a CPU
shared with other work every region waits for a descheduled thread, and a smoke training step
crawled at a minute. `install_cpu_scan` swaps that fallback, and only that, for
`midilm.models.selective_scan.chunked_selective_scan`: the same recurrence in chunks of 32 steps
(a few large ops per chunk; outputs and gradients equal to the reference loop's up to float
rounding, tests/models/test_mamba.py; speed in benchmarks/bench_shared_cpu.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import torch
from transformers import MambaConfig, MambaForCausalLM, PreTrainedModel
from transformers.models.mamba import modeling_mamba

from midilm.models.selective_scan import chunked_selective_scan

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
    """Use `cpu_selective_scan` when mamba_ssm is absent; True when installed."""
    if importlib.util.find_spec("mamba_ssm") is not None:
        return False
    modeling_mamba.mamba_selective_scan = cpu_selective_scan
    return True


def cpu_selective_scan(
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
    """transformers' `mamba_selective_scan` signature; its recurrent loop runs chunked."""
    if use_mambapy or torch.compiler.is_compiling():  # the other fallbacks stay theirs
        return _REFERENCE_SCAN(
            hidden_states, dt, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
            use_mambapy=use_mambapy, use_associative_scan=use_associative_scan, **kwargs,
        )  # fmt: skip
    return chunked_selective_scan(
        hidden_states, dt, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
    )


install_cpu_scan()
