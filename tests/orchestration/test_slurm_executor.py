"""The Slurm executor against a real single-node Slurm cluster started by infra/slurm/start.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _launch(stage: str, code: str, cwd: Path) -> int:
    env = {**os.environ, "MIDILM_EXECUTOR": "slurm"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "midilm.orchestration.launch",
            stage,
            "--",
            sys.executable,
            "-c",
            code,
        ],
        cwd=cwd,
        env=env,
        check=False,
    ).returncode


def test_a_stage_runs_as_a_slurm_job_and_its_exit_code_propagates(
    slurm_cluster: None, tmp_path: Path
) -> None:
    code = "import os; open('job_id', 'w').write(os.environ['SLURM_JOB_ID'])"
    assert _launch("split", code, tmp_path) == 0
    job_id = (tmp_path / "job_id").read_text()
    assert job_id.isdigit()
    log = tmp_path / "logs" / "slurm" / f"split-{job_id}.log"
    assert "midilm stage split on" in log.read_text()
    assert _launch("split", "raise SystemExit(3)", tmp_path) == 3


def test_a_stage_asking_to_be_requeued_runs_again_and_sbatch_waits_for_it(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """Exit 75 on the first run (as training does after checkpointing on SIGTERM), 0 after."""
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "resources.yaml").write_text("train:\n  cpus: 1\n  requeue: true\n")
    code = (
        "import os, sys; restart = os.environ.get('SLURM_RESTART_COUNT', '0'); "
        "open('runs', 'a').write(restart + chr(10)); sys.exit(75 if restart == '0' else 0)"
    )
    assert _launch("train", code, tmp_path) == 0
    assert (tmp_path / "runs").read_text().split() == ["0", "1"]
