"""Prefect tasks that call DVC: compose params.yaml, and reproduce one stage of the DAG.

Each stage runs as `dvc --wait-for-lock repro -s <stage>` in the repository: DVC keeps deciding
what is up to date and caching outputs, the executor (MIDILM_EXECUTOR=local|slurm) decides where
the stage command runs. Output goes to `logs/prefect/<stage>.log`; under Slurm the stage's own
output is the job log `logs/slurm/<stage>-<jobid>.log`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from midilm.orchestration.launch import SLURM_LOG_DIR, slurm_log_base

# Failures worth one more try: the cluster or a lock, not the stage's own code or data.
TRANSIENT_PATTERNS = (
    "Unable to acquire lock",
    "is busy",
    "Socket timed out",
    "Unable to contact slurm controller",
    "Batch job submission failed",
    "NODE_FAIL",
    "DUE TO NODE FAILURE",
    "DUE TO PREEMPTION",
)
SLURM_JOB_ID = re.compile(r"^(\d+)(?:;\S+)?$", re.MULTILINE)  # `sbatch --parsable` output
TAIL_LINES = 20


class StageFailed(RuntimeError):
    """A stage's command failed; the message names the stage and where its log is."""


class TransientStageError(StageFailed):
    """A stage failed for a reason outside it (lock, scheduler); retried."""


def stage_env(executor: str) -> dict[str, str]:
    """This environment with the executor set and this interpreter's bin first on PATH, so `dvc`
    and the stages' `python` are the ones of the environment the flow runs in."""
    env = dict(os.environ)
    env["MIDILM_EXECUTOR"] = executor
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def slurm_log(repo: Path, stage: str, output: str, since: float) -> Path | None:
    """The Slurm job log of `stage`: from the job id sbatch printed, else the newest log of the
    stage written since `since` (`tokenize@remi` logs as `tokenize-remi-<jobid>.log`)."""
    log_dir = repo / SLURM_LOG_DIR
    base = slurm_log_base(stage)
    for job_id in reversed(SLURM_JOB_ID.findall(output)):
        path = log_dir / f"{base}-{job_id}.log"
        if path.exists():
            return path
    fresh = [p for p in log_dir.glob(f"{base}-*.log") if p.stat().st_mtime >= since]
    return max(fresh, key=lambda p: p.stat().st_mtime, default=None)


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientStageError:
        return True
    except Exception:
        return False
    return False


@task(
    name="dvc-repro-stage",
    retries=2,
    retry_delay_seconds=15,
    retry_condition_fn=_is_transient,
    cache_policy=NO_CACHE,
)
def repro_stage(stage: str, repo: str, executor: str = "local") -> str:
    """`dvc --wait-for-lock repro -s <stage>`; returns "ran" or "up to date"."""
    logger = get_run_logger()
    root = Path(repo)
    log_path = root / "logs" / "prefect" / f"{stage}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "-s", stage]
    started = time.time()
    with log_path.open("w", encoding="utf-8") as log:
        code = subprocess.call(
            argv, cwd=root, env=stage_env(executor), stdout=log, stderr=subprocess.STDOUT
        )
    output = log_path.read_text(encoding="utf-8", errors="replace")
    elapsed = time.time() - started
    if code != 0:
        where = [f"log: {log_path}"]
        job_log = slurm_log(root, stage, output, started) if executor == "slurm" else None
        if job_log is not None:
            where.insert(0, f"Slurm job log: {job_log}")
        tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        kind = TransientStageError if any(p in output for p in TRANSIENT_PATTERNS) else StageFailed
        raise kind(
            f"stage {stage!r} failed (exit {code}, {executor} executor, {elapsed:.0f} s); "
            f"{'; '.join(where)}\n{tail}"
        )
    outcome = "up to date" if "didn't change, skipping" in output else "ran"
    logger.info("stage %s: %s in %.1f s (log: %s)", stage, outcome, elapsed, log_path)
    return outcome


@task(name="compose-params", cache_policy=NO_CACHE)
def compose_params(repo: str, profile: str, overrides: list[str]) -> str:
    """Rewrite params.yaml from conf/ with the profile and Hydra overrides (what `dvc exp run -S`
    does); returns the override list used."""
    args = [f"profile={profile}", *overrides]
    argv = [sys.executable, "-m", "midilm.cli", "params", "compose", *args]
    result = subprocess.run(
        argv, cwd=repo, env=stage_env("local"), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StageFailed(
            f"composing params.yaml with {' '.join(args)} failed in {repo}:\n"
            f"{result.stdout}{result.stderr}"
        )
    get_run_logger().info("params.yaml composed with %s", " ".join(args))
    return " ".join(args)
