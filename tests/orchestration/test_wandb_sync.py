"""`midilm wandb sync` on real offline runs written by wandb (finished and killed), with the
wandb server unreachable, as on a compute node."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midilm.cli import app
from midilm.common import wandb_sync

RUN = """
import os, sys, wandb
run = wandb.init(mode="offline", dir=sys.argv[1], project="midilm-test", config={"lr": 3e-3})
run.log({"train_loss": 2.5})
run.log({"train_loss": 2.0})
if sys.argv[2] == "finish":
    run.finish()
else:
    os.kill(os.getpid(), 9)  # a job killed mid-run: wandb never writes its exit record
"""


def _wandb_run(root: Path, how: str) -> Path:
    env = {**os.environ, "WANDB_SILENT": "true"}
    env.pop("WANDB_MODE", None)
    result = subprocess.run([sys.executable, "-c", RUN, str(root), how], env=env, check=False)
    assert result.returncode == (0 if how == "finish" else -signal.SIGKILL)
    (folder,) = (root / "wandb").glob("offline-run-*")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """models/ with a finished run under gpt/ and a killed one under rwkv6/."""
    models = tmp_path_factory.mktemp("models")
    finished = _wandb_run(models / "gpt", "finish")
    killed = _wandb_run(models / "rwkv6", "kill")
    return models, finished, killed


@pytest.fixture()
def offline_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """WANDB_BASE_URL pointing at a local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("WANDB_BASE_URL", url)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return url


def test_finds_offline_runs_and_tells_finished_from_killed(runs: tuple[Path, Path, Path]) -> None:
    models, finished, killed = runs
    found = {run.path: run for run in wandb_sync.find_offline_runs(models)}
    assert set(found) == {finished, killed}
    assert found[finished].finished and not found[finished].synced
    assert not found[killed].finished
    assert found[finished].run_id == finished.name.rsplit("-", 1)[1]


def test_without_a_connection_it_lists_the_runs_and_exits_75(
    runs: tuple[Path, Path, Path], offline_server: str
) -> None:
    models, finished, killed = runs
    result = CliRunner().invoke(app, ["wandb", "sync", "--dir", str(models)])
    assert result.exit_code == wandb_sync.NO_CONNECTION_EXIT == 75, result.output
    out = " ".join(result.output.split())
    assert f"to sync {finished}" in out and f"not finished {killed}" in out
    assert f"no connection to {offline_server}" in out and "not syncing 1 run(s)" in out
    assert "login node" in out
    assert not list(finished.glob("*.synced"))


def test_dry_run_lists_what_it_would_sync_and_succeeds(
    runs: tuple[Path, Path, Path], offline_server: str
) -> None:
    models, finished, _ = runs
    result = CliRunner().invoke(app, ["wandb", "sync", "--dir", str(models), "--dry-run"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert f"to sync {finished}" in out
    assert f"would sync 1 run(s) to {offline_server}, which is not reachable" in out


def test_synced_runs_and_empty_folders_leave_nothing_to_do(
    runs: tuple[Path, Path, Path], offline_server: str, tmp_path: Path
) -> None:
    models, finished, _ = runs
    (log,) = finished.glob("run-*.wandb")
    marker = log.with_name(log.name + ".synced")
    marker.touch()  # what `wandb sync` leaves after an upload
    try:
        result = CliRunner().invoke(app, ["wandb", "sync", "--dir", str(models)])
    finally:
        marker.unlink()
    assert result.exit_code == 0 and "nothing to sync" in result.output, result.output
    empty = CliRunner().invoke(app, ["wandb", "sync", "--dir", str(tmp_path)])
    assert empty.exit_code == 0 and "no offline wandb runs" in empty.output


def test_a_proxy_is_what_must_be_reachable() -> None:
    env = {"https_proxy": "http://127.0.0.1:9"}
    error = wandb_sync.connection_error("https://api.wandb.ai", 1.0, env)
    assert error is not None and "Connection refused" in error
