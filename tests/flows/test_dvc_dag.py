"""The stage task on a one-stage DVC repo: transient failures are retried, real ones are not."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.dvc_dag import StageFailed, repro_stage, slurm_log

# Tasks called outside a flow: Prefect warns that their logs cannot reach the API; expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs':UserWarning")

# Fails with a lock message on its first attempt, then writes out.txt; attempts are counted.
FLAKY = """
import pathlib, sys
count = pathlib.Path("attempts.txt")
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
if n == 1 and sys.argv[1] == "flaky":
    sys.exit("ERROR: Unable to acquire lock (another process holds it)")
if sys.argv[1] == "broken":
    sys.exit("ValueError: dataset.split.ratios must sum to 1")
pathlib.Path("out.txt").write_text("done")
"""


def tiny_repo(root: Path, mode: str) -> Path:
    root.mkdir()
    (root / "step.py").write_text(FLAKY)
    (root / "dvc.yaml").write_text(
        f"stages:\n  step:\n    cmd: {sys.executable} step.py {mode}\n    outs: [out.txt]\n"
    )
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], cwd=root, check=True)
    return root


def test_a_lock_failure_is_retried_and_then_passes(prefect_harness, tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path / "flaky", "flaky")
    task = repro_stage.with_options(retry_delay_seconds=0)
    assert task(stage="step", repo=str(repo)) == "ran"
    assert (repo / "attempts.txt").read_text() == "2"
    assert (repo / "out.txt").read_text() == "done"


def test_a_deterministic_failure_fails_at_once_naming_stage_and_log(
    prefect_harness, tmp_path: Path
) -> None:
    repo = tiny_repo(tmp_path / "broken", "broken")
    task = repro_stage.with_options(retry_delay_seconds=0)
    with pytest.raises(StageFailed, match=r"stage 'step' failed .*logs/prefect/step\.log"):
        task(stage="step", repo=str(repo))
    assert (repo / "attempts.txt").read_text() == "1"
    assert "must sum to 1" in (repo / "logs" / "prefect" / "step.log").read_text()


def test_the_slurm_log_comes_from_the_job_id_or_the_newest_log(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "slurm"
    logs.mkdir(parents=True)
    for job in ("7", "12"):
        (logs / f"tokenize-remi-{job}.log").write_text("x")
    output = "Running stage 'tokenize@remi':\n7\n"
    assert slurm_log(tmp_path, "tokenize@remi", output, since=0) == logs / "tokenize-remi-7.log"
    assert slurm_log(tmp_path, "train", output, since=0) is None
    assert slurm_log(tmp_path, "tokenize@tsd", "", since=time.time() + 60) is None
