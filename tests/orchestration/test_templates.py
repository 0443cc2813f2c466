"""The sbatch templates (infra/slurm/templates): what each renders for given resources, and that
sbatch itself accepts the result (`sbatch --test-only` on the local cluster, marked slow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from midilm.orchestration import launch
from midilm.orchestration.templates import TEMPLATE_NAMES, placeholders, render, template_path

TRAIN = ["python", "-m", "midilm", "train", "gpt"]


def directives(script: str) -> list[str]:
    return re.findall(r"^#SBATCH (\S+)$", script, flags=re.MULTILINE)


def render_stage(
    tmp_path: Path, resources: launch.StageResources, stage: str = "train@gpt", **kwargs: object
) -> str:
    command = kwargs.pop("command", TRAIN)
    log = tmp_path / "logs" / f"{stage.replace('@', '-')}-%j.log"
    return launch.sbatch_script(stage, command, tmp_path, resources, log, **kwargs)  # type: ignore[arg-type]


def test_every_placeholder_of_every_template_has_a_value(tmp_path: Path) -> None:
    values = launch.template_values("x", TRAIN, tmp_path, launch.StageResources(), tmp_path)
    for name in TEMPLATE_NAMES:
        assert placeholders(template_path(name, tmp_path)) <= set(values), name


def test_cpu_template_asks_for_the_stage_resources(tmp_path: Path) -> None:
    resources = launch.StageResources(
        cpus=4, mem="16G", time="02:00:00", partition="long", extra=("--qos=big", "--account=m")
    )
    script = render_stage(tmp_path, resources, stage="tokenize@remi")
    assert directives(script) == [
        "--job-name=midilm-tokenize@remi",
        f"--output={tmp_path}/logs/tokenize-remi-%j.log",
        "--export=ALL",
        "--open-mode=append",  # a requeued run appends to the log
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=4",
        "--mem=16G",
        "--time=02:00:00",
        "--partition=long",
        "--qos=big",
        "--account=m",
    ]
    assert f"cd {tmp_path}\n" in script and "\npython -m midilm train gpt &\n" in script
    assert "requeue_enabled=0\n" in script and script.rstrip().endswith('exit "$rc"')
    assert "{{" not in script and 'WANDB_MODE="${MIDILM_JOB_WANDB_MODE:-offline}"' in script


def test_training_template_requeues_and_warns_before_the_time_limit(tmp_path: Path) -> None:
    script = render_stage(tmp_path, launch.StageResources(requeue=True, signal_grace_s=90))
    assert {"--requeue", "--signal=B:TERM@90"} <= set(directives(script))
    assert "requeue_enabled=1\n" in script and '[ "$rc" -eq 75 ]' in script
    assert '[ "$state" = RUNNING ]' in script  # never requeue a job that was scancel-ed


def test_gpu_template_runs_torchrun_on_every_node(tmp_path: Path) -> None:
    resources = launch.StageResources(
        cpus=16, mem="200G", gpus=4, nodes=2, partition="gpu", requeue=True, signal_grace_s=300
    )
    script = render_stage(tmp_path, resources, command=["/venv/bin/python", *TRAIN[1:]])
    assert directives(script) == [
        "--job-name=midilm-train@gpt",
        f"--output={tmp_path}/logs/train-gpt-%j.log",
        "--export=ALL",
        "--open-mode=append",  # a requeued run appends to the log
        "--nodes=2",
        "--ntasks-per-node=1",
        "--cpus-per-task=16",
        "--mem=200G",
        "--time=01:00:00",
        "--gres=gpu:4",
        "--partition=gpu",
        "--requeue",
        "--signal=B:TERM@300",
    ]
    srun = script.split("\nsrun ", 1)[1].split(" &\n", 1)[0]
    launcher = " ".join(srun.replace("\\\n", " ").split())
    assert launcher.startswith(
        '--nodes="$SLURM_NNODES" --ntasks="$SLURM_NNODES" --ntasks-per-node=1'
    )
    assert (
        '/venv/bin/python -m torch.distributed.run --nnodes="$SLURM_NNODES" --nproc_per_node=4 '
        '--rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$head_node:$rdzv_port" '
        "-m midilm train gpt"
    ) in launcher
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)' in script
    assert "scancel --signal=TERM" in script and "requeue_enabled=1\n" in script


def test_gpu_template_without_gpus_runs_cpu_ranks(tmp_path: Path) -> None:
    script = render_stage(tmp_path, launch.StageResources(procs_per_node=2))
    assert not any(d.startswith("--gres") for d in directives(script))
    assert "--nproc_per_node=2" in script


def test_gpu_template_needs_a_python_command(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="must start with a python interpreter"):
        render_stage(tmp_path, launch.StageResources(gpus=1), command=["bash", "train.sh"])


def test_array_template_fans_out_shards(tmp_path: Path) -> None:
    resources = launch.StageResources(cpus=1, array=8, array_parallel=3)
    script = launch.sbatch_script(
        "augment",
        ["python", "-m", "midilm", "augment"],
        tmp_path,
        resources,
        tmp_path / "a-%A_%a.log",
    )
    assert "--array=0-7%3" in directives(script)
    assert f"--output={tmp_path}/a-%A_%a.log" in directives(script)
    assert 'MIDILM_SHARD_INDEX="${SLURM_ARRAY_TASK_ID:?not an array task}"' in script
    assert "MIDILM_SHARD_COUNT=8" in script and "unset MIDILM_SHARD_MERGE" in script


def test_merge_job_is_the_cpu_template_with_the_merge_environment(tmp_path: Path) -> None:
    script = render_stage(
        tmp_path,
        launch.StageResources(array=4),
        stage="augment",
        template="cpu",
        exports={"MIDILM_SHARD_COUNT": "4", "MIDILM_SHARD_MERGE": "1"},
    )
    assert "export MIDILM_SHARD_COUNT=4\nexport MIDILM_SHARD_MERGE=1\n" in script
    assert not any(d.startswith("--array") for d in directives(script))


def test_guards_and_missing_values(tmp_path: Path) -> None:
    template = tmp_path / "t.sbatch"
    template.write_text("#SBATCH --a={{a}}  {{?a}}\n{{block}}\nx={{b}}\n")
    assert render(template, {"a": None, "block": "", "b": True}) == "x=1\n"
    assert render(template, {"a": 3, "block": "l1\nl2", "b": 0}) == "#SBATCH --a=3\nl1\nl2\nx=0\n"
    with pytest.raises(KeyError, match=r"t.sbatch:3: no value for placeholder 'b'"):
        render(template, {"a": 1, "block": ""})


def test_the_launcher_writes_the_rendered_script_it_submits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fake `sbatch` on PATH records what it was given: the script from the template."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\necho 42\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv(launch.EXECUTOR_ENV, "slurm")
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "resources.yaml").write_text("augment: {array: 3, cpus: 1}\n")
    monkeypatch.chdir(tmp_path)
    assert launch.main(["augment", "--", sys.executable, "-m", "midilm", "augment"]) == 0
    logs = tmp_path / "logs" / "slurm"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        f"--wait --parsable {logs}/augment.array.sbatch",
        f"--wait --parsable {logs}/augment.merge.sbatch",
    ]
    assert "--array=0-2" in directives((logs / "augment.array.sbatch").read_text())
    assert "MIDILM_SHARD_MERGE=1" in (logs / "augment.merge.sbatch").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "resources",
    [
        launch.StageResources(cpus=1, mem="1G", requeue=True, signal_grace_s=60),
        launch.StageResources(cpus=1, mem="1G", array=4, array_parallel=2),
        launch.StageResources(cpus=2, mem="1G", procs_per_node=2, requeue=True),
    ],
    ids=["cpu", "array", "gpu-template-on-cpus"],
)
def test_slurm_accepts_the_rendered_scripts(
    slurm_cluster: None, tmp_path: Path, resources: launch.StageResources
) -> None:
    script = tmp_path / "job.sbatch"
    script.write_text(render_stage(tmp_path, resources, command=[sys.executable, "x.py"]))
    result = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
    assert result.returncode == 0 and "to start at" in result.stderr, result.stderr


@pytest.mark.slow
def test_slurm_parses_the_gpu_request_and_only_lacks_the_gpus(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """This cluster has no GPUs: sbatch rejects exactly the gres, after parsing everything."""
    script = tmp_path / "job.sbatch"
    resources = launch.StageResources(cpus=1, mem="1G", gpus=2, requeue=True, signal_grace_s=60)
    script.write_text(render_stage(tmp_path, resources, command=[sys.executable, "x.py"]))
    result = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
    assert result.returncode != 0 and "Invalid generic resource (gres)" in result.stderr
    without_gpus = script.read_text().replace("#SBATCH --gres=gpu:2\n", "")
    script.write_text(without_gpus)
    result = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
