"""The smoke profile in a fresh copy of this repo: what the end-to-end tests share.

Every copy is committed with fixed author and dates, so copies of one working tree have one
commit, and the tables' provenance lines agree between runs in different copies.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from midilm.report.builders import is_measured

GIT_ENV = {
    "GIT_AUTHOR_NAME": "midilm-test",
    "GIT_AUTHOR_EMAIL": "test@midilm.invalid",
    "GIT_COMMITTER_NAME": "midilm-test",
    "GIT_COMMITTER_EMAIL": "test@midilm.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
}


@dataclass(frozen=True)
class SmokeRun:
    """A smoke repo after `dvc repro`, and its tables as that first run wrote them."""

    repo: Path
    tables: dict[str, bytes]

    def compared_tables(self) -> dict[str, bytes]:
        return deterministic(self.tables)


def deterministic(tables: dict[str, bytes]) -> dict[str, bytes]:
    """The tables a second run must reproduce byte for byte (all but the measured ones)."""
    return {name: data for name, data in tables.items() if not is_measured(name.split(".")[0])}


def env() -> dict[str, str]:
    """This environment without executor or git settings, progress bars off, fixed git identity."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MIDILM_EXECUTOR", "GIT_"))}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    clean["MIDILM_NO_PROGRESS"] = "1"
    clean.update(GIT_ENV)
    return clean


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def make_smoke_repo(source: Path, dest: Path) -> Path:
    """Copy the tracked and untracked-not-ignored files, compose the smoke profile, commit."""
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listing.split("\0")):
        src = source / name
        if src.is_file() and not name.startswith("reports/tables/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    run([sys.executable, "-m", "midilm.cli", "params", "compose", "profile=smoke"], dest)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "smoke"], dest)
    return dest


def tables_of(repo: Path) -> dict[str, bytes]:
    """Every file of reports/tables by name."""
    return {p.name: p.read_bytes() for p in sorted((repo / "reports" / "tables").iterdir())}


def compared_tables(repo: Path) -> dict[str, bytes]:
    return deterministic(tables_of(repo))


def read_table(repo: Path, name: str) -> list[dict[str, str]]:
    text = (repo / "reports" / "tables" / f"{name}.csv").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(rows))))


def lock_outputs(repo: Path) -> dict[str, str]:
    """Output path -> its hash in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        out["path"]: out.get("md5") or out.get("hash", "")
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


def measured_output(path: str) -> bool:
    """Wall-clock measurements: the speed files, the complexity timings, the report's tables and
    the site that shows them (T7 and the `*_speed` tables are pages of it)."""
    return path.startswith(("outputs/speed/", "reports/tables", "reports/site")) or path.endswith(
        ("speed.json", "complexity.json")
    )


def differing_outputs(first: Path, second: Path) -> list[str]:
    """The outputs whose dvc.lock hashes differ between two runs' repos (the same outputs)."""
    a, b = lock_outputs(first), lock_outputs(second)
    assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())
    return sorted(path for path in a if a[path] != b[path])
