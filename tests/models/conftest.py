"""The models of params.yaml as the DAG resolves them (`midilm.specs.model_spec`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from midilm.common.params import load_params, to_plain
from midilm.specs import ModelSpec, model_spec


@pytest.fixture(scope="session")
def conf_spec(repo_root: Path) -> Callable[..., ModelSpec]:
    """conf_spec(key, size=None): model `key` of the committed params.yaml (at `size`)."""
    params = to_plain(load_params(repo_root / "params.yaml"))

    def load(key: str, size: str | None = None) -> ModelSpec:
        models = {k: dict(v) for k, v in params["models"].items()}
        if size:
            models[key]["size"] = size
        return model_spec({**params, "models": models}, key)

    return load
