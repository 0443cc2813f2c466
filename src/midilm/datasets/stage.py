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
from midilm.datasets.converters import failure_reason
from midilm.datasets.dedup import DEDUP_COLUMNS, deduplicate
from midilm.datasets.pool import TaskFailed, TimeoutPool
from midilm.datasets.sources import PieceTask, collect_tasks, plain_dict
from midilm.datasets.split import SPLITS, assign_splits, validate_ratios
from midilm.datasets.validate import Filters
from midilm.datasets.worker import PieceResult, process_piece, quarantined

log = get_logger(__name__)

ProcessFn = Callable[[PieceTask, Filters], PieceResult]

MANIFEST_COLUMNS = [
    "id", "dataset", "source", "path", "content_hash", "duration_s", "n_notes", "n_tracks",
    "license", "transposition_hash", "programs", "has_drums", "tempo", "time_signature",
    "official_split", "official_duration_s",
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
    mode = str(plain_dict(cfg.get("dedup")).get("mode", "none"))
    with atomic_dir(layout.raw_dir) as tmp:
        summary = write_raw(results, tmp, layout, dedup_mode=mode)
    for name, counts in summary["datasets"].items():
        log.info("%s: kept %d, quarantined %d, duplicates %d %s", name, counts["kept"],
                 counts["quarantined"], counts["duplicates"],
                 counts["by_reason"] or "")  # fmt: skip


def write_raw(
    results: list[PieceResult], out: Path, layout: Layout, dedup_mode: str = "none"
) -> dict[str, Any]:
    """Write the MIDI files, manifest, quarantine and dedup reports and summary into `out` (a
    temp dir that will become `layout.raw_dir`); manifest paths point at the final location.
    Duplicates (`dedup_mode`) are dropped before any file is written. Returns the summary."""
    rows, bad, midi = [], [], {}
    for result in sorted(results, key=lambda r: r.task.id):
        task = result.task
        if not result.kept:
            bad.append([task.dataset, task.source, result.reason, result.detail])
            continue
        rel = Path("midi") / task.dataset / f"{task.name}.mid"
        midi[task.id] = (rel, result.midi or b"")
        rows.append([task.id, task.dataset, task.source, relpath(layout.raw_dir / rel, layout.root),
                     result.content_hash, result.duration_s, result.n_notes, result.n_tracks,
                     task.license, result.transposition_hash, list(result.programs),
                     result.has_drums, result.tempo, result.time_signature,
                     task.split, task.official_duration_s])  # fmt: skip
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).astype(
        {"duration_s": "float64", "n_notes": "int64", "n_tracks": "int64", "has_drums": "bool",
         "tempo": "float64", "time_signature": "object", "official_split": "object",
         "official_duration_s": "float64"}
    )  # fmt: skip
    manifest, duplicates = deduplicate(manifest, dedup_mode)
    for piece_id in manifest["id"]:
        rel, data = midi[piece_id]
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    report = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS).sort_values(
        ["dataset", "source"], kind="stable", ignore_index=True
    )
    write_parquet_atomic(out / "manifest.parquet", manifest)
    write_parquet_atomic(out / "quarantine_report.parquet", report)
    write_parquet_atomic(out / "dedup_report.parquet", duplicates[DEDUP_COLUMNS])
    summary = summarize(results, duplicates, dedup_mode)
    write_json_atomic(out / "summary.json", summary)
    return summary


def summarize(
    results: list[PieceResult], duplicates: pd.DataFrame | None = None, dedup_mode: str = "none"
) -> dict[str, Any]:
    """Per dataset: kept (after dedup), quarantined, by_reason, duplicates removed, and kept
    pieces repaired before export."""
    dropped = Counter() if duplicates is None else Counter(duplicates["dataset"])
    datasets: dict[str, dict[str, Any]] = {}
    for result in results:
        entry = datasets.setdefault(
            result.task.dataset, {"kept": 0, "quarantined": 0, "by_reason": Counter(),
                                  "duplicates": 0, "repaired": Counter()}
        )  # fmt: skip
        entry["kept" if result.kept else "quarantined"] += 1
        entry["repaired"].update(result.repairs if result.kept else ())
        if not result.kept:
            entry["by_reason"][result.reason] += 1
    for name, entry in datasets.items():
        entry["duplicates"] = int(dropped.get(name, 0))
        entry["kept"] -= entry["duplicates"]
        entry["by_reason"] = dict(sorted(entry["by_reason"].items()))
        entry["repaired"] = dict(sorted(entry["repaired"].items()))
    return {
        "datasets": dict(sorted(datasets.items())),
        "kept": sum(e["kept"] for e in datasets.values()),
        "quarantined": sum(e["quarantined"] for e in datasets.values()),
        "duplicates": {"mode": dedup_mode, "removed": sum(dropped.values())},
    }


def run_split(params: DictConfig, layout: Layout) -> None:
    """Stage `split`: add `split` (official, else by content hash; equal content shares the
    strictest split) to the raw manifest; write data/split."""
    if not layout.raw_manifest.exists():
        raise FileNotFoundError(
            f"{layout.raw_manifest} not found; run the datasets stage first "
            "(`dvc repro datasets` or `midilm datasets build`)"
        )
    ratios = validate_ratios(plain_dict(params.dataset.split.ratios))
    manifest = pd.read_parquet(layout.raw_manifest)
    manifest["split"] = assign_splits(manifest, ratios)
    manifest = manifest.sort_values("id", kind="stable", ignore_index=True)
    counts = {
        name: {split: int((group["split"] == split).sum()) for split in SPLITS}
        for name, group in manifest.groupby("dataset", sort=True)
    }
    official = manifest.get("official_split", pd.Series(dtype=object)).notna()
    summary = {
        "ratios": ratios,
        "official": int(official.sum()),
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
    return quarantined(task, failure_reason(task), str(failure))
