"""Stage `evaluate@KEY`: seed 001's metrics for the generated samples and for test pieces
(the reference), written as music_metrics.json (DVC metrics) and per_piece.csv."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from midilm.common.io import read_json, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.evaluate import metrics
from midilm.specs import model_spec
from midilm.specs.evaluate import evaluate_spec

log = get_logger(__name__)

METRICS = ("rhythm_consistency", "consonance", "dissonance", "key_changes", "melodic_similarity")
CSV_COLUMNS = ("group", "id", *METRICS, "error")


@dataclass
class PieceAnalysis:
    """What one parse of one MIDI file yields: its note events and (if asked) its metrics."""

    events: metrics.NoteEvents = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class PieceRow:
    group: str
    id: str
    values: dict[str, float]
    error: str | None = None
    failed: bool = False


def analyze_piece(
    path: Path, max_quarter_length: float, window_measures: int, with_metrics: bool = True
) -> PieceAnalysis:
    """Parse `path` and score it; any failure is returned as `error`, never raised."""
    start = time.perf_counter()
    result = PieceAnalysis()
    try:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        score = metrics.load_score(path, max_quarter_length)
        result.events = metrics.note_events(score)
        if with_metrics:
            consonance, dissonance = metrics.harmonic_coherence(score)
            result.values = {
                "rhythm_consistency": metrics.rhythm_consistency(score),
                "consonance": consonance,
                "dissonance": dissonance,
                "key_changes": float(metrics.key_changes(score, window_measures)),
            }
    except Exception as exc:  # a bad piece is recorded, never raised
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        result.error = message[:300]
    result.seconds = time.perf_counter() - start
    return result


def analyze_all(
    paths: Sequence[Path],
    with_metrics: Sequence[bool],
    max_quarter_length: float,
    window_measures: int,
    workers: int,
) -> list[PieceAnalysis]:
    """`analyze_piece` over many files, in input order, on `workers` processes."""
    job = partial(
        _analyze_job, max_quarter_length=max_quarter_length, window_measures=window_measures
    )
    items = list(zip(paths, with_metrics, strict=True))
    if workers <= 1 or len(items) <= 1:
        return [job(item) for item in items]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(job, items, chunksize=1))


def _analyze_job(
    item: tuple[Path, bool], max_quarter_length: float, window_measures: int
) -> PieceAnalysis:
    return analyze_piece(item[0], max_quarter_length, window_measures, item[1])


def reference_pieces(layout: Layout, limit: int) -> list[tuple[str, Path]]:
    """The first `limit` test pieces of the split manifest sorted by id, as (id, path)."""
    manifest_path = layout.split_manifest
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: split manifest missing; run `dvc repro split`.")
    frame = pd.read_parquet(manifest_path, columns=["id", "path", "split"])
    test = frame[frame["split"] == "test"].sort_values("id").head(limit)
    return [(str(i), layout.root / str(p)) for i, p in zip(test["id"], test["path"], strict=True)]


def load_samples(layout: Layout, model: str) -> list[dict[str, Any]]:
    path = layout.samples_dir(model) / "samples.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: samples missing; run `dvc repro generate@{model}` first.")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise ValueError(f"{path}: expected an object with a `samples` list; re-run generate.")
    return list(data["samples"])


def run_evaluate(params: Mapping[str, Any], layout: Layout, key: str | None = None) -> dict:
    """Run the stage for model `key`; returns the summary written to outputs/metrics/<key>."""
    model = model_spec(params, key).key
    cfg = evaluate_spec(params)
    max_ql, window, workers = cfg.max_quarter_length, cfg.key_window_measures, cfg.workers

    samples = load_samples(layout, model)
    tests = reference_pieces(layout, cfg.max_reference_pieces)

    # one parse per distinct file; references only need their note events
    wanted: dict[Path, bool] = {}
    for sample in samples:
        wanted[layout.root / str(sample["path"])] = True
    for _, path in tests:
        wanted[path] = True
    for sample in samples:
        wanted.setdefault(layout.root / str(sample["reference_path"]), False)
    paths = list(wanted)
    start = time.perf_counter()
    results = dict(
        zip(paths, analyze_all(paths, list(wanted.values()), max_ql, window, workers), strict=True)
    )
    wall = time.perf_counter() - start

    rows = [_sample_row(s, layout, results) for s in samples]
    rows += _test_rows(tests, results)
    summary = {
        "model": model,
        "generated": summarize([r for r in rows if r.group == "generated"]),
        "test": summarize([r for r in rows if r.group == "test"]),
    }
    out = layout.metrics_dir(model)
    write_json_atomic(out / "music_metrics.json", summary)
    write_text_atomic(out / "per_piece.csv", per_piece_csv(rows))
    scored = [r.seconds for p, r in results.items() if wanted[p]]
    log.info(
        "evaluate %s: %d files in %.1f s (%.2f s per scored piece, %d workers); "
        "generated %s, test %s",
        model,
        len(paths),
        wall,
        sum(scored) / max(len(scored), 1),
        workers,
        summary["generated"],
        summary["test"],
    )
    return summary


def _sample_row(
    sample: Mapping[str, Any], layout: Layout, results: Mapping[Path, PieceAnalysis]
) -> PieceRow:
    own = results[layout.root / str(sample["path"])]
    ref = results[layout.root / str(sample["reference_path"])]
    skip = int(sample.get("prompt_notes", 0))
    values = dict(own.values)
    values["melodic_similarity"] = _similarity(own, ref, skip)
    error = own.error
    if error is None and ref.error:
        error = f"reference {sample['reference_path']}: {ref.error}"
    return PieceRow("generated", str(sample["file"]), values, error, own.error is not None)


def _test_rows(
    tests: Sequence[tuple[str, Path]], results: Mapping[Path, PieceAnalysis]
) -> list[PieceRow]:
    """Test pieces; each one's melodic similarity is against the next one (a chance baseline)."""
    rows = []
    for index, (piece_id, path) in enumerate(tests):
        own = results[path]
        values = dict(own.values)
        values["melodic_similarity"] = math.nan
        if len(tests) > 1:
            values["melodic_similarity"] = _similarity(
                own, results[tests[(index + 1) % len(tests)][1]], 0
            )
        rows.append(PieceRow("test", piece_id, values, own.error, own.error is not None))
    return rows


def _similarity(own: PieceAnalysis, ref: PieceAnalysis, skip: int) -> float:
    if own.error or ref.error:
        return math.nan
    return metrics.melody_similarity(
        metrics.top_melody(own.events, skip), metrics.top_melody(ref.events, skip)
    )


def summarize(rows: Sequence[PieceRow]) -> dict[str, Any]:
    """Pieces, failures and the mean of each metric over the pieces where it is defined."""
    summary: dict[str, Any] = {"pieces": len(rows), "failed": sum(r.failed for r in rows)}
    for name in METRICS:
        values = [r.values.get(name, math.nan) for r in rows]
        defined = [v for v in values if not math.isnan(v)]
        summary[name] = round(sum(defined) / len(defined), 6) if defined else None
    return summary


def per_piece_csv(rows: Sequence[PieceRow]) -> str:
    """One line per piece; metrics at 6 decimals, blank where undefined."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = [_fmt(row.values.get(name, math.nan), name) for name in METRICS]
        writer.writerow([row.group, row.id, *cells, row.error or ""])
    return buffer.getvalue()


def _fmt(value: float, name: str) -> str:
    if math.isnan(value):
        return ""
    return str(int(value)) if name == "key_changes" else f"{value:.6f}"
