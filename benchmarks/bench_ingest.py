"""Ingest throughput of the `datasets` stage's per-file work (read, validate, canonicalize, hash,
write) on the MIDI files of shared/datasets, with 1 and 2 workers, against a plain symusic parse
loop over the same files (anchor, same run).

    python benchmarks/bench_ingest.py [--root /work/shared/datasets] [--limit 0] [--scratch data]

The raw folder is written under `--scratch` (default: the repo's data/, where the stage writes):
on this machine creating a file in /tmp costs ~1 ms against ~0.07 ms in the checkout's folder,
which would measure the folder rather than the stage. `pool_s` and `write_s` split each run into
the worker pool (read, validate, canonicalize, hash) and this process writing the kept files.
Writes benchmarks/results/ingest.json (files/s, MB/s, versions, machine, commit).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import tempfile
import time
from pathlib import Path

from symusic import Score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.common.paths import Layout
from midilm.datasets.inputs import walk
from midilm.datasets.pool import TimeoutPool
from midilm.datasets.sources import MIDI_SUFFIXES, PieceTask, ReadRules, files_tasks
from midilm.datasets.stage import _failure_result, write_raw
from midilm.datasets.worker import process_piece
from midilm.specs.dataset import FilterSpec, SourceSpec

FILTERS = FilterSpec(min_notes=1, max_notes=500_000, min_duration_s=0.0, max_duration_s=7200,
                     max_tracks=64, max_file_bytes=2**24, min_qpm=1, max_qpm=10_000)  # fmt: skip


def midi_tasks(root: Path, limit: int) -> list[PieceTask]:
    tasks = []
    rules = ReadRules(max_file_bytes=FILTERS.max_file_bytes, links="inside_root")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found = [f for f in walk(folder, MIDI_SUFFIXES, rules.links) if not f.reason]
        tasks += files_tasks(folder.name, folder, found, SourceSpec(), rules).tasks
    return tasks[:limit] if limit else tasks


def symusic_loop(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with contextlib.suppress(Exception):  # the corrupted test file
            Score(path).note_num()
    return time.perf_counter() - start


def ingest(tasks: list[PieceTask], workers: int, scratch: Path) -> dict[str, float]:
    pool = TimeoutPool(functools.partial(process_piece, filters=FILTERS), _failure_result,
                       workers=workers, timeout_s=60)  # fmt: skip
    start = time.perf_counter()
    results = pool.map(tasks)
    pooled = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".bench-ingest-") as tmp:
        write_raw(results, Path(tmp), Layout(root=Path(tmp)), dedup_mode="exact")
        end = time.perf_counter()
    return {"seconds": end - start, "pool_s": pooled - start, "write_s": end - pooled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--limit", type=int, default=0)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--scratch", type=Path, default=repo / "data")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    env = environment()
    tasks = midi_tasks(args.root, args.limit)
    paths = [Path(t.ref) for t in tasks]
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    symusic_loop(paths[:200])  # warm the page cache
    runs = {"symusic_parse_loop": {"seconds": symusic_loop(paths)}}
    for workers in (1, 2):
        runs[f"ingest_{workers}_workers"] = ingest(tasks, workers, args.scratch)
    result = {
        "benchmark": "ingest",
        "files": len(paths),
        "megabytes": round(megabytes, 3),
        "results": {
            name: {
                **{k: round(v, 3) for k, v in run.items()},
                "files_per_s": round(len(paths) / run["seconds"], 1),
                "mb_per_s": round(megabytes / run["seconds"], 2),
            }
            for name, run in runs.items()
        },
        "environment": env,
    }
    write_result("ingest", result)


if __name__ == "__main__":
    main()
