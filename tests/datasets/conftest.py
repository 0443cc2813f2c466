"""Datasets tests: small params built in code (real music comes from music21 and shared/)."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

RATIOS = {"train": 0.8, "valid": 0.1, "test": 0.1}


def make_params(
    sources: dict[str, Any] | None = None,
    folders: dict[str, Any] | None = None,
    **dataset: Any,
) -> DictConfig:
    """`params` with only a `dataset` section, like conf/dataset/music21_default.yaml."""
    cfg: dict[str, Any] = {
        "sources": sources or {},
        "folders": folders or {},
        "filters": {"min_notes": 8, "max_duration_s": 1800, "max_tracks": 64},
        "workers": 2,
        "timeout_s": 60,
        "split": {"ratios": dict(RATIOS)},
    }
    cfg.update(dataset)
    return OmegaConf.create({"dataset": cfg})


@pytest.fixture
def params_factory():
    return make_params
