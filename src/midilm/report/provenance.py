"""Where a table came from: the git commit, a hash of the params and a hash of the data."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from midilm.common.hashing import combined_hash, stable_json_hash
from midilm.common.params import to_plain
from midilm.common.paths import Layout


@dataclass(frozen=True)
class Provenance:
    git: str
    params: str
    data: str

    def text(self) -> str:
        """`git <commit>, params <hash12>, data <hash12>` (no timestamp)."""
        return f"git {self.git}, params {self.params[:12]}, data {self.data[:12]}"

    def line(self) -> str:
        return f"Provenance: {self.text()}"


def git_commit(root: Path) -> str:
    """`git rev-parse HEAD` in `root`, or "no-git" outside a repository (or without git)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
        )
    except OSError:
        return "no-git"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "no-git"


def data_hash(layout: Layout) -> str:
    """combined_hash of the raw manifest's content_hash column (the split manifest if absent)."""
    for path in (layout.raw_manifest, layout.split_manifest):
        if path.exists():
            hashes = pd.read_parquet(path, columns=["content_hash"])["content_hash"]
            return combined_hash(str(h) for h in hashes)
    return "no-data"


def collect_provenance(params: Mapping[str, Any] | DictConfig, layout: Layout) -> Provenance:
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    return Provenance(git_commit(layout.root), stable_json_hash(plain), data_hash(layout))
