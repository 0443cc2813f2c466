"""The Prefect flow on a copy of this repo with the smoke profile: same tables as `dvc repro`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flows.dvc_dag import StageFailed
from flows.pipeline import midilm_pipeline
from tests import smoke_repo
from tests.smoke_repo import SmokeRun, compared_tables

pytestmark = pytest.mark.slow


def assert_dvc_status_clean(repo: Path) -> None:
    status = smoke_repo.run(["dvc", "status"], repo).stdout
    assert "up to date" in status, status


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """One smoke copy of this repo, committed, never run: every run below starts from a copy of it,
    so all runs see the same files and the same commit (the tables' provenance line)."""
    return smoke_repo.make_smoke_repo(repo_root, tmp_path_factory.mktemp("pristine"))


def fresh_copy(pristine: Path, dest: Path) -> Path:
    return Path(shutil.copytree(pristine, dest, symlinks=True))


@pytest.fixture(scope="module")
def direct_tables(smoke_run: SmokeRun) -> dict[str, bytes]:
    """The smoke tables of a plain `dvc repro` (the session's smoke run), the reference."""
    return smoke_run.compared_tables()


@pytest.fixture(scope="module")
def flow_repo(
    prefect_harness, tmp_path_factory: pytest.TempPathFactory, pristine: Path
) -> tuple[Path, dict[str, str]]:
    repo = fresh_copy(pristine, tmp_path_factory.mktemp("flow") / "repo")
    outcome = midilm_pipeline(profile="smoke", repo=str(repo))
    return repo, outcome


def test_the_flow_runs_every_stage_and_matches_dvc_repro(flow_repo, direct_tables) -> None:
    repo, outcome = flow_repo
    assert set(outcome.values()) == {"ran"}
    assert {"datasets", "train@gpt", "complexity", "report"} <= set(outcome)
    assert any(name.startswith("tokenize@") for name in outcome)
    assert len(direct_tables) >= 12
    assert compared_tables(repo) == direct_tables
    assert_dvc_status_clean(repo)
    assert (repo / "logs" / "prefect" / "train@gpt.log").is_file()


def test_a_second_run_finds_everything_up_to_date(flow_repo) -> None:
    repo, _ = flow_repo
    outcome = midilm_pipeline(profile="smoke", repo=str(repo), stages=["train@gpt", "report"])
    assert outcome == {"train@gpt": "up to date", "report": "up to date"}


def test_a_failing_stage_fails_the_flow_naming_it_and_its_log(flow_repo, tmp_path: Path) -> None:
    repo = fresh_copy(flow_repo[0], tmp_path / "broken")
    with pytest.raises(StageFailed, match=r"stage 'split' failed .*logs/prefect/split\.log"):
        midilm_pipeline(
            profile="smoke", overrides=["dataset.split.ratios.train=2.0"], repo=str(repo)
        )


def test_the_flow_runs_the_smoke_dag_as_slurm_jobs(
    prefect_harness, request, tmp_path: Path, pristine: Path, direct_tables
) -> None:
    request.getfixturevalue("slurm_cluster")
    repo = fresh_copy(pristine, tmp_path / "repo")
    outcome = midilm_pipeline(profile="smoke", executor="slurm", repo=str(repo))
    assert set(outcome.values()) == {"ran"}
    jobs = sorted(p.name for p in (repo / "logs" / "slurm").glob("*.log"))
    assert any(name.startswith("train-") for name in jobs), jobs
    assert compared_tables(repo) == direct_tables
    assert_dvc_status_clean(repo)
    squeue = subprocess.run(["squeue", "-h", "-n", "midilm-train"], capture_output=True, text=True)
    assert squeue.stdout.strip() == ""  # nothing left behind on the cluster
