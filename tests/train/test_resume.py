"""Exact resume: a run killed mid-way (SIGKILL) or pre-empted (SIGTERM) and resumed ends exactly
where an uninterrupted run ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.orchestration.launch import REQUEUE_EXIT_CODE
from midilm.train.stage import run_train
from tests.train.launching import stage_env, untracked

STEPS, INTERVAL = 200, 10


def _params(tiny: Callable[..., dict[str, Any]], dvclive: bool = False) -> dict[str, Any]:
    params = untracked(tiny(steps=STEPS))
    params["train"].update(checkpoint_interval=INTERVAL, eval_interval=50, dvclive=dvclive)
    return params


def _start(params: dict[str, Any], layout: Layout) -> subprocess.Popen[bytes]:
    params_file = layout.root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "midilm", "train", "tiny", "--params", str(params_file)]
    command += ["--root", str(layout.root)]
    return subprocess.Popen(command, stderr=subprocess.DEVNULL, env=stage_env())


def _wait_for_checkpoint(process: subprocess.Popen[bytes], layout: Layout) -> None:
    checkpoints = layout.model_dir("tiny") / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("step-*")):
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)


def _interrupt(params: dict[str, Any], layout: Layout, sig: signal.Signals) -> int:
    """Start training in a subprocess, send `sig` once the first checkpoint exists; exit code."""
    process = _start(params, layout)
    _wait_for_checkpoint(process, layout)
    process.send_signal(sig)
    return process.wait(timeout=60)


def _outputs(layout: Layout) -> dict[str, bytes]:
    out = layout.model_dir("tiny")
    metrics = read_json(out / "metrics.json")

    return {
        "weights": (out / "weights" / "model.safetensors").read_bytes(),
        "log": (out / "train_log.csv").read_bytes(),
        "metrics": repr(sorted(metrics.items())).encode(),
    }


@pytest.fixture(scope="module")
def uninterrupted(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> dict[str, bytes]:
    layout = fresh_layout()
    run_train(_params(tiny), layout)
    assert not (layout.model_dir("tiny") / "checkpoints").exists()  # cleared on success
    return _outputs(layout)


def test_sigkill_then_resume_matches_an_uninterrupted_run(
    tiny: Callable[..., dict[str, Any]],
    fresh_layout: Callable[[], Layout],
    uninterrupted: dict[str, bytes],
) -> None:
    layout, params = fresh_layout(), _params(tiny, dvclive=True)
    _interrupt(params, layout, signal.SIGKILL)
    assert not (layout.weights_dir("tiny") / "model.safetensors").exists()
    run_train(params, layout)
    assert _outputs(layout) == uninterrupted
    # dvclive's series were cut back to the checkpoint: every step once, in order
    series = layout.model_dir("tiny") / "live" / "plots" / "metrics" / "train" / "loss.tsv"
    steps = [int(line.split("\t")[0]) for line in series.read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1))


def test_sigterm_checkpoints_and_exits_to_be_requeued(
    tiny: Callable[..., dict[str, Any]],
    fresh_layout: Callable[[], Layout],
    uninterrupted: dict[str, bytes],
) -> None:
    layout, params = fresh_layout(), _params(tiny)
    assert _interrupt(params, layout, signal.SIGTERM) == REQUEUE_EXIT_CODE
    saved = sorted((layout.model_dir("tiny") / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and int(saved[0].name.split("-")[1]) < STEPS
    run_train(params, layout)
    assert _outputs(layout) == uninterrupted


def test_a_checkpoint_of_other_params_is_not_resumed(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> None:
    layout, params = fresh_layout(), _params(tiny)
    _interrupt(params, layout, signal.SIGKILL)
    other = _params(tiny)
    other["train"]["steps"] = 20  # another run: its lr schedule differs from the killed one's
    run_train(other, layout)
    clean = fresh_layout()
    run_train(other, clean)
    assert _outputs(layout) == _outputs(clean)
