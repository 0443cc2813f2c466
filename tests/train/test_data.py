"""Training windows over a real packed stream, and the learning-rate schedule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from midilm.common.paths import Layout
from midilm.models import build_model
from midilm.train.data import load_stream, random_batch, sequential_batches
from midilm.train.optim import lr_at, make_optimizer
from tests.conftest import train_spec_for


def test_random_batch_targets_are_inputs_shifted(packed_corpus: Layout) -> None:
    tokens = load_stream(packed_corpus.packed_dir("remi") / "train", context=64)
    inputs, targets = random_batch(tokens, 64, 8, seed=1, step=0)
    assert inputs.shape == targets.shape == (8, 64)
    assert inputs.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_random_batch_depends_only_on_seed_and_step(packed_corpus: Layout) -> None:
    tokens = load_stream(packed_corpus.packed_dir("remi") / "train", context=64)
    a, _ = random_batch(tokens, 64, 8, seed=1, step=3)
    b, _ = random_batch(tokens, 64, 8, seed=1, step=3)
    c, _ = random_batch(tokens, 64, 8, seed=1, step=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sequential_batches_are_consecutive_windows(packed_corpus: Layout) -> None:
    tokens = load_stream(packed_corpus.packed_dir("remi") / "valid", context=64)
    batches = sequential_batches(tokens, 64, 4, max_batches=2)
    inputs = torch.cat([x for x, _ in batches])
    assert inputs.shape == (8, 64)
    flat = np.asarray(tokens[: 8 * 64], dtype=np.int64)
    assert np.array_equal(inputs.reshape(-1).numpy(), flat)


def test_too_short_stream_names_the_fix(packed_corpus: Layout) -> None:
    with pytest.raises(ValueError, match=r"valid\.bin.*model\.context"):
        load_stream(packed_corpus.packed_dir("remi") / "valid", context=10**7)


def test_lr_warms_up_then_decays_to_min_lr() -> None:
    cfg = train_spec_for(lr=1e-3, min_lr=1e-4, warmup_steps=10, steps=100, schedule="cosine")
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-4, rel=0.01)
    linear = dataclasses.replace(cfg, schedule="linear")
    assert lr_at(55, linear) == pytest.approx(1e-3 - 0.9e-3 * 45 / 90)
    assert lr_at(55, dataclasses.replace(cfg, schedule="constant")) == 1e-3
    with pytest.raises(ValueError, match=r"train\.schedule"):
        lr_at(50, dataclasses.replace(cfg, schedule="step"))


def test_no_weight_decay_on_biases_and_layernorm() -> None:
    cfg = {"family": "gpt2", "context": 16, "n_layer": 1, "n_embd": 8, "n_head": 2}
    model = build_model(cfg, 50, 0, 1, 2)
    opt = make_optimizer(model, train_spec_for(lr=1e-3, weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 1 for p in no_decay["params"])
    ln = model.transformer.ln_f
    assert any(p is ln.weight for p in no_decay["params"])
