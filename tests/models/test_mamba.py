"""Mamba on CPU: our chunked scan computes transformers' reference recurrence (the anchor)."""

from __future__ import annotations

import pytest
import torch
from transformers.models.mamba import modeling_mamba

from midilm.models import build_model, mamba
from midilm.models.selective_scan import chunked_selective_scan, safe_chunk
from tests.models.families import TINY


def test_the_cpu_scan_is_installed_without_mamba_ssm() -> None:
    assert modeling_mamba.mamba_selective_scan is mamba.cpu_selective_scan


def scan_inputs(length: int, dt_scale: float) -> list[torch.Tensor]:
    """hidden_states, dt, A, B, C, D, z, delta_bias as MambaMixer passes them (A < 0)."""
    g = torch.Generator().manual_seed(length)
    batch, channels, state = 2, 12, 6

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale).requires_grad_()

    a = (-torch.rand(channels, state, generator=g) * 8 - 0.1).requires_grad_()
    return [
        rand(batch, channels, length),
        rand(batch, channels, length, scale=dt_scale),
        a,
        rand(batch, state, length),
        rand(batch, state, length),
        rand(channels),
        rand(batch, channels, length),
        rand(channels),
    ]


def run_scan(scan, inputs: list[torch.Tensor], **kwargs) -> tuple[torch.Tensor, ...]:
    """Outputs, last state and the gradient of a loss on both with respect to every input."""
    out, last = scan(
        *inputs[:7], delta_bias=inputs[7], delta_softplus=True, return_last_state=True, **kwargs
    )
    g = torch.Generator().manual_seed(1)  # a fixed linear loss: gradients carry no extra rounding
    loss = (out * torch.randn(out.shape, generator=g)).sum()
    loss = loss + (last * torch.randn(last.shape, generator=g)).sum()
    return (out.detach(), last.detach(), *torch.autograd.grad(loss, inputs))


@pytest.mark.parametrize(
    ("length", "chunk", "dt_scale"),
    [(64, 32, 1.0), (70, 32, 1.0), (45, 16, 0.5), (33, 8, 20.0), (5, 32, 1.0)],
)  # whole chunks, a padded last chunk, a short one; large dt forces smaller (safe) chunks
def test_chunked_scan_matches_the_reference_loop(length: int, chunk: int, dt_scale: float) -> None:
    inputs = scan_inputs(length, dt_scale)
    reference = run_scan(mamba._REFERENCE_SCAN, inputs)
    ours = run_scan(chunked_selective_scan, inputs, chunk=chunk)
    names = ("out", "last state", "d hidden", "d dt", "d A", "d B", "d C", "d D", "d z", "d bias")
    for name, a, b in zip(names, ours, reference, strict=True):
        scale = float(b.abs().max())  # float32 rounding (measured <= 2e-6), relative to size
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * scale, msg=name)


def test_safe_chunk_halves_until_the_factored_decays_stay_finite() -> None:
    a = -torch.full((3, 4), 10.0)
    slow = torch.full((1, 3, 64), 0.1)  # |A| dt = 1 per step: 32 steps reach 32 <= 60
    assert safe_chunk(slow, a, 32) == 32
    fast = slow.clone()
    fast[0, 1, 40] = 5.0  # one step of |A| dt = 50: only chunks of 8 stay within 60
    assert safe_chunk(fast, a, 32) == 8
    assert safe_chunk(torch.full((1, 3, 8), 100.0), a, 32) == 1  # the plain recurrence


def test_the_model_trains_through_the_chunked_scan_as_through_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    model = build_model(TINY["mamba"], 40, 0, 1, 2).train()
    inputs = torch.randint(3, 40, (2, 30), generator=torch.Generator().manual_seed(0))

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logits = model(input_ids=inputs).logits
        logits.square().mean().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    ours, our_grads = run()
    monkeypatch.setattr(modeling_mamba, "mamba_selective_scan", mamba._REFERENCE_SCAN)
    reference, reference_grads = run()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    for a, b in zip(our_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
