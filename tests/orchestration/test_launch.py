"""The executor seam: local runs propagate exit codes; Slurm submissions are built from infra/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from midilm.orchestration import launch


def test_local_executor_runs_the_command_and_propagates_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(launch.EXECUTOR_ENV, raising=False)
    marker = tmp_path / "ran"
    ok = launch.main(["train", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    assert ok == 0 and marker.exists()
    assert launch.main(["train", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3


def test_executor_comes_from_the_environment() -> None:
    assert launch.executor_name({}) == "local"
    assert launch.executor_name({launch.EXECUTOR_ENV: "SLURM"}) == "slurm"
    with pytest.raises(SystemExit, match="not an executor"):
        launch.executor_name({launch.EXECUTOR_ENV: "kubernetes"})


def test_stage_resources_merge_default_and_stage_entries(repo_root: Path) -> None:
    resources = launch.load_resources("train", repo_root / "infra" / "resources.yaml")
    assert resources.cpus == 2 and resources.mem == "8G" and resources.time == "04:00:00"
    fallback = launch.load_resources("report", repo_root / "infra" / "resources.yaml")
    assert fallback.time == "00:30:00"


def test_unknown_resource_key_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text("train:\n  gpu: 1\n")
    with pytest.raises(SystemExit, match="unknown resource keys"):
        launch.load_resources("train", path)


def test_sbatch_submission_waits_and_asks_for_the_stage_resources(tmp_path: Path) -> None:
    resources = launch.StageResources(cpus=4, mem="16G", time="02:00:00", gpus=2, partition="gpu")
    argv = launch.sbatch_argv("train", resources, tmp_path / "train-%j.log")
    assert argv[:3] == ["sbatch", "--wait", "--parsable"]
    assert "--gres=gpu:2" in argv and "--partition=gpu" in argv
    assert "--cpus-per-task=4" in argv and "--mem=16G" in argv and "--time=02:00:00" in argv
    script = launch.sbatch_script("train", ["python", "stages/train.py"], tmp_path)
    assert f"cd {tmp_path}" in script and "python stages/train.py &" in script
    assert "scontrol requeue" in script and script.rstrip().endswith("exit $rc")
    requeued = launch.sbatch_argv(
        "train", launch.StageResources(requeue=True, signal_grace_s=90), tmp_path
    )
    assert "--requeue" in requeued and "--signal=B:TERM@90" in requeued


def test_slurm_executor_without_sbatch_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(launch.EXECUTOR_ENV, "slurm")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="sbatch"):
        launch.main(["split", "--", "true"])
