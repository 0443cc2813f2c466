"""The `evaluate` and `complexity` groups (conf/evaluate/default.yaml, conf/complexity/*.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from midilm.common.spec import from_mapping, section


@dataclass(frozen=True)
class EvaluateSpec:
    max_reference_pieces: int  # test-split pieces scored as the reference row
    key_window_measures: int
    max_quarter_length: float
    workers: int


@dataclass(frozen=True)
class ComplexitySpec:
    families: tuple[str, ...]  # keys of `models`
    contexts: tuple[int, ...]
    vocab_size: int
    repeats: int
    device: str
    threads: int


def evaluate_spec(params: Mapping[str, Any]) -> EvaluateSpec:
    group = section(params, "evaluate", where="conf/evaluate")
    return from_mapping(EvaluateSpec, group, "conf/evaluate/default.yaml")


def complexity_spec(params: Mapping[str, Any]) -> ComplexitySpec:
    group = section(params, "complexity", where="conf/complexity")
    return from_mapping(ComplexitySpec, group, "conf/complexity/*.yaml")
