"""The `evaluate` and `complexity` groups (conf/evaluate/default.yaml, conf/complexity/*.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from midilm.common.spec import from_mapping, section

MUSIC21_UNITS = 12  # music21's quantization grid: positions per quarter note


@dataclass(frozen=True)
class FeatureSpec:
    """Parameters of the per-piece metrics (conf/evaluate/default.yaml, `features`)."""

    groove_positions_per_beat: int  # onset grid of groove consistency, per quarter note
    bar_quarters_range: tuple[float, float]  # a time signature's bar is used within this range
    fallback_bar_quarters: float  # bar length otherwise (a pop corpus declaring 1/4 gets 4/4)

    def __post_init__(self) -> None:
        low, high = self.bar_quarters_range
        if self.groove_positions_per_beat < 1:
            raise ValueError(f"groove_positions_per_beat must be >= 1: {self}")
        if not 0 < low <= high or self.fallback_bar_quarters <= 0:
            raise ValueError(f"bar_quarters_range must be 0 < low <= high: {self}")


@dataclass(frozen=True)
class Seed001Spec:
    """Parameters of seed 001's metrics (conf/evaluate/default.yaml, `seed001`)."""

    max_quarter_length: float | None  # score the first N quarter notes (null: whole pieces)
    key_window_beats: float  # midilm key changes: window length in quarter notes

    def __post_init__(self) -> None:
        if self.key_window_beats <= 0:
            raise ValueError(f"key_window_beats must be > 0, got {self.key_window_beats}")
        if self.max_quarter_length is not None:
            units = self.max_quarter_length * MUSIC21_UNITS
            if self.max_quarter_length <= 0 or abs(units - round(units)) > 1e-9:
                raise ValueError(
                    "max_quarter_length must be a positive multiple of 1/12 quarter note "
                    f"(music21's grid), got {self.max_quarter_length}"
                )

    @property
    def max_units(self) -> int | None:
        if self.max_quarter_length is None:
            return None
        return round(self.max_quarter_length * MUSIC21_UNITS)


@dataclass(frozen=True)
class DistributionSpec:
    """Parameters of the set-level comparison (conf/evaluate/default.yaml, `distribution`)."""

    features: tuple[str, ...]  # compared one by one (a name may be a vector: name_0, name_1...)
    headline_features: tuple[str, ...]  # mean OA over these is the headline number
    fd_features: tuple[str, ...]  # columns of the FD-features vector
    grid_points: int  # KDE evaluation grid
    max_pairs: int  # distances per distribution; more pairs are sampled (seeded)
    seed: int
    min_pieces: int  # fewer defined values on a side: OA and KL are nan

    def __post_init__(self) -> None:
        if self.grid_points < 16 or self.max_pairs < 10 or self.min_pieces < 2:
            raise ValueError(f"grid_points >= 16, max_pairs >= 10, min_pieces >= 2: {self}")
        missing = sorted(set(self.headline_features) - set(self.features))
        if missing:
            raise ValueError(f"headline_features {missing} are not in features {self.features}")


@dataclass(frozen=True)
class MetricsSpec:
    """The `evaluate.metrics` group: everything the piece and set metrics need."""

    features: FeatureSpec
    seed001: Seed001Spec
    distribution: DistributionSpec
    workers: int  # processes analysing files (results do not depend on it)

    @classmethod
    def from_params(cls, cfg: Mapping[str, Any]) -> MetricsSpec:
        """From the `evaluate.metrics` mapping of params.yaml."""
        return from_mapping(cls, cfg, "conf/evaluate/default.yaml (metrics)")


@dataclass(frozen=True)
class EvaluateSpec:
    max_reference_pieces: int  # test-split pieces analysed as the reference (null-free: a cap)
    metrics: MetricsSpec


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
