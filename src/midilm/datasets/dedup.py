"""Deduplication by note content, before splitting, within and across datasets.

The dedup key is one named function: the note-content hash (`exact`) or its transposition-
invariant twin (`transposition`). Of each group of equal keys the first piece by (official split
priority test > valid > train > none, then id) is kept, so a duplicate of a test piece never
stays in train; the others go to the dedup report (they are not bad files).
"""

from __future__ import annotations

import pandas as pd

DEDUP_MODES = ("none", "exact", "transposition")
SPLIT_PRIORITY = {"test": 0, "valid": 1, "train": 2}
DEDUP_COLUMNS = [
    "id", "dataset", "source", "official_split", "duplicate_of", "key", "duration_s", "n_notes",
    "official_duration_s",
]  # fmt: skip


def dedup_key(mode: str) -> str | None:
    """The manifest column equal pieces share under `mode` (None: no dedup)."""
    if mode not in DEDUP_MODES:
        raise ValueError(f"dataset.dedup.mode: {mode!r} is not one of {list(DEDUP_MODES)}")
    return {"none": None, "exact": "content_hash", "transposition": "transposition_hash"}[mode]


def keep_order(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest in keep-first order: official split priority, then id."""
    priority = manifest["official_split"].map(SPLIT_PRIORITY).fillna(len(SPLIT_PRIORITY))
    return manifest.assign(_priority=priority).sort_values(["_priority", "id"], kind="stable")


def deduplicate(manifest: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept manifest sorted by id, dedup report sorted by id)."""
    key = dedup_key(mode)
    if key is None or manifest.empty:
        return manifest, pd.DataFrame(columns=DEDUP_COLUMNS)
    ordered = keep_order(manifest)
    first = ordered.groupby(key, sort=False)["id"].transform("first")
    dropped = ordered[ordered["id"] != first]
    report = pd.DataFrame(
        {
            "id": dropped["id"],
            "dataset": dropped["dataset"],
            "source": dropped["source"],
            "official_split": dropped["official_split"],
            "duplicate_of": first[dropped.index],
            "key": dropped[key],
            "duration_s": dropped["duration_s"],
            "n_notes": dropped["n_notes"],
            "official_duration_s": dropped.get("official_duration_s"),
        }
    ).sort_values("id", ignore_index=True)
    kept = manifest[~manifest["id"].isin(set(report["id"]))]
    return kept.reset_index(drop=True), report
