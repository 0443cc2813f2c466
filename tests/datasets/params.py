"""Params for datasets tests, built in code over conf/dataset/base.yaml as Hydra composes a
dataset file (real music comes from music21 and shared/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from midilm.datasets.sources import ReadRules
from midilm.specs.dataset import DatasetSpec, SourceSpec, dataset_spec

BASE = Path(__file__).resolve().parents[2] / "conf" / "dataset" / "base.yaml"


def base_dataset() -> dict[str, Any]:
    return yaml.safe_load(BASE.read_text(encoding="utf-8"))


def make_params(
    sources: dict[str, Any] | None = None,
    folders: dict[str, Any] | None = None,
    **dataset: Any,
) -> DictConfig:
    """`params` with only a `dataset` section: conf/dataset/base.yaml with these keys merged
    over it (mappings such as `filters` merge key by key), as Hydra composes a dataset file."""
    cfg = OmegaConf.merge(
        OmegaConf.create(base_dataset()),
        OmegaConf.create({"name": "test", "sources": sources or {}, "folders": folders or {}}),
        OmegaConf.create(dataset),
    )
    return OmegaConf.create({"dataset": cfg})


def make_spec(**kwargs: Any) -> DatasetSpec:
    return dataset_spec(make_params(**kwargs), "tests")


def rules(**kwargs: Any) -> ReadRules:
    return ReadRules.of(make_spec(**kwargs))


def source(**kwargs: Any) -> SourceSpec:
    return SourceSpec(**kwargs)
