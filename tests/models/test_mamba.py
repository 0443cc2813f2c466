"""Mamba on CPU: our scan is transformers' reference loop without its per-step tensor copies."""

from __future__ import annotations

import pytest
import torch
from transformers.models.mamba import modeling_mamba

from midilm.models import build_model, mamba
from tests.models.families import TINY


def test_the_cpu_scan_is_installed_without_mamba_ssm() -> None:
    assert modeling_mamba.mamba_selective_scan is mamba.sequential_selective_scan


def test_the_cpu_scan_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert torch.equal(ours, reference)  # same operations in the same order
    for a, b in zip(our_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)  # sums may reduce in another order
