"""The training engines in one process on the tiny GPT: gradient checkpointing, bf16 autocast,
DeepSpeed ZeRO-2 and torch.compile against the plain fp32 run."""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.train.stage import run_train
from tests.train.launching import untracked

STEPS = 20


def _weights(layout: Layout) -> dict[str, torch.Tensor]:
    return load_file(str(layout.weights_dir("tiny") / "model.safetensors"))


def _losses(layout: Layout) -> list[float]:
    with open(layout.model_dir("tiny") / "train_log.csv", newline="") as handle:
        return [float(r["train_loss"]) for r in csv.DictReader(handle)]


def _run(
    tiny: Callable[..., dict[str, Any]], layout: Layout, **train: Any
) -> tuple[Layout, dict[str, Any]]:
    params = untracked(tiny(steps=STEPS))
    params["train"].update(train)
    return layout, run_train(params, layout)


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def plain(tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]) -> Layout:
    return _run(tiny, fresh_layout())[0]


def test_gradient_checkpointing_gives_the_same_training(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout], plain: Layout
) -> None:
    layout, _ = _run(tiny, fresh_layout(), gradient_checkpointing=True)
    # the recomputed forward replays the same dropout masks (RNG state is preserved)
    assert _losses(layout) == pytest.approx(_losses(plain), abs=1e-6)
    assert _max_difference(_weights(layout), _weights(plain)) < 1e-5


def test_bf16_autocast_trains(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout], plain: Layout
) -> None:
    layout, metrics = _run(tiny, fresh_layout(), precision="bf16")
    assert metrics["precision"] == "bf16"
    losses = _losses(layout)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    # close to fp32 but not equal: the matmuls really ran in bf16
    assert losses[-1] == pytest.approx(_losses(plain)[-1], abs=0.1)
    assert losses != _losses(plain)
    assert all(v.dtype == torch.float32 for v in _weights(layout).values())  # fp32 weights


def test_deepspeed_zero2_in_one_process_matches_plain_adamw(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout], plain: Layout
) -> None:
    layout, metrics = _run(tiny, fresh_layout(), strategy="deepspeed")
    assert metrics["strategy"] == "deepspeed" and metrics["precision"] == "fp32"
    assert _losses(layout) == pytest.approx(_losses(plain), abs=1e-5)
    assert _max_difference(_weights(layout), _weights(plain)) < 1e-5
    assert read_json(layout.model_dir("tiny") / "metrics.json")["world_size"] == 1


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> None:
    """Without dropout (inductor draws its own dropout masks) the two runs agree closely."""
    runs = []
    for compiled in (False, True):
        params = untracked(tiny(steps=STEPS))
        params["models"]["tiny"]["dropout"] = 0.0
        params["train"]["compile"] = compiled
        layout = fresh_layout()
        run_train(params, layout)
        runs.append(layout)
    eager, layout = runs
    assert _losses(layout) == pytest.approx(_losses(eager), abs=1e-4)
    assert _max_difference(_weights(layout), _weights(eager)) < 1e-3
    assert all(not k.startswith("_orig_mod") for k in _weights(layout))
