"""Every family trains, saves and loads alike (what the train and generate stages rely on)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from midilm.models import build_model
from midilm.models.io import load_model
from tests.models.families import TINY

VOCAB = 40


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(3, VOCAB, (4, 33), generator=torch.Generator().manual_seed(0))
    return tokens[:, :-1], tokens[:, 1:]


def _perturbed(family: str) -> torch.nn.Module:
    """A tiny model with every weight moved off its initialisation (zero-init layers too)."""
    torch.manual_seed(0)
    model = build_model(TINY[family], VOCAB, 0, 1, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("family", sorted(TINY))
def test_training_steps_lower_the_loss_on_a_repeated_batch(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(TINY[family], VOCAB, 0, 1, 2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inputs, targets = _batch()
    losses = []
    for _ in range(8):  # the train loop's lm_loss: model(input_ids=...).logits, cross entropy
        logits = model(input_ids=inputs).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert logits.shape == (4, 32, VOCAB)
    assert losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize("family", sorted(TINY))
def test_save_and_load_give_the_same_logits(family: str, tmp_path: Path) -> None:
    model = _perturbed(family)
    weights = tmp_path / family / "weights"
    model.save_pretrained(weights)
    loaded = load_model(weights)
    assert type(loaded) is type(model)
    inputs, _ = _batch()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=inputs).logits, model(input_ids=inputs).logits)


def test_a_missing_weight_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    weights = tmp_path / "models" / "mamba" / "weights"
    build_model(TINY["mamba"], VOCAB, 0, 1, 2).save_pretrained(weights)
    (weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors.*dvc repro train@mamba"):
        load_model(weights)


@pytest.mark.parametrize("family", ["mamba", "rwkv6"])
def test_recurrent_families_continue_from_their_state(family: str) -> None:
    """Two calls carrying the cache/state equal one call over the whole sequence."""
    from midilm.models.incremental import forward_with_cache

    model = _perturbed(family)
    inputs, _ = _batch()
    with torch.no_grad():
        whole = model(input_ids=inputs[:1]).logits
        first, cache = forward_with_cache(model, inputs[:1, :20], None, 0)
        for t in range(20, 32):
            logits, cache = forward_with_cache(model, inputs[:1, t : t + 1], cache, t)
            torch.testing.assert_close(logits[0, -1], whole[0, t], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(first, whole[:, :20])
