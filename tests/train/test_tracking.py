"""wandb (offline) and dvclive on a real tiny run: they write their runs and series, never
dvc.yaml, and leave the weights and metrics.json exactly as a run without them."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.specs import WandbSpec
from midilm.train.stage import run_train
from midilm.train.tracking import trim_live_series, wandb_mode
from tests.train.launching import untracked

STEPS = 12


def _series(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def runs(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> tuple[Layout, Layout]:
    """The same tiny run with wandb offline + dvclive, and with neither."""
    params = tiny(steps=STEPS)
    params["train"].update(eval_interval=4, dvclive=True)
    params["train"]["wandb"]["mode"] = "offline"
    tracked, plain = fresh_layout(), fresh_layout()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WANDB_MODE", raising=False)
        run_train(params, tracked)
    run_train(untracked(params), plain)
    return tracked, plain


def test_wandb_writes_one_offline_run(runs: tuple[Layout, Layout]) -> None:
    wandb_dir = runs[0].model_dir("tiny") / "wandb"
    (run_dir,) = wandb_dir.glob("offline-run-*")
    (record,) = run_dir.glob("run-*.wandb")
    assert record.stat().st_size > 1000  # config, 12 steps of history, the exit record
    assert not (runs[1].model_dir("tiny") / "wandb").exists()


def test_dvclive_writes_every_step_and_evaluation(runs: tuple[Layout, Layout]) -> None:
    live = runs[0].model_dir("tiny") / "live"
    loss = _series(live / "plots" / "metrics" / "train" / "loss.tsv")
    assert [int(r["step"]) for r in loss] == list(range(1, STEPS + 1))
    val = _series(live / "plots" / "metrics" / "val" / "loss.tsv")
    assert [int(r["step"]) for r in val] == [4, 8, 12]
    summary = read_json(live / "metrics.json")
    assert set(summary["train"]) == {"loss", "lr"}  # tokens/s is measured: speed.json only
    assert set(summary["val"]) == {"loss", "perplexity", "bits_per_note"}
    metrics = read_json(runs[0].model_dir("tiny") / "metrics.json")
    assert summary["val"]["loss"] == pytest.approx(metrics["val_loss"], abs=1e-6)
    assert not list(runs[0].root.rglob("dvc.yaml"))  # dvclive never edits a pipeline


def test_trackers_leave_weights_and_metrics_unchanged(runs: tuple[Layout, Layout]) -> None:
    tracked, plain = (layout.model_dir("tiny") for layout in runs)
    for name in ("weights/model.safetensors", "train_log.csv"):
        assert (tracked / name).read_bytes() == (plain / name).read_bytes(), name
    a, b = read_json(tracked / "metrics.json"), read_json(plain / "metrics.json")

    assert a == b


def test_wandb_mode_env_overrides_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode(WandbSpec("offline", "midilm", None)) == "offline"
    assert wandb_mode(WandbSpec("online", "midilm", None)) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(WandbSpec("online", "midilm", None)) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ValueError, match=r"train\.wandb\.mode"):
        wandb_mode(WandbSpec("offline", "midilm", None))


def test_trim_drops_steps_after_the_checkpoint_and_cut_rows(tmp_path: Path) -> None:
    from dvclive import Live

    live = Live(dir=str(tmp_path), save_dvc_exp=False, dvcyaml=False)
    for step in range(1, 6):
        live.step = step
        live.log_metric("train/loss", 1.0 / step)
    path = tmp_path / "plots" / "metrics" / "train" / "loss.tsv"
    with open(path, "a") as handle:
        handle.write("6")  # a row cut short by a kill
    trim_live_series(tmp_path, last_step=3)
    assert [int(r["step"]) for r in _series(path)] == [1, 2, 3]
