"""The split rule: a piece's split is a pure function of its note-content hash."""

from __future__ import annotations

from collections.abc import Mapping

SPLITS = ("train", "valid", "test")
HASH_DIGITS = 8  # leading hex digits read as a number in [0, 1)


def validate_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """Check `dataset.split.ratios`: exactly train/valid/test, each >= 0, summing to 1."""
    names = set(ratios)
    if names != set(SPLITS):
        raise ValueError(
            f"dataset.split.ratios: names must be exactly {list(SPLITS)}, got {sorted(names)}; "
            "fix conf/dataset/*.yaml or the -S override"
        )
    values = {name: float(ratios[name]) for name in SPLITS}
    if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1.0) > 1e-6:
        raise ValueError(
            f"dataset.split.ratios: {values} must be >= 0 and sum to 1 "
            f"(they sum to {sum(values.values()):g})"
        )
    return values


def hash_fraction(content_hash: str) -> float:
    """The hash's first 8 hex digits as a number in [0, 1)."""
    return int(content_hash[:HASH_DIGITS], 16) / 16**HASH_DIGITS


def split_of(content_hash: str, ratios: Mapping[str, float]) -> str:
    """train if x < r_train, valid if x < r_train + r_valid, else test (x = hash_fraction)."""
    values = validate_ratios(ratios)
    x, cumulative = hash_fraction(content_hash), 0.0
    for name in SPLITS[:-1]:
        cumulative += values[name]
        if x < cumulative:
            return name
    return SPLITS[-1]
