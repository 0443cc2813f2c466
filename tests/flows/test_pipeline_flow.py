"""The Prefect flow on a copy of this repo with the smoke profile, every stage a Slurm job
(MIDILM_EXECUTOR=slurm through the flow's executor): the same tables and dvc.lock as the session's
plain `dvc repro`. One DAG run covers the flow and the Slurm executor; the others start from it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flows.dvc_dag import StageFailed
from flows.pipeline import midilm_pipeline
from tests import smoke_repo
from tests.smoke_repo import SmokeRun, compared_tables, differing_outputs, measured_output

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_flow_repo(
    prefect_harness, request, tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> tuple[Path, dict[str, str]]:
    request.getfixturevalue("slurm_cluster")
    repo = smoke_repo.make_smoke_repo(repo_root, tmp_path_factory.mktemp("flow_slurm"))
    outcome = midilm_pipeline(profile="smoke", executor="slurm", repo=str(repo))
    return repo, outcome


def test_the_flow_runs_every_stage_as_a_slurm_job_and_matches_dvc_repro(
    slurm_flow_repo: tuple[Path, dict[str, str]], smoke_run: SmokeRun
) -> None:
    """Byte-identical tables, the same hash for every deterministic output in dvc.lock (so a
    fresh clone of a commit reproduces its lock, whichever executor ran it), DVC status clean,
    nothing left behind on the cluster."""
    repo, outcome = slurm_flow_repo
    assert set(outcome.values()) == {"ran"}
    assert {"datasets", "train@gpt", "complexity", "report"} <= set(outcome)
    assert any(name.startswith("tokenize@") for name in outcome)
    jobs = sorted(p.name for p in (repo / "logs" / "slurm").glob("*.log"))
    assert any(name.startswith("train-") for name in jobs), jobs
    assert (repo / "logs" / "prefect" / "train@gpt.log").is_file()
    reference = smoke_run.compared_tables()
    assert len(reference) >= 12
    assert sorted(smoke_repo.tables_of(repo)) == sorted(smoke_run.tables)
    tables = compared_tables(repo)
    for name in reference:
        assert tables[name] == reference[name], f"{name} differs between two identical runs"
    differ = differing_outputs(smoke_run.repo, repo)
    assert all(measured_output(path) for path in differ), differ
    status = smoke_repo.run(["dvc", "status"], repo).stdout
    assert "up to date" in status, status
    squeue = subprocess.run(["squeue", "-h", "-n", "midilm-train"], capture_output=True, text=True)
    assert squeue.stdout.strip() == ""


def test_a_second_run_finds_everything_up_to_date(
    slurm_flow_repo: tuple[Path, dict[str, str]],
) -> None:
    """Run locally this time: the executor is not a DVC param, so switching it reruns nothing."""
    repo, _ = slurm_flow_repo
    outcome = midilm_pipeline(profile="smoke", repo=str(repo), stages=["train@gpt", "report"])
    assert outcome == {"train@gpt": "up to date", "report": "up to date"}


def test_a_failing_stage_fails_the_flow_naming_it_and_its_log(
    slurm_flow_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo = Path(shutil.copytree(slurm_flow_repo[0], tmp_path / "broken", symlinks=True))
    with pytest.raises(StageFailed, match=r"stage 'split' failed .*logs/prefect/split\.log"):
        midilm_pipeline(
            profile="smoke", overrides=["dataset.split.ratios.train=2.0"], repo=str(repo)
        )
