"""The one launcher every DVC stage command goes through.

    python -m midilm.orchestration.launch <stage> -- <command ...>

The executor comes from the environment (MIDILM_EXECUTOR=local|slurm), never from a DVC param, so
switching it never invalidates the cache. `local` runs the command here; `slurm` submits the same
command with `sbatch --wait` using the stage's resources from infra/resources.yaml and returns the
job's exit code.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

EXECUTOR_ENV = "MIDILM_EXECUTOR"
RESOURCES_ENV = "MIDILM_RESOURCES"
DEFAULT_RESOURCES = Path("infra/resources.yaml")
EXECUTORS = ("local", "slurm")
# sysexits' EX_TEMPFAIL ("try again later"): a stage that checkpointed on SIGTERM exits with it,
# and its Slurm job is requeued.
REQUEUE_EXIT_CODE = 75


@dataclass(frozen=True)
class StageResources:
    """What a stage asks the scheduler for."""

    cpus: int = 1
    mem: str = "4G"
    time: str = "01:00:00"
    gpus: int = 0
    partition: str | None = None
    requeue: bool = False  # requeue the job when the stage exits with REQUEUE_EXIT_CODE
    signal_grace_s: int = 0  # SIGTERM this long before the time limit (training checkpoints)
    extra: tuple[str, ...] = field(default_factory=tuple)


def executor_name(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    name = env.get(EXECUTOR_ENV, "local").strip().lower() or "local"
    if name not in EXECUTORS:
        raise SystemExit(
            f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {', '.join(EXECUTORS)}"
        )
    return name


def load_resources(stage: str, path: Path | None = None) -> StageResources:
    """Resources for `stage` (`tokenize@remi` uses `tokenize`'s): its entry over `default`."""
    stage = stage.split("@", 1)[0]
    path = path or Path(os.environ.get(RESOURCES_ENV, DEFAULT_RESOURCES))
    if not path.exists():
        return StageResources()
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    merged = {**(table.get("default") or {}), **(table.get(stage) or {})}
    unknown = set(merged) - set(StageResources.__dataclass_fields__)
    if unknown:
        raise SystemExit(f"{path}: unknown resource keys for stage {stage!r}: {sorted(unknown)}")
    if "extra" in merged:
        merged["extra"] = tuple(merged["extra"])
    return StageResources(**merged)


def sbatch_script(stage: str, command: Sequence[str], workdir: Path) -> str:
    """The batch script: run the stage command from the repo root with the same environment.

    The command runs as a child so that SIGTERM (pre-emption, time limit, scancel) reaches it;
    a stage that checkpoints and exits with REQUEUE_EXIT_CODE has its job requeued, and
    `sbatch --wait` keeps waiting for the requeued run.
    """
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            "set -uo pipefail",
            f"cd {shlex.quote(str(workdir))}",
            f'echo "midilm stage {stage} on $(hostname), job ${{SLURM_JOB_ID:-?}}, '
            'restart ${SLURM_RESTART_COUNT:-0}"',
            f"{shlex.join(command)} &",
            "child=$!",
            "trap 'kill -TERM $child 2>/dev/null' TERM",
            "wait $child; rc=$?",
            "while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done",
            f'if [ $rc -eq {REQUEUE_EXIT_CODE} ] && [ -n "${{SLURM_JOB_ID:-}}" ]; then',
            '  echo "midilm: stage checkpointed and asked to be requeued"',
            '  scontrol requeue "$SLURM_JOB_ID"',
            "fi",
            "exit $rc",
            "",
        ]
    )


def sbatch_argv(stage: str, resources: StageResources, log_path: Path) -> list[str]:
    """`sbatch --wait` arguments for one stage (blocks until the job ends, exits with its code)."""
    argv = [
        "sbatch",
        "--wait",
        "--parsable",
        f"--job-name=midilm-{stage}",
        f"--output={log_path}",
        f"--cpus-per-task={resources.cpus}",
        f"--mem={resources.mem}",
        f"--time={resources.time}",
        "--export=ALL",
    ]
    if resources.gpus:
        argv.append(f"--gres=gpu:{resources.gpus}")
    if resources.partition:
        argv.append(f"--partition={resources.partition}")
    if resources.requeue:
        argv.append("--requeue")
    if resources.signal_grace_s:
        argv.append(f"--signal=B:TERM@{resources.signal_grace_s}")
    argv.extend(resources.extra)
    return argv


def run_local(command: Sequence[str]) -> int:
    return subprocess.call(list(command))


def run_slurm(stage: str, command: Sequence[str], workdir: Path) -> int:
    log_dir = workdir / "logs" / "slurm"
    log_dir.mkdir(parents=True, exist_ok=True)
    name = stage.replace("@", "-")  # foreach items run at once: one script and log name each
    script = log_dir / f"{name}.sbatch"
    script.write_text(sbatch_script(stage, command, workdir), encoding="utf-8")
    log_path = log_dir / f"{name}-%j.log"
    argv = [*sbatch_argv(stage, load_resources(stage), log_path), str(script)]
    try:
        code = subprocess.call(argv)
    except FileNotFoundError:
        raise SystemExit(
            f"{EXECUTOR_ENV}=slurm but `sbatch` is not on PATH; start a cluster with "
            "infra/slurm/start.sh or unset MIDILM_EXECUTOR to run locally"
        ) from None
    if code != 0:
        print(
            f"midilm: stage {stage} failed as a Slurm job; log: {log_dir}/{name}-<jobid>.log",
            file=sys.stderr,
        )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--" or args[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    stage, command = args[0], args[2:]
    if executor_name() == "slurm":
        return run_slurm(stage, command, Path.cwd())
    return run_local(command)


if __name__ == "__main__":
    sys.exit(main())
