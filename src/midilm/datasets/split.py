"""The split rule: a piece's split is a pure function of its note-content hash."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

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


def assign_splits(manifest: pd.DataFrame, ratios: Mapping[str, float]) -> list[str]:
    """Each piece's split: its dataset's official split, else `split_of(content_hash)`; then
    every group of equal content takes the strictest split in it (test > valid > train), so no
    test piece has a duplicate in train, even across datasets with their own official splits."""
    official = manifest.get("official_split", pd.Series([None] * len(manifest)))
    splits = [
        str(o) if isinstance(o, str) and o else split_of(h, ratios)
        for o, h in zip(official, manifest["content_hash"], strict=True)
    ]
    strictest: dict[str, str] = {}
    for content, split in zip(manifest["content_hash"], splits, strict=True):
        current = strictest.get(content, SPLITS[0])
        strictest[content] = max(current, split, key=SPLITS.index)
    return [strictest[h] for h in manifest["content_hash"]]
