"""The `augment` group (conf/augment/*.yaml): which transforms, their ranges, how many copies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from midilm.common.spec import ConfigError, from_mapping, section


@dataclass(frozen=True)
class TransposeSpec:
    enabled: bool
    mode: Literal["random", "all_keys"]  # one shift per copy | a copy per shift
    min_semitones: int
    max_semitones: int
    pitch_range: tuple[int, int]  # [low, high): pitches stay inside


@dataclass(frozen=True)
class ModulationSpec:
    enabled: bool
    probability: float
    min_semitones: int
    max_semitones: int
    min_fraction: float
    max_fraction: float
    bar_aligned: bool


@dataclass(frozen=True)
class TempoSpec:
    enabled: bool
    min_factor: float
    max_factor: float


@dataclass(frozen=True)
class VelocitySpec:
    enabled: bool
    jitter: int


@dataclass(frozen=True)
class AugmentSpec:
    """params.yaml's `augment` group, plus the run seed."""

    seed: int
    name: str
    multiplicity: int
    transpose: TransposeSpec
    modulation: ModulationSpec
    tempo: TempoSpec
    velocity: VelocitySpec

    def __post_init__(self) -> None:
        problems = []
        t, m, tempo = self.transpose, self.modulation, self.tempo
        if self.multiplicity < 0 or t.min_semitones > t.max_semitones:
            problems.append("multiplicity >= 0 and transpose.min_semitones <= max_semitones")
        if m.min_semitones > m.max_semitones:
            problems.append("modulation.min_semitones <= max_semitones")
        if not 0 < m.min_fraction <= m.max_fraction <= 1:
            problems.append("0 < modulation.min_fraction <= max_fraction <= 1")
        if not 0 < tempo.min_factor <= tempo.max_factor:
            problems.append("0 < tempo.min_factor <= max_factor")
        if problems:
            raise ConfigError(f"conf/augment: need {'; '.join(problems)}")

    def copy_shifts(self) -> list[int | None]:
        """One entry per copy: the forced transposition (all_keys mode) or None (random)."""
        t = self.transpose
        if t.enabled and t.mode == "all_keys":
            return [k for k in range(t.min_semitones, t.max_semitones + 1) if k != 0]
        return [None] * self.multiplicity


def augment_spec(params: Mapping[str, Any]) -> AugmentSpec:
    group = section(params, "augment", where="conf/augment")
    return from_mapping(AugmentSpec, group, "conf/augment/*.yaml", seed=int(params["seed"]))
