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


def test_sbatch_submission_waits_for_the_job_and_prints_its_id(tmp_path: Path) -> None:
    script = tmp_path / "train.sbatch"
    assert launch.sbatch_argv(script) == ["sbatch", "--wait", "--parsable", str(script)]


def test_new_resource_keys_and_the_template_they_choose(tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(
        "default: {cpus: 2}\n"
        "train: {gpus: 4, nodes: 2, partition: gpu, extra: [--qos=long]}\n"
        "augment: {array: 8, array_parallel: 2}\n"
        "ddp: {procs_per_node: 2}\n"
    )
    train = launch.load_resources("train@gpt", path)
    assert (train.gpus, train.nodes, train.ranks_per_node, train.extra) == (
        4,
        2,
        4,
        ("--qos=long",),
    )
    assert train.template_name() == "gpu"
    assert launch.load_resources("augment", path).template_name() == "array"
    assert launch.load_resources("ddp", path).template_name() == "gpu"
    assert launch.load_resources("report", path).template_name() == "cpu"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("mem: 8 G", "must be one word"),
        ("cpus: 0", "at least 1"),
        ("array: -1", "must not be negative"),
        ("extra: [qos=long]", "one sbatch option"),
        ("template: array", "needs `array: N`"),
    ],
)
def test_bad_resources_are_clear_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(f"train:\n  {entry}\n")
    with pytest.raises(SystemExit, match=message):
        launch.load_resources("train", path)


def test_local_executor_runs_an_array_stage_unsharded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`array: N` is for the scheduler: a local run is the plain, unsharded stage."""
    monkeypatch.delenv(launch.EXECUTOR_ENV, raising=False)
    monkeypatch.delenv("MIDILM_SHARD_COUNT", raising=False)
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "resources.yaml").write_text("augment: {array: 4}\n")
    monkeypatch.chdir(tmp_path)
    code = "import os; open('env', 'w').write(os.environ.get('MIDILM_SHARD_COUNT', 'none'))"
    assert launch.main(["augment", "--", sys.executable, "-c", code]) == 0
    assert (tmp_path / "env").read_text() == "none"


def test_slurm_executor_without_sbatch_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(launch.EXECUTOR_ENV, "slurm")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="sbatch"):
        launch.main(["split", "--", "true"])
