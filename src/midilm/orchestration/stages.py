"""The DAG's stages by name: what each runs. Stage shims, the CLI and flows all go through here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from midilm.common.params import load_params
from midilm.common.paths import Layout

StageFn = Callable[[DictConfig, Layout], None]

# Stage names are an interface (dvc.yaml, flows, the CLI); values are "module:function".
STAGES: dict[str, str] = {
    "datasets": "midilm.datasets.stage:run_datasets",
    "split": "midilm.datasets.stage:run_split",
    "augment": "midilm.augment.stage:run_augment",
    "tokenize": "midilm.tokenize.stage:run_tokenize",
    "pack": "midilm.store.stage:run_pack",
    "train": "midilm.train.stage:run_train",
    "generate": "midilm.generate.stage:run_generate",
    "evaluate": "midilm.evaluate.stage:run_evaluate",
    "complexity": "midilm.evaluate.complexity:run_complexity",
    "report": "midilm.report.stage:run_report",
}


def stage_function(name: str) -> StageFn:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    module_name, function_name = STAGES[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def run_stage(
    name: str,
    params_file: str | Path = "params.yaml",
    root: str | Path = ".",
    key: str | None = None,
) -> None:
    """Run one stage in-process with the params file and repository root given; `key` names the
    item of a DVC `foreach` stage (e.g. `tokenize@remi`), passed on as the stage's `key`."""
    extra = {} if key is None else {"key": key}
    stage_function(name)(load_params(params_file), Layout(Path(root)), **extra)
