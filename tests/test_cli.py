"""The `midilm` command: a command with help for every stage of dvc.yaml, which runs exactly
that command; `datasets list` shows the embedded sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def _midilm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midilm", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def _stage_commands(repo_root: Path) -> dict[str, list[str]]:
    """Stage name -> the `midilm ...` arguments its dvc.yaml command runs (after the launcher)."""
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    commands = {}
    for name, stage in stages.items():
        cmd = (stage.get("do") or stage)["cmd"]
        launcher, _, command = cmd.partition(" -- ")
        assert launcher.startswith(f"python -m midilm.orchestration.launch {name}"), cmd
        words = command.split()
        assert words[:3] == ["python", "-m", "midilm"], cmd
        commands[name] = [w for w in words[3:] if not w.startswith("${")]
    return commands


def test_every_dvc_stage_runs_a_midilm_command_that_has_help(repo_root: Path) -> None:
    commands = _stage_commands(repo_root)
    assert {"datasets", "train", "generate", "report"} <= set(commands)
    listed = _midilm("--help")
    assert listed.returncode == 0, listed.stderr
    for name, args in commands.items():
        assert args[0] in listed.stdout
        result = _midilm(*args, "--help")
        assert result.returncode == 0 and "--params" in result.stdout, (name, result.stderr)
        assert f"Stage `{name}" in " ".join(result.stdout.split()), (name, result.stdout)


def test_datasets_list_shows_the_embedded_sources(repo_root: Path) -> None:
    result = _midilm("datasets", "list", cwd=repo_root)
    assert result.returncode == 0, result.stderr
    for name in ("bach_chorales", "oneills1850", "essen_folksong"):
        assert name in result.stdout
    assert "available" in result.stdout
