"""Two CPU processes launched like on the cluster (`torchrun ... -m midilm train tiny` in a
temporary repository root): DDP and DeepSpeed ZeRO-2 train, rank 0 alone writes, the ranks see
different halves of the global batch (the run equals one process with the doubled batch), runs
repeat byte for byte, and SIGTERM on any rank checkpoints every rank and resumes exactly."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
import torch
from safetensors.torch import load_file

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.orchestration.launch import REQUEUE_EXIT_CODE
from midilm.train.stage import run_train
from tests.train.launching import launch, run_launch, untracked

pytestmark = pytest.mark.slow

STEPS, BATCH, INTERVAL = 200, 8, 10


def _params(tiny: Callable[..., dict[str, Any]], strategy: str, batch: int = BATCH) -> dict:
    params = untracked(tiny(steps=STEPS))
    params["models"]["tiny"]["dropout"] = 0.0  # dropout masks differ by batch shape
    params["train"].update(
        strategy=strategy, batch_size=batch, eval_interval=50, checkpoint_interval=INTERVAL
    )
    return params


def _weights(layout: Layout) -> dict[str, torch.Tensor]:
    return load_file(str(layout.weights_dir("tiny") / "model.safetensors"))


def _max_difference(a: Layout, b: Layout) -> float:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def _log(layout: Layout) -> list[float]:
    """train_log.csv's numbers, row after row (nan where no evaluation)."""
    lines = (layout.model_dir("tiny") / "train_log.csv").read_text().splitlines()[1:]
    return [float(v) if v else float("nan") for line in lines for v in line.split(",")]


def _same_bytes(a: Layout, b: Layout) -> bool:
    names = ("weights/model.safetensors", "train_log.csv")
    ma, mb = (read_json(x.model_dir("tiny") / "metrics.json") for x in (a, b))

    same = all(
        (a.model_dir("tiny") / n).read_bytes() == (b.model_dir("tiny") / n).read_bytes()
        for n in names
    )
    return same and ma == mb


def _wait_for_checkpoint(process: Any, layout: Layout) -> None:
    checkpoints = layout.model_dir("tiny") / "checkpoints"
    deadline = time.monotonic() + 240
    while not list(checkpoints.glob("step-*")):
        assert process.poll() is None, (layout.root / "launch.log").read_text()[-4000:]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def doubled(tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]) -> Layout:
    """One process with twice the batch: what two processes together must compute."""
    layout = fresh_layout()
    run_train(_params(tiny, "single", batch=2 * BATCH), layout)
    return layout


@pytest.fixture(scope="module")
def ddp(tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]) -> Layout:
    """Two DDP processes with wandb (offline) and dvclive on."""
    params = _params(tiny, "ddp")
    params["train"]["dvclive"] = True
    params["train"]["wandb"]["mode"] = "offline"
    layout = fresh_layout()
    run_launch(params, layout, processes=2)
    return layout


@pytest.fixture(scope="module")
def deepspeed(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> tuple[Layout, Layout]:
    """Two identical two-process DeepSpeed ZeRO-2 runs."""
    layouts = fresh_layout(), fresh_layout()
    for layout in layouts:
        run_launch(_params(tiny, "deepspeed"), layout, processes=2)
    return layouts


def test_ddp_equals_one_process_with_the_doubled_batch(ddp: Layout, doubled: Layout) -> None:
    metrics = read_json(ddp.model_dir("tiny") / "metrics.json")
    assert metrics["world_size"] == 2 and metrics["strategy"] == "ddp"
    assert metrics["tokens_seen"] == STEPS * 2 * BATCH * 64
    assert _max_difference(ddp, doubled) < 1e-3  # Adam amplifies rounding
    assert _log(ddp) == pytest.approx(_log(doubled), abs=1e-5, nan_ok=True)
    losses = _log(ddp)[1::4]  # step, train_loss, val_loss, lr
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 1.0


def test_only_rank_zero_writes(ddp: Layout) -> None:
    out = ddp.model_dir("tiny")
    names = {"weights", "train_log.csv", "metrics.json", "speed.json", "live", "wandb"}
    assert {p.name for p in out.iterdir()} == names  # checkpoints cleared
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    series = (out / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
    assert len(series.splitlines()) == STEPS + 1  # header + one row per step, not per rank


def test_deepspeed_runs_repeat_byte_for_byte(deepspeed: tuple[Layout, Layout]) -> None:
    assert _same_bytes(*deepspeed)


def test_deepspeed_equals_one_process_with_the_doubled_batch(
    deepspeed: tuple[Layout, Layout], doubled: Layout
) -> None:
    metrics = read_json(deepspeed[0].model_dir("tiny") / "metrics.json")
    assert metrics["world_size"] == 2 and metrics["strategy"] == "deepspeed"
    assert _max_difference(deepspeed[0], doubled) < 1e-3
    assert _log(deepspeed[0]) == pytest.approx(_log(doubled), abs=1e-5, nan_ok=True)


def test_sigterm_to_torchrun_checkpoints_deepspeed_and_resumes_exactly(
    tiny: Callable[..., dict[str, Any]],
    fresh_layout: Callable[[], Layout],
    deepspeed: tuple[Layout, Layout],
) -> None:
    layout, params = fresh_layout(), _params(tiny, "deepspeed")
    process = launch(params, layout, processes=2)
    _wait_for_checkpoint(process, layout)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == REQUEUE_EXIT_CODE
    (saved,) = (layout.model_dir("tiny") / "checkpoints").glob("step-*")
    assert int(saved.name.split("-")[1]) < STEPS
    shards = sorted(p.name for p in saved.glob("optimizer-rank*.safetensors"))
    assert shards == ["optimizer-rank00000.safetensors", "optimizer-rank00001.safetensors"]
    run_launch(params, layout, processes=2)
    assert _same_bytes(layout, deepspeed[0])


def test_sigterm_to_one_ddp_rank_stops_both_and_resumes_exactly(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> None:
    params = _params(tiny, "ddp")
    reference = fresh_layout()
    run_launch(params, reference, processes=2)
    layout = fresh_layout()
    process = launch(params, layout, processes=2)
    _wait_for_checkpoint(process, layout)
    workers = [
        p
        for p in psutil.Process(process.pid).children(recursive=True)
        if "midilm train" in " ".join(p.cmdline()) and p.environ().get("RANK") == "1"
    ]
    assert len(workers) == 1
    workers[0].send_signal(signal.SIGTERM)  # rank 0 is not signalled: it must follow rank 1
    process.wait(timeout=120)
    log = (layout.root / "launch.log").read_text()
    assert "pre-empted after step" in log
    saved = list((layout.model_dir("tiny") / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and int(saved[0].name.split("-")[1]) < STEPS
    assert not (layout.model_dir("tiny") / "metrics.json").exists()
    run_launch(params, layout, processes=2)
    assert _same_bytes(layout, reference)
