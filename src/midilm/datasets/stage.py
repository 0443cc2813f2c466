"""The `datasets` and `split` stages: materialize every source into data/raw, then split."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from midilm.common.io import atomic_dir, write_json_atomic, write_parquet_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.paths import Layout, relpath
from midilm.datasets.pool import TaskFailed, TimeoutPool
from midilm.datasets.sources import PieceTask, collect_tasks, plain_dict
from midilm.datasets.split import SPLITS, split_of, validate_ratios
from midilm.datasets.validate import Filters
from midilm.datasets.worker import PieceResult, process_piece, quarantined

log = get_logger(__name__)

ProcessFn = Callable[[PieceTask, Filters], PieceResult]

MANIFEST_COLUMNS = [
    "id", "dataset", "source", "path", "content_hash", "duration_s", "n_notes", "n_tracks",
    "license",
]  # fmt: skip
QUARANTINE_COLUMNS = ["dataset", "source", "reason", "detail"]


def run_datasets(params: DictConfig, layout: Layout, process: ProcessFn = process_piece) -> None:
    """Stage `datasets`: write data/raw (MIDI, manifest, quarantine report, summary) atomically.

    `process` is the per-piece function run in the workers (injectable for tests); it must be a
    module-level function.
    """
    cfg = params.dataset
    tasks = collect_tasks(params)
    if not tasks:
        raise ValueError("params.dataset: no enabled source or folder; enable one in conf/dataset")
    filters = Filters.from_params(plain_dict(cfg.get("filters")))
    pool = TimeoutPool(
        functools.partial(process, filters=filters),
        _failure_result,
        workers=int(cfg.get("workers", 1)),
        timeout_s=float(cfg.get("timeout_s", 60)),
    )
    log.info("datasets: %d pieces from %d sources", len(tasks), len({t.dataset for t in tasks}))
    results = pool.map(tasks, progress=not progress_disabled(), desc="datasets")
    with atomic_dir(layout.raw_dir) as tmp:
        summary = write_raw(results, tmp, layout)
    for name, counts in summary["datasets"].items():
        log.info("%s: kept %d, quarantined %d %s", name, counts["kept"], counts["quarantined"],
                 counts["by_reason"] or "")  # fmt: skip


def write_raw(results: list[PieceResult], out: Path, layout: Layout) -> dict[str, Any]:
    """Write the MIDI files, manifest, quarantine report and summary into `out` (a temp dir
    that will become `layout.raw_dir`); manifest paths point at the final location. Returns the
    summary."""
    rows, bad = [], []
    for result in sorted(results, key=lambda r: r.task.id):
        task = result.task
        if not result.kept:
            bad.append([task.dataset, task.source, result.reason, result.detail])
            continue
        rel = Path("midi") / task.dataset / f"{task.name}.mid"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(result.midi or b"")
        rows.append([task.id, task.dataset, task.source, relpath(layout.raw_dir / rel, layout.root),
                     result.content_hash, result.duration_s, result.n_notes, result.n_tracks,
                     task.license])  # fmt: skip
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).astype(
        {"duration_s": "float64", "n_notes": "int64", "n_tracks": "int64"}
    )
    report = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS).sort_values(
        ["dataset", "source"], kind="stable", ignore_index=True
    )
    write_parquet_atomic(out / "manifest.parquet", manifest)
    write_parquet_atomic(out / "quarantine_report.parquet", report)
    summary = summarize(results)
    write_json_atomic(out / "summary.json", summary)
    return summary


def summarize(results: list[PieceResult]) -> dict[str, Any]:
    """Per dataset: kept, quarantined, by_reason, and kept pieces repaired before export."""
    datasets: dict[str, dict[str, Any]] = {}
    for result in results:
        entry = datasets.setdefault(
            result.task.dataset, {"kept": 0, "quarantined": 0, "by_reason": Counter(),
                                  "repaired": Counter()}
        )  # fmt: skip
        entry["kept" if result.kept else "quarantined"] += 1
        entry["repaired"].update(result.repairs if result.kept else ())
        if not result.kept:
            entry["by_reason"][result.reason] += 1
    for entry in datasets.values():
        entry["by_reason"] = dict(sorted(entry["by_reason"].items()))
        entry["repaired"] = dict(sorted(entry["repaired"].items()))
    return {
        "datasets": dict(sorted(datasets.items())),
        "kept": sum(e["kept"] for e in datasets.values()),
        "quarantined": sum(e["quarantined"] for e in datasets.values()),
    }


def run_split(params: DictConfig, layout: Layout) -> None:
    """Stage `split`: add `split` (by content hash) to the raw manifest; write data/split."""
    if not layout.raw_manifest.exists():
        raise FileNotFoundError(
            f"{layout.raw_manifest} not found; run the datasets stage first "
            "(`dvc repro datasets` or `midilm datasets build`)"
        )
    ratios = validate_ratios(plain_dict(params.dataset.split.ratios))
    manifest = pd.read_parquet(layout.raw_manifest)
    manifest["split"] = [split_of(h, ratios) for h in manifest["content_hash"]]
    manifest = manifest.sort_values("id", kind="stable", ignore_index=True)
    counts = {
        name: {split: int((group["split"] == split).sum()) for split in SPLITS}
        for name, group in manifest.groupby("dataset", sort=True)
    }
    summary = {
        "ratios": ratios,
        "datasets": counts,
        "total": {split: int((manifest["split"] == split).sum()) for split in SPLITS},
    }
    with atomic_dir(layout.split_dir) as tmp:
        write_parquet_atomic(tmp / "manifest.parquet", manifest)
        write_json_atomic(tmp / "summary.json", summary)
    log.info("split: %s", summary["total"])


def _failure_result(task: PieceTask, failure: TaskFailed) -> PieceResult:
    """A killed or crashed worker: `timeout`, or the read/export error of the task's kind."""
    if failure.reason == "timeout":
        return quarantined(task, "timeout", f"{failure} (dataset.timeout_s)")
    reason = "parse_error" if task.kind == "folder" else "export_error"
    return quarantined(task, reason, str(failure))
