"""The `midilm` command lists a command per stage and runs `datasets list`."""

from __future__ import annotations

import subprocess
import sys

from midilm.orchestration.stages import STAGES


def _midilm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midilm.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_help_lists_every_stage() -> None:
    result = _midilm("--help")
    assert result.returncode == 0, result.stderr
    for stage in STAGES:
        assert stage in result.stdout


def test_every_stage_command_has_help() -> None:
    for stage in STAGES:
        args = ["datasets", "build", "--help"] if stage == "datasets" else [stage, "--help"]
        result = _midilm(*args)
        assert result.returncode == 0 and "--params" in result.stdout, (stage, result.stderr)


def test_datasets_list_shows_the_embedded_sources(repo_root) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "midilm.cli", "datasets", "list"],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in ("bach_chorales", "oneills1850", "essen_folksong"):
        assert name in result.stdout
    assert "available" in result.stdout
