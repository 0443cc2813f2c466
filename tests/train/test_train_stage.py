"""Train a tiny GPT on the real chorale corpus: loss falls, outputs are complete, runs repeat."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from midilm.common.io import read_json
from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.train.run import OUTPUTS
from midilm.train.stage import run_train
from tests.train.launching import untracked


@pytest.fixture(scope="module")
def two_runs(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> tuple[Layout, Layout, dict[str, Any]]:
    params = untracked(tiny(steps=30))
    first, second = fresh_layout(), fresh_layout()
    run_train(params, first)
    run_train(params, second)
    return first, second, params


def test_outputs_exist_and_metrics_are_finite(two_runs: tuple[Layout, Layout, dict]) -> None:
    layout, _, _ = two_runs
    out = layout.model_dir("tiny")
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "live"])
    metrics = read_json(out / "metrics.json")
    assert metrics["steps"] == 30 and metrics["context"] == 64 and metrics["family"] == "gpt2"
    assert metrics["size"] == "tiny" and metrics["tokenizer"] == "remi"
    assert metrics["tokens_seen"] == 30 * 8 * 64
    assert metrics["strategy"] == "single" and metrics["world_size"] == 1
    assert metrics["precision"] == "fp32"  # auto on CPU
    for key in ("train_loss", "val_loss", "val_perplexity", "val_bits_per_note"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0, key
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]), rel=1e-5)
    assert "speed" not in metrics  # measured figures live apart, so metrics.json is reproducible
    speed = read_json(out / "speed.json")
    assert set(speed) == {"device", "train_tokens_per_s", "peak_memory_mb", "wall_s"}


def test_loss_decreases(two_runs: tuple[Layout, Layout, dict]) -> None:
    layout, _, _ = two_runs
    with open(layout.model_dir("tiny") / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "train_loss", "val_loss", "lr"]
    assert [r["step"] for r in rows] == [str(i) for i in range(1, 31)]
    assert [r["step"] for r in rows if r["val_loss"]] == ["10", "20", "30"]
    first = sum(float(r["train_loss"]) for r in rows[:5]) / 5
    last = sum(float(r["train_loss"]) for r in rows[-5:]) / 5
    assert last < first - 0.5
    vals = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert vals[-1] < vals[0]


def test_two_runs_are_identical(two_runs: tuple[Layout, Layout, dict]) -> None:
    first, second, _ = two_runs
    a, b = first.model_dir("tiny"), second.model_dir("tiny")
    for name in (
        "weights/model.safetensors",
        "weights/config.json",
        "train_log.csv",
        "metrics.json",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_saved_model_reloads(two_runs: tuple[Layout, Layout, dict]) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        two_runs[0].weights_dir("tiny"), use_safetensors=True
    )
    assert model.config.n_positions == 64 and model.config.n_layer == 2


def test_missing_tokens_name_the_stage(tmp_path: Path, tiny: Callable[..., dict]) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro tokenize"):
        run_train(tiny(), Layout(tmp_path))


def test_finetune_family_goes_to_the_finetune_job(
    repo_root: Path, fresh_layout: Callable[[], Layout]
) -> None:
    """train@<key> of family finetune builds midilm.finetune's job (REMI has no text for it)."""
    params = to_plain(load_params(repo_root / "params.yaml"))
    params["models"] = {"finetune": {**params["models"]["finetune"], "tokenizer": "remi"}}
    with pytest.raises(ValueError, match="family finetune"):
        run_train(params, fresh_layout())


def test_several_processes_need_a_distributed_strategy(
    tiny: Callable[..., dict], fresh_layout: Callable[[], Layout], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="strategy=single but 2 processes"):
        run_train(untracked(tiny()), fresh_layout())
