"""The conf/model/<key>.yaml entries as the DAG composes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf


@pytest.fixture(scope="session")
def conf_entry(repo_root: Path) -> Callable[..., dict[str, Any]]:
    """conf/model/<key>.yaml as a plain entry, `${tokenizer.name}` resolved to `remi`."""

    def load(key: str, size: str | None = None) -> dict[str, Any]:
        model = OmegaConf.load(repo_root / "conf" / "model" / f"{key}.yaml")
        root = OmegaConf.create({"tokenizer": {"name": "remi"}, "model": model})
        entry = OmegaConf.to_container(root, resolve=True)["model"]
        if size:
            entry["size"] = size
        return entry

    return load
