"""The `datasets` and `split` stages: materialize every source into data/raw, then split."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from midilm.common.io import atomic_dir, write_json_atomic, write_parquet_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.paths import Layout, relpath
from midilm.datasets.collect import collect_tasks
from midilm.datasets.dedup import DEDUP_COLUMNS, deduplicate
from midilm.datasets.pool import TaskFailed, TimeoutPool
from midilm.datasets.sources import InputIssue, PieceTask
from midilm.datasets.split import SPLITS, assign_splits, validate_ratios
from midilm.datasets.worker import PieceResult, process_piece, quarantined
from midilm.specs.dataset import FilterSpec, dataset_spec

log = get_logger(__name__)

ProcessFn = Callable[[PieceTask, FilterSpec], PieceResult]

MANIFEST_COLUMNS = [
    "id", "dataset", "source", "path", "content_hash", "duration_s", "n_notes", "n_tracks",
    "license", "transposition_hash", "programs", "has_drums", "tempo", "time_signature",
    "official_split", "official_duration_s", "input",
]  # fmt: skip
QUARANTINE_COLUMNS = ["dataset", "source", "input", "reason", "detail"]
SKIPPED_COLUMNS = QUARANTINE_COLUMNS
SKIPPED_REPORT = "skipped_report.parquet"


def run_datasets(params: DictConfig, layout: Layout, process: ProcessFn = process_piece) -> None:
    """Stage `datasets`: write data/raw (MIDI, manifest, quarantine and skip reports, summary)
    atomically. Every input path ends in exactly one place: the manifest (kept or a dedup
    duplicate), the quarantine report or the skip report.

    `process` is the per-piece function run in the workers (injectable for tests); it must be a
    module-level function.
    """
    spec = dataset_spec(params)
    if not any(c.enabled for c in [*spec.sources.values(), *spec.folders.values()]):
        raise ValueError("params.dataset: no enabled source or folder; enable one in conf/dataset")
    listing = collect_tasks(spec)
    pool = TimeoutPool(
        functools.partial(process, filters=spec.filters),
        _failure_result,
        workers=spec.workers,
        timeout_s=spec.timeout_s,
        memory_mb=spec.worker_memory_mb,
    )
    log.info("datasets: %d pieces from %d sources, %d inputs without a piece", len(listing.tasks),
             len({t.dataset for t in listing.tasks}), len(listing.issues))  # fmt: skip
    results = pool.map(listing.tasks, progress=not progress_disabled(), desc="datasets")
    with atomic_dir(layout.raw_dir) as tmp:
        summary = write_raw(results, tmp, layout, dedup_mode=spec.dedup.mode,
                            issues=listing.issues)  # fmt: skip
    for name, counts in summary["datasets"].items():
        log.info("%s: kept %d, quarantined %d %s, skipped %d %s, duplicates %d", name,
                 counts["kept"], counts["quarantined"], counts["by_reason"] or "",
                 counts["skipped"], counts["skipped_by_reason"] or "",
                 counts["duplicates"])  # fmt: skip


def write_raw(
    results: list[PieceResult],
    out: Path,
    layout: Layout,
    dedup_mode: str = "none",
    issues: Sequence[InputIssue] = (),
) -> dict[str, Any]:
    """Write the MIDI files, manifest, quarantine, skip and dedup reports and summary into `out`
    (a temp dir that will become `layout.raw_dir`); manifest paths point at the final location.
    Duplicates (`dedup_mode`) are dropped before any file is written. Returns the summary."""
    rows, bad, midi = [], [], {}
    for result in sorted(results, key=lambda r: r.task.id):
        task = result.task
        if not result.kept:
            bad.append([task.dataset, task.source, task.input, result.reason, result.detail])
            continue
        rel = Path("midi") / task.dataset / f"{task.name}.mid"
        midi[task.id] = (rel, result.midi or b"")
        rows.append([task.id, task.dataset, task.source, relpath(layout.raw_dir / rel, layout.root),
                     result.content_hash, result.duration_s, result.n_notes, result.n_tracks,
                     task.license, result.transposition_hash, list(result.programs),
                     result.has_drums, result.tempo, result.time_signature,
                     task.split, task.official_duration_s, task.input])  # fmt: skip
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
    bad += [[i.dataset, i.source, i.input, i.reason, i.detail] for i in issues if i.quarantined]
    skipped = [[i.dataset, i.source, i.input, i.reason, i.detail] for i in issues
               if not i.quarantined]  # fmt: skip
    write_parquet_atomic(out / "manifest.parquet", manifest)
    write_parquet_atomic(out / "quarantine_report.parquet", _report(bad, QUARANTINE_COLUMNS))
    write_parquet_atomic(out / SKIPPED_REPORT, _report(skipped, SKIPPED_COLUMNS))
    write_parquet_atomic(out / "dedup_report.parquet", duplicates[DEDUP_COLUMNS])
    summary = summarize(results, duplicates, dedup_mode, issues)
    write_json_atomic(out / "summary.json", summary)
    return summary


def _report(rows: list[list[Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns, dtype=object).sort_values(
        ["dataset", "source"], kind="stable", ignore_index=True
    )


def summarize(
    results: list[PieceResult],
    duplicates: pd.DataFrame | None = None,
    dedup_mode: str = "none",
    issues: Sequence[InputIssue] = (),
) -> dict[str, Any]:
    """Per dataset: pieces kept (after dedup), quarantined and skipped with their reasons,
    duplicates removed, kept pieces repaired before export; and `inputs`, the distinct input
    files, each counted once in `inputs_by_status` (kept if any of its pieces is kept or a
    duplicate, else quarantined if any is, else skipped), so inputs = kept + quarantined +
    skipped there."""
    dropped = Counter() if duplicates is None else Counter(duplicates["dataset"])
    datasets: dict[str, dict[str, Any]] = {}
    status: dict[str, dict[str, int]] = {}  # dataset -> input -> best status (0 kept .. 2)

    def entry(name: str) -> dict[str, Any]:
        return datasets.setdefault(
            name, {"kept": 0, "quarantined": 0, "skipped": 0, "by_reason": Counter(),
                   "skipped_by_reason": Counter(), "duplicates": 0, "repaired": Counter()}
        )  # fmt: skip

    def mark(dataset: str, path: str, rank: int) -> None:
        seen = status.setdefault(dataset, {})
        seen[path] = min(seen.get(path, rank), rank)

    for result in results:
        counts = entry(result.task.dataset)
        mark(result.task.dataset, result.task.input or result.task.id, 0 if result.kept else 1)
        counts["kept" if result.kept else "quarantined"] += 1
        counts["repaired"].update(result.repairs if result.kept else ())
        if not result.kept:
            counts["by_reason"][result.reason] += 1
    for item in issues:
        counts = entry(item.dataset)
        mark(item.dataset, item.input, 1 if item.quarantined else 2)
        counts["quarantined" if item.quarantined else "skipped"] += 1
        counts["by_reason" if item.quarantined else "skipped_by_reason"][item.reason] += 1
    for name, counts in datasets.items():
        ranks = Counter(status.get(name, {}).values())
        counts["inputs"] = sum(ranks.values())
        counts["inputs_by_status"] = {"kept": ranks[0], "quarantined": ranks[1],
                                      "skipped": ranks[2]}  # fmt: skip
        counts["duplicates"] = int(dropped.get(name, 0))
        counts["kept"] -= counts["duplicates"]
        for key in ("by_reason", "skipped_by_reason", "repaired"):
            counts[key] = dict(sorted(counts[key].items()))
    return {
        "datasets": dict(sorted(datasets.items())),
        **{key: sum(e[key] for e in datasets.values())
           for key in ("inputs", "kept", "quarantined", "skipped")},
        "duplicates": {"mode": dedup_mode, "removed": sum(dropped.values())},
    }  # fmt: skip


def run_split(params: DictConfig, layout: Layout) -> None:
    """Stage `split`: add `split` (official, else by content hash; equal content shares the
    strictest split) to the raw manifest; write data/split."""
    if not layout.raw_manifest.exists():
        raise FileNotFoundError(
            f"{layout.raw_manifest} not found; run the datasets stage first "
            "(`dvc repro datasets` or `midilm datasets build`)"
        )
    ratios = validate_ratios(dataset_spec(params).split.ratios)
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
    """A task that gave no result: `timeout`, or `crash` with the exception or the way the
    worker died (the input is in the task)."""
    if failure.reason == "timeout":
        return quarantined(task, "timeout", f"{failure} (dataset.timeout_s)")
    return quarantined(task, "crash", str(failure))
