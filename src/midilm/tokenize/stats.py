"""stats.json of a tokenizer's sequences: counts, tokens per note and per second, length
percentiles, per split; deterministic (no timings: those go to the stage's speed file)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from midilm.tokenize.base import MusicTokenizer

SPLITS = ("train", "valid", "test")


def sequence_stats(
    name: str,
    tokenizer: MusicTokenizer,
    rows: pd.DataFrame,
    lengths: np.ndarray,
    failed: list[dict[str, str]],
) -> dict[str, Any]:
    """`rows`: the piece row of each sequence (a piece cut in segments has several); notes and
    durations count each piece once."""
    pieces = rows.drop_duplicates("id")
    tokens = int(lengths.sum())
    notes = int(pieces["n_notes"].astype(np.int64).sum())
    duration = math.fsum(pieces["duration_s"].astype(float))
    split = rows["split"].to_numpy()
    per_split = {}
    for s in SPLITS:
        own = pieces[pieces["split"] == s]
        per_split[s] = {
            "sequences": int((split == s).sum()),
            "tokens": int(lengths[split == s].sum()),
            "notes": int(own["n_notes"].astype(np.int64).sum()),
        }
    return {
        "tokenizer": name,
        "vocab_size": int(tokenizer.vocab_size),
        "pieces": len(pieces),
        "sequences": len(lengths),
        "tokens": tokens,
        "notes": notes,
        "duration_s": _r(duration),
        "tokens_per_note": _r(tokens / notes) if notes else None,
        "tokens_per_second": _r(tokens / duration) if duration else None,
        "seq_len_p50": _r(float(np.percentile(lengths, 50))) if lengths.size else None,
        "seq_len_p95": _r(float(np.percentile(lengths, 95))) if lengths.size else None,
        "failed": sorted(failed, key=lambda f: f["id"]),
        "per_split": per_split,
    }


def _r(value: float) -> float:
    return round(float(value), 6)
