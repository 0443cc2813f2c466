"""Training as a Slurm job (MIDILM_EXECUTOR=slurm, through the real launcher and templates):
`scancel` mid-run stops the job for good after a checkpoint, and the next submission resumes from
that checkpoint and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.train.stage import run_train

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS, INTERVAL = 300, 10
RESOURCES = 'train: {cpus: 1, mem: 2G, time: "00:10:00", requeue: true, signal_grace_s: 60}\n'


def _params(tiny: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    params = tiny(steps=STEPS)
    params["train"].update(checkpoint_interval=INTERVAL, eval_interval=50)
    return params


def _outputs(layout: Layout) -> dict[str, Any]:
    out = layout.model_dir("tiny")
    metrics = read_json(out / "metrics.json")

    return {
        "metrics": metrics,
        "log": (out / "train_log.csv").read_text(),
        "weights": (out / "weights" / "model.safetensors").read_bytes(),
    }


def _launch_train(root: Path) -> subprocess.Popen[str]:
    """`python -m midilm.orchestration.launch train@tiny -- python -m midilm train tiny`, as
    dvc.yaml runs it, from a repo whose params.yaml holds the tiny model `tiny`."""
    env = {**os.environ, "MIDILM_EXECUTOR": "slurm", "MIDILM_NO_PROGRESS": "1", "COLUMNS": "400"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "midilm.orchestration.launch", "train@tiny", "--"]
    command = [sys.executable, "-m", "midilm", "train", "tiny"]
    return subprocess.Popen([*argv, *command], cwd=root, env=env, stdout=subprocess.PIPE, text=True)


def _job_state(job_id: str) -> str:
    shown = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"JobState=(\S+)", shown)
    restarts = re.search(r"Restarts=(\d+)", shown)
    return f"{match[1] if match else '?'} restarts={restarts[1] if restarts else '?'}"


@pytest.fixture(scope="module")
def uninterrupted(
    tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]
) -> dict[str, Any]:
    layout = fresh_layout()
    run_train(_params(tiny), layout)
    return _outputs(layout)


def test_scancel_mid_run_then_resubmit_resumes_from_the_checkpoint(
    slurm_cluster: None,
    tiny: Callable[..., dict[str, Any]],
    fresh_layout: Callable[[], Layout],
    uninterrupted: dict[str, Any],
) -> None:
    layout = fresh_layout()
    root = layout.root
    (root / "params.yaml").write_text(yaml.safe_dump(_params(tiny)))
    (root / "infra").mkdir()
    (root / "infra" / "resources.yaml").write_text(RESOURCES)
    checkpoints = layout.model_dir("tiny") / "checkpoints"

    launcher = _launch_train(root)
    assert launcher.stdout is not None
    job_id = launcher.stdout.readline().strip()
    assert job_id.isdigit(), job_id
    deadline = time.monotonic() + 180
    while not list(checkpoints.glob("step-*")):
        assert launcher.poll() is None, "the job ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.05)
    subprocess.run(["scancel", job_id], check=True)  # SIGTERM to the job's processes
    assert launcher.wait(timeout=120) != 0  # the stage failed: DVC would record nothing

    log = (root / "logs" / "slurm" / f"train-tiny-{job_id}.log").read_text()
    assert "pre-empted after step" in log and "CANCELLED" in log, log
    assert "asked to be requeued" not in log  # a cancelled job is not requeued ...
    time.sleep(2)
    assert _job_state(job_id) == "CANCELLED restarts=0"  # ... and stays cancelled
    (saved,) = sorted(checkpoints.glob("step-*"))  # the checkpoint written on SIGTERM
    step = int(saved.name.split("-")[1])
    assert 0 < step < STEPS
    assert not (layout.model_dir("tiny") / "metrics.json").exists()

    again = _launch_train(root)
    assert again.stdout is not None
    second_id = again.stdout.readline().strip()
    code = again.wait(timeout=300)
    second_log = (root / "logs" / "slurm" / f"train-tiny-{second_id}.log").read_text()
    assert code == 0, second_log
    assert re.search(rf"resuming from \S+step-{step:08d} \(step {step}\)", second_log), second_log
    assert _outputs(layout) == uninterrupted
    assert not checkpoints.exists()  # cleared once the outputs are published
