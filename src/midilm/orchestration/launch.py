"""The one launcher every DVC stage command goes through.

    python -m midilm.orchestration.launch <stage> -- <command ...>

The executor comes from the environment (MIDILM_EXECUTOR=local|slurm), never from a DVC param, so
switching it never invalidates the cache. `local` runs the command here; `slurm` renders a batch
script from infra/slurm/templates (cpu, gpu or array) with the stage's resources from
infra/resources.yaml, submits it with `sbatch --wait` and returns the job's exit code. A stage with
`array: N` runs as N shard tasks and then one merge job (see midilm.orchestration.shards).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from midilm.orchestration.templates import render, template_path

EXECUTOR_ENV = "MIDILM_EXECUTOR"
RESOURCES_ENV = "MIDILM_RESOURCES"
DEFAULT_RESOURCES = Path("infra/resources.yaml")
EXECUTORS = ("local", "slurm")
# sysexits' EX_TEMPFAIL ("try again later"): a stage that checkpointed on SIGTERM exits with it,
# and its Slurm job is requeued.
REQUEUE_EXIT_CODE = 75
# The shard protocol's variables (midilm.orchestration.shards, which needs pandas: not imported).
SHARD_COUNT_ENV, SHARD_MERGE_ENV = "MIDILM_SHARD_COUNT", "MIDILM_SHARD_MERGE"
SLURM_LOG_DIR = Path("logs") / "slurm"  # relative to the working directory of the run


def slurm_log_base(stage: str) -> str:
    """A stage's Slurm script and log name: `tokenize@remi` -> `tokenize-remi` (its logs are
    `<base>-<jobid>.log`, or `<base>-<jobid>_<task>.log` for array tasks)."""
    return stage.replace("@", "-")


_STAGE_NAME = re.compile(r"^[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?$")
_NO_SPACE = re.compile(r"^\S+$")


@dataclass(frozen=True)
class StageResources:
    """What a stage asks the scheduler for (an entry of infra/resources.yaml)."""

    cpus: int = 1  # per task: the stage, or torchrun and all its ranks on one node
    mem: str = "4G"  # per node
    time: str = "01:00:00"
    gpus: int = 0  # per node: --gres=gpu:N, one torchrun rank each
    nodes: int = 1
    procs_per_node: int = 0  # torchrun ranks per node; 0: one per GPU (or 1 without GPUs)
    array: int = 0  # N > 0: N shard tasks (a job array), then a merge job
    array_parallel: int = 0  # at most this many shard tasks at once (0: no limit)
    partition: str | None = None
    requeue: bool = False  # requeue the job when the stage exits with REQUEUE_EXIT_CODE
    signal_grace_s: int = 0  # SIGTERM this long before the time limit (training checkpoints)
    template: str | None = None  # cpu | gpu | array; default: chosen from the fields above
    extra: tuple[str, ...] = field(default_factory=tuple)  # further sbatch flags, one per line

    @property
    def ranks_per_node(self) -> int:
        return self.procs_per_node or self.gpus or 1

    def template_name(self) -> str:
        if self.template:
            return self.template
        if self.array:
            return "array"
        if self.gpus or self.nodes > 1 or self.procs_per_node > 1:
            return "gpu"
        return "cpu"


def executor_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    name = env.get(EXECUTOR_ENV, "local").strip().lower() or "local"
    if name not in EXECUTORS:
        raise SystemExit(
            f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {', '.join(EXECUTORS)}"
        )
    return name


def load_resources(stage: str, path: Path | None = None) -> StageResources:
    """Resources for `stage` (`train@gpt` uses `train`'s): its entry over `default`."""
    stage = stage.split("@", 1)[0]
    path = path or Path(os.environ.get(RESOURCES_ENV, DEFAULT_RESOURCES))
    if not path.exists():
        return StageResources()
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    merged = {**(table.get("default") or {}), **(table.get(stage) or {})}
    unknown = set(merged) - set(StageResources.__dataclass_fields__)
    if unknown:
        raise SystemExit(
            f"{path}: unknown resource keys for stage {stage!r}: {sorted(unknown)}; "
            f"known: {', '.join(StageResources.__dataclass_fields__)}"
        )
    if "extra" in merged:
        merged["extra"] = tuple(str(flag) for flag in merged["extra"] or ())
    resources = StageResources(**merged)
    check_resources(resources, f"{path} ({stage})")
    return resources


def check_resources(resources: StageResources, where: str) -> None:
    """A SystemExit naming the field when a value would break the batch script."""
    for name in ("cpus", "nodes"):
        if int(getattr(resources, name)) < 1:
            raise SystemExit(f"{where}: {name} must be at least 1")
    for name in ("gpus", "procs_per_node", "array", "array_parallel", "signal_grace_s"):
        if int(getattr(resources, name)) < 0:
            raise SystemExit(f"{where}: {name} must not be negative")
    for name in ("mem", "time", "partition"):
        value = getattr(resources, name)
        if value is not None and not _NO_SPACE.match(str(value)):
            raise SystemExit(f"{where}: {name}={value!r} must be one word")
    for flag in resources.extra:
        if "\n" in flag or not flag.startswith("-"):
            raise SystemExit(
                f"{where}: extra flag {flag!r} must be one sbatch option, e.g. --qos=x"
            )
    if resources.template_name() == "array" and resources.array < 1:
        raise SystemExit(f"{where}: the array template needs `array: N` (N shard tasks)")


def template_values(
    stage: str,
    command: Sequence[str],
    workdir: Path,
    resources: StageResources,
    log_path: Path,
    exports: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """What the templates' placeholders are filled with."""
    if not _STAGE_NAME.match(stage):
        raise SystemExit(f"stage name {stage!r}: use letters, digits, '_', '-', '.' and one '@'")
    if not _NO_SPACE.match(str(log_path)):
        raise SystemExit(f"{log_path}: the Slurm log path must not contain spaces; move the repo")
    python, script = command[0], list(command[1:])
    return {
        "stage": stage,
        "job_name": f"midilm-{stage}",
        "log": log_path,
        "workdir": shlex.quote(str(workdir)),
        "command": shlex.join(command),
        "python": shlex.quote(python),
        "script": shlex.join(script),
        "cpus": resources.cpus,
        "mem": resources.mem,
        "time": resources.time,
        "gpus": resources.gpus,
        "nodes": resources.nodes,
        "procs_per_node": resources.ranks_per_node,
        "partition": resources.partition,
        "requeue": resources.requeue,
        "signal_grace_s": resources.signal_grace_s,
        "requeue_exit_code": REQUEUE_EXIT_CODE,
        "array": resources.array,
        "array_last": max(resources.array - 1, 0),
        "array_throttle": f"%{resources.array_parallel}" if resources.array_parallel else "",
        "extra_directives": "\n".join(f"#SBATCH {flag}" for flag in resources.extra),
        "exports": "\n".join(
            f"export {key}={shlex.quote(value)}" for key, value in (exports or {}).items()
        ),
    }


def sbatch_script(
    stage: str,
    command: Sequence[str],
    workdir: Path,
    resources: StageResources | None = None,
    log_path: Path | None = None,
    template: str | None = None,
    exports: Mapping[str, str] | None = None,
) -> str:
    """The batch script for one stage, rendered from its template (see templates.py).

    The command runs as a child so that SIGTERM (pre-emption, time limit, scancel) reaches it;
    a stage that checkpoints and exits with REQUEUE_EXIT_CODE has its job requeued (unless it was
    cancelled), and `sbatch --wait` keeps waiting for the requeued run.
    """
    resources = resources or StageResources()
    template = template or resources.template_name()
    if template == "gpu" and not Path(command[0]).name.startswith("python"):
        raise SystemExit(
            f"stage {stage}: the gpu template runs `python -m torch.distributed.run <script>`, "
            f"so its command must start with a python interpreter (got {command[0]!r})"
        )
    log_path = log_path or workdir / SLURM_LOG_DIR / f"{slurm_log_base(stage)}-%j.log"
    values = template_values(stage, command, workdir, resources, log_path, exports)
    return render(template_path(template, workdir), values)


def sbatch_argv(script: Path) -> list[str]:
    """`sbatch --wait`: blocks until the job (every array task) ends, exits with its code."""
    return ["sbatch", "--wait", "--parsable", str(script)]


def run_local(command: Sequence[str]) -> int:
    return subprocess.call(list(command))


def run_slurm(stage: str, command: Sequence[str], workdir: Path) -> int:
    """Submit the stage (as shards, then their merge, when it has `array: N`); its exit code."""
    resources = load_resources(stage)
    name = slurm_log_base(stage)  # foreach items run at once: one script and log name each
    log_dir = workdir / SLURM_LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    if resources.template_name() != "array":
        script = sbatch_script(stage, command, workdir, resources, log_dir / f"{name}-%j.log")
        return _submit(stage, log_dir / f"{name}.sbatch", script, f"{name}-<jobid>.log")

    shards = sbatch_script(stage, command, workdir, resources, log_dir / f"{name}-%A_%a.log")
    code = _submit(stage, log_dir / f"{name}.array.sbatch", shards, f"{name}-<jobid>_<i>.log")
    if code != 0:
        return code
    merge = sbatch_script(
        stage,
        command,
        workdir,
        resources,
        log_dir / f"{name}-%j.log",
        template="cpu",
        exports={SHARD_COUNT_ENV: str(resources.array), SHARD_MERGE_ENV: "1"},
    )
    return _submit(stage, log_dir / f"{name}.merge.sbatch", merge, f"{name}-<jobid>.log")


def _submit(stage: str, script_path: Path, script: str, log_name: str) -> int:
    script_path.write_text(script, encoding="utf-8")
    try:
        sbatch = subprocess.Popen(sbatch_argv(script_path), stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise SystemExit(
            f"{EXECUTOR_ENV}=slurm but `sbatch` is not on PATH; start a cluster with "
            "infra/slurm/start.sh or unset MIDILM_EXECUTOR to run locally"
        ) from None
    assert sbatch.stdout is not None
    job_id = sbatch.stdout.readline().strip().split(";")[0]  # --parsable: "<id>[;<cluster>]"
    print(job_id, flush=True)  # as sbatch itself would print it
    code = sbatch.wait()
    ended = job_end_states(job_id) if job_id.isdigit() else {}
    failed = sorted(state for state in ended.values() if state != "COMPLETED")
    if ended:  # the job's final state decides, not the exit code `sbatch --wait` read
        code = (code or 1) if failed else 0
    if code != 0:
        job = f"job {job_id}" if job_id else "job"
        how = f" ended {', '.join(failed)}" if failed else ""
        print(
            f"midilm: stage {stage} failed as a Slurm {job}{how} ({script_path.name}); "
            f"log: {script_path.parent}/{log_name}",
            file=sys.stderr,
        )
    return code


# The states a job (or array task) is still in while Slurm finishes it.
_UNFINISHED_STATES = {"COMPLETING", "CONFIGURING", "PENDING", "REQUEUED", "RESIZING", "RUNNING"}


def job_end_states(job_id: str) -> dict[str, str]:
    """JobId -> JobState of a job's records (one per array task) once Slurm has finished them.

    `sbatch --wait` returns as soon as the job looks finished: a job cancelled while its batch
    script still runs looks finished with exit code 0, and a job asking to be requeued can look
    finished with its first run's code before it runs again. This waits, as sbatch should, until
    no record is unfinished. Empty when scontrol no longer knows the job (MinJobAge passed).
    """
    while True:
        try:
            shown = subprocess.run(
                ["scontrol", "-o", "show", "job", job_id],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            return {}
        states = dict(re.findall(r"\bJobId=(\d+)\b.*?\bJobState=(\S+)", shown.stdout))
        if shown.returncode != 0 or not states:
            return {}
        if not _UNFINISHED_STATES & set(states.values()):
            return states
        time.sleep(1.0)


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
