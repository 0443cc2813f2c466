"""RWKV-6: the chunked WKV is the recurrence, and the model is BlinkDL's (his `rwkv` package)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from midilm.models import build_model, wkv6
from midilm.models.rwkv6 import export_rwkv_pth
from midilm.models.wkv6 import wkv6_chunked, wkv6_recurrent
from tests.models.families import TINY


def _wkv_inputs(decay_scale: float, length: int = 45) -> list[torch.Tensor]:
    """r, k, v, log decays, bonus, initial state in float64 (batch 2, 3 heads of 8)."""
    g = torch.Generator().manual_seed(0)
    shape = (2, length, 3, 8)
    r, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    log_w = -torch.exp(decay_scale * torch.randn(shape, generator=g, dtype=torch.float64) - 1)
    u = torch.randn(3, 8, generator=g, dtype=torch.float64)
    state = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    return [x.requires_grad_() for x in (r, k, v, log_w, u, state)]


@pytest.mark.parametrize(
    ("decay_scale", "path"), [(0.5, "_scores_factored"), (3.0, "_scores_pairwise")]
)
def test_chunked_wkv_is_the_recurrence(
    decay_scale: float, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mild decays take the one-matmul path, strong ones (> e^-60 per chunk) the pairwise one."""
    calls: list[str] = []
    scores = getattr(wkv6, path)
    monkeypatch.setattr(wkv6, path, lambda *a: calls.append(path) or scores(*a))
    inputs = _wkv_inputs(decay_scale)
    out, state = wkv6_recurrent(*inputs)
    grads = torch.autograd.grad(out.square().sum() + state.sum(), inputs)
    for chunk in (16, 7):  # 45 tokens: a ragged last chunk
        out_c, state_c = wkv6_chunked(*inputs, chunk=chunk)
        assert calls.pop() == path
        torch.testing.assert_close(out_c, out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(state_c, state, rtol=1e-10, atol=1e-10)
        grads_c = torch.autograd.grad(out_c.square().sum() + state_c.sum(), inputs)
        for g_c, g in zip(grads_c, grads, strict=True):
            torch.testing.assert_close(g_c, g, rtol=1e-9, atol=1e-9)


def _random_rwkv() -> torch.nn.Module:
    """A tiny RWKV-6 with every weight random (its zero-initialised layers too)."""
    torch.manual_seed(0)
    model = build_model({**TINY["rwkv6"], "n_embd": 64, "head_size": 32}, 50, 0, 1, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def test_export_runs_in_blinkdls_rwkv_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RWKV_JIT_ON", "0")  # TorchScript off: plain PyTorch on the CPU
    monkeypatch.setenv("RWKV_CUDA_ON", "0")
    rwkv_model = importlib.import_module("rwkv.model")
    model = _random_rwkv()
    path = export_rwkv_pth(model, tmp_path / "piano")
    assert path.name == "piano.pth"
    theirs = rwkv_model.RWKV(model=str(tmp_path / "piano"), strategy="cpu fp32", verbose=False)
    assert theirs.version == 6.0 and theirs.args.n_head == 2 and theirs.args.n_layer == 2

    tokens = torch.randint(3, 50, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.no_grad():
        ours = model(input_ids=torch.tensor([tokens]), use_cache=True)
    logits, _ = theirs.forward(tokens, None, full_output=True)  # their sequence mode
    torch.testing.assert_close(ours.logits[0], logits, atol=1e-4, rtol=1e-4)
    state = None
    for t, token in enumerate(tokens):  # their recurrent mode, token by token
        step, state = theirs.forward([token], state)
        torch.testing.assert_close(ours.logits[0, t], step, atol=1e-4, rtol=1e-4)
    for mine, his in zip(ours.state, state, strict=True):  # same state layout, batch axis added
        torch.testing.assert_close(mine[0], his, atol=1e-4, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    model = _random_rwkv().train()
    inputs = torch.randint(3, 50, (2, 20), generator=torch.Generator().manual_seed(2))

    def grads() -> list[torch.Tensor]:
        model.zero_grad()
        model(input_ids=inputs).logits.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert all(block.gradient_checkpointing for block in model.blocks)
    for a, b in zip(grads(), plain, strict=True):
        torch.testing.assert_close(a, b)


def test_padding_is_refused() -> None:
    model = _random_rwkv()
    with pytest.raises(ValueError, match="padding"):
        model(
            input_ids=torch.ones(1, 4, dtype=torch.long),
            attention_mask=torch.tensor([[0, 1, 1, 1]]),
        )
