"""Analyse a set of MIDI files once: per piece the standard metrics, the pitch-class histogram,
both variants of seed 001's metrics, and what melodic similarity needs. One row per piece; a
file that cannot be read gets a row with its error and nan values, never an exception."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from midilm.common.logging import progress_disabled
from midilm.evaluate import seed001
from midilm.evaluate.features import FEATURES, PITCH_CLASS_HISTOGRAM, piece_features
from midilm.evaluate.m21view import music21_view
from midilm.evaluate.notes import PieceNotes, piece_from_bytes, without_first_notes
from midilm.specs.evaluate import MetricsSpec

SEED001_COLUMNS = tuple(f"{v}_{m}" for v in seed001.VARIANTS for m in seed001.METRICS)
SCALAR_COLUMNS = (*FEATURES, *PITCH_CLASS_HISTOGRAM, *SEED001_COLUMNS)
LIST_COLUMNS = ("events_onset", "events_pitch", "thesis_melody", "thesis_continuation")
CONF_FILE = "conf/evaluate/default.yaml"


@dataclass(frozen=True)
class PieceItem:
    """One file to analyse: its id, path, and the notes of a prompt it starts with (samples)."""

    id: str
    path: Path
    prompt_notes: int = 0


def analyze_piece(
    piece: PieceNotes, spec: MetricsSpec, data: bytes | None = None, prompt_notes: int = 0
) -> dict[str, Any]:
    """Every per-piece value of one piece (see SCALAR_COLUMNS and LIST_COLUMNS)."""
    row: dict[str, Any] = {"n_notes": piece.n_notes}
    row.update(piece_features(piece, spec.features))
    result = seed001.analyze(piece, spec.seed001, data)
    row.update(result.values)
    row["events_onset"] = result.events[:, 0].tolist()
    row["events_pitch"] = result.events[:, 1].tolist()
    row["thesis_melody"] = list(result.thesis_melody)
    continuation = result.thesis_melody
    if prompt_notes > 0:  # the author compared his model's continuation, without the prompt
        view = music21_view(
            without_first_notes(piece, prompt_notes),
            join_ties=False,
            max_units=spec.seed001.max_units,
        )
        continuation = tuple(seed001.thesis_melody(view))
    row["thesis_continuation"] = list(continuation)
    return row


def analyze_file(item: PieceItem, spec: MetricsSpec) -> dict[str, Any]:
    """`analyze_piece` of a file, as a row with `id`, `path`, `error` and `seconds`."""
    start = time.perf_counter()
    row: dict[str, Any] = {"id": item.id, "path": str(item.path), "error": None}
    try:
        data = Path(item.path).read_bytes()
        row.update(analyze_piece(piece_from_bytes(data, item.path), spec, data, item.prompt_notes))
    except Exception as exc:  # one bad file is recorded, never raised
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        row["error"] = message[:300]
    row["seconds"] = time.perf_counter() - start
    return _complete(row)


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    for column in SCALAR_COLUMNS:
        row.setdefault(column, math.nan)
    for column in LIST_COLUMNS:
        row.setdefault(column, [])
    row.setdefault("n_notes", 0)
    return row


def analyze_files(
    items: Sequence[PieceItem], spec: MetricsSpec, description: str = "pieces"
) -> pd.DataFrame:
    """One row per item, in input order; `spec.workers` processes when there are many."""
    rows: list[dict[str, Any]]
    bar = {"total": len(items), "desc": description, "disable": progress_disabled()}
    if spec.workers <= 1 or len(items) < 32:
        rows = [analyze_file(item, spec) for item in tqdm(items, **bar)]
    else:
        with ProcessPoolExecutor(max_workers=spec.workers) as pool:
            jobs = pool.map(analyze_file, items, [spec] * len(items), chunksize=16)
            rows = list(tqdm(jobs, **bar))
    frame = pd.DataFrame(rows)
    for column in ("n_notes",):
        frame[column] = frame[column].astype(np.int64)
    return frame


def defined_mean(values: pd.Series) -> float:
    """Mean over the pieces where a value is defined; nan when none is."""
    defined = values.dropna()
    return float(defined.mean()) if len(defined) else math.nan
