"""Helpers of the training tests: params without trackers, and multi-process launches."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from midilm.common.paths import Layout

REPO_ROOT = Path(__file__).resolve().parents[2]


def untracked(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with wandb and dvclive off (most tests do not look at them; faster)."""
    params["train"]["wandb"]["mode"] = "disabled"
    params["train"]["dvclive"] = False
    return params


def write_params(params: dict[str, Any], layout: Layout) -> Path:
    path = layout.root / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def stage_env() -> dict[str, str]:
    """The environment of a stage subprocess run from a temporary repository root."""
    env = dict(os.environ, MIDILM_NO_PROGRESS="1", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("WANDB_MODE", None)
    return env


def torchrun_command(processes: int, key: str = "tiny") -> list[str]:
    """The real entry of a multi-process stage: our torchrun wrapper running `midilm train`."""
    return [
        sys.executable,
        "-m",
        "midilm.train.torchrun",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "midilm",
        "train",
        key,
    ]


def launch(
    params: dict[str, Any], layout: Layout, processes: int, log_name: str = "launch.log"
) -> subprocess.Popen[bytes]:
    """Start `torchrun ... -m midilm train tiny` in the layout's root (output in `log_name`)."""
    write_params(params, layout)
    log = open(layout.root / log_name, "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        torchrun_command(processes),
        cwd=layout.root,
        env=stage_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def run_launch(params: dict[str, Any], layout: Layout, processes: int, timeout: int = 300) -> None:
    """Run a multi-process training to the end; fail with its log if it fails or hangs."""
    process = launch(params, layout, processes)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_hung(process)
        code = None
    lines = (layout.root / "launch.log").read_text(errors="replace").splitlines()
    log = "\n".join(line for line in lines if not line.startswith("Extension modules:"))
    assert code == 0, f"torchrun exited {code}:\n{log[-12000:]}"


def stop_hung(process: subprocess.Popen[bytes]) -> None:
    """Make every Python process of a hung launch print its threads' stacks into the log
    (faulthandler, on SIGABRT), then kill them all so that no later test shares the cores."""
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in reversed(tree):
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGABRT)
    time.sleep(2)
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    process.wait()
