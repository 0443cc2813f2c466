"""Chunked multi-process map for the tokenize stage, built so that 2 workers run ~2x faster even
for tokenizers that spend ~0.1 ms on a file:

- processes take (start, stop) slices of one path list off a shared counter and read and encode
  many files per slice, returning one compact result (numpy arrays) per slice;
- this process works too (with `workers - 1` plain pool processes), so it never idles while
  waiting;
- the tokenizer and the paths reach each worker once (inherited on fork, pickled once on spawn);
  a task is a chunk index;
- pool processes write each result to a temp file as they go and hand back only its path, so
  nothing big crosses the pipe at the end.

Results are put back in chunk order: the output never depends on the number of workers.
What is left of the 2x on a 0.3 s job is fork's copy-on-write: both processes take one page fault
per heap page they write (~6k in this process, ~20 ms; measured in benchmarks/README.md).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import pickle
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from midilm.common.logging import progress_disabled
from midilm.tokenize.base import MusicTokenizer

ResultT = TypeVar("ResultT")
Bounds = tuple[int, int]
START_METHOD_ENV = "MIDILM_START_METHOD"
CHUNKS_PER_WORKER = 32  # the last chunk bounds the idle tail; a chunk costs ~0.1 ms to hand out
MIN_CHUNK, MAX_CHUNK = 8, 256

_STATE: WorkerState | None = None


@dataclass(frozen=True)
class WorkerState:
    """What every process of one `map_chunks` call shares: the tokenizer, all paths, the chunk
    bounds, the index of the next chunk to take (a lock-protected shared counter) and the
    folder where pool processes leave their results."""

    tokenizer: MusicTokenizer
    paths: list[Path | str]
    bounds: list[Bounds]
    next_chunk: Any = None  # multiprocessing.Value("q"), None in a serial run
    spill_dir: str | None = None


def _set_state(state: WorkerState | None) -> None:
    global _STATE
    _STATE = state


def worker_state() -> tuple[MusicTokenizer, list[Path | str]]:
    """(tokenizer, all paths) of this process, for a chunk job."""
    if _STATE is None:
        raise RuntimeError("tokenize worker used outside map_chunks (no tokenizer set)")
    return _STATE.tokenizer, _STATE.paths


def chunk_bounds(n: int, workers: int) -> list[Bounds]:
    """Consecutive (start, stop) slices covering range(n), ~CHUNKS_PER_WORKER per worker; the
    last eighth of the files goes in chunks a quarter that size, so processes end together."""
    if n <= 0:
        return []
    size = math.ceil(n / (max(workers, 1) * CHUNKS_PER_WORKER))
    size = min(max(size, MIN_CHUNK), MAX_CHUNK)
    tail_size = max(size // 4, 1)
    tail_start = max(n - n // 8, 0) if workers > 1 else n
    bounds = [(a, min(a + size, tail_start)) for a in range(0, tail_start, size)]
    return bounds + [(a, min(a + tail_size, n)) for a in range(tail_start, n, tail_size)]


def _other_threads() -> list[str]:
    """Live Python threads besides the main one, tqdm's monitor excepted (it only takes tqdm's
    own lock, which a worker never needs)."""
    return [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and type(t).__name__ != "TMonitor"
    ]


def start_method() -> str:
    """`fork` where it is safe (POSIX, no other Python thread that could hold a lock at the fork):
    workers start in milliseconds and inherit the tokenizer; else `spawn` (each worker imports
    the project and unpickles the tokenizer, ~1-2 s). `MIDILM_START_METHOD` overrides."""
    available = mp.get_all_start_methods()
    forced = os.environ.get(START_METHOD_ENV)
    if forced:
        if forced not in available:
            raise ValueError(
                f"{START_METHOD_ENV}={forced!r}: not a start method here; use one of {available}"
            )
        return forced
    return "fork" if "fork" in available and not _other_threads() else "spawn"


def _drain(job: Callable[[Bounds], Any], bar: Any = None) -> list[tuple[int, Any]]:
    """Take chunks off the shared counter until none is left: (chunk index, result) of each, or
    (chunk index, path of the pickled result) where the state has a spill folder."""
    state = _STATE
    if state is None or state.next_chunk is None:
        raise RuntimeError("tokenize worker used outside map_chunks (no shared chunk counter)")
    done: list[tuple[int, Any]] = []
    while True:
        with state.next_chunk.get_lock():
            index = state.next_chunk.value
            state.next_chunk.value = index + 1
        if index >= len(state.bounds):
            return done
        result = job(state.bounds[index])
        if state.spill_dir is not None:
            path = os.path.join(state.spill_dir, f"{index}.pickle")
            with open(path, "wb") as f:
                pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
            result = path
        done.append((index, result))
        if bar is not None:  # chunks 0..index are taken (by some process) or done
            bar.update(state.bounds[index][1] - bar.n)


def _unspill(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def _helper_main(state: WorkerState, job: Callable[[Bounds], Any], report: str) -> None:
    """A pool process: drain chunks, then leave [(chunk index, spill path)] in `report`; on an
    error, stop the others and leave the traceback instead (exit code 1)."""
    _set_state(state)
    try:
        outcome: tuple[str, Any] = ("done", _drain(job))
    except BaseException:
        if state.next_chunk is not None:
            with state.next_chunk.get_lock():
                state.next_chunk.value = len(state.bounds)
        outcome = ("failed", traceback.format_exc())
    with open(report, "wb") as f:
        pickle.dump(outcome, f, protocol=pickle.HIGHEST_PROTOCOL)
    if outcome[0] == "failed":
        sys.exit(1)


def _collect(process: Any, report: str) -> list[tuple[int, Any]]:
    """The results a joined pool process left, or an error naming what went wrong."""
    if not os.path.exists(report):
        raise RuntimeError(
            f"tokenize worker (pid {process.pid}) exited with code {process.exitcode} and no "
            "result: killed, or out of memory? Rerun with tokenize.workers: 1 to see the error"
        )
    status, payload = _unspill(report)
    if status == "failed":
        raise RuntimeError(f"tokenize worker (pid {process.pid}) failed:\n{payload}")
    return [(i, _unspill(path)) for i, path in payload]


def map_chunks(
    tokenizer: MusicTokenizer,
    job: Callable[[Bounds], ResultT],
    paths: Sequence[Path | str],
    workers: int,
    desc: str,
) -> list[ResultT]:
    """`job(bounds)` for each chunk of `paths`, in chunk order, on `workers` processes: this one
    and `workers - 1` pool processes, all taking the next chunk from one shared counter (so a
    slow start of the pool costs little). Serial when `workers` <= 1 or there is one chunk."""
    files = list(paths)
    bounds = chunk_bounds(len(files), workers)
    bar = tqdm(total=len(files), desc=desc, disable=progress_disabled(), unit="file")
    try:
        if workers <= 1 or len(bounds) < 2:
            _set_state(WorkerState(tokenizer, files, bounds))
            results = []
            for b in bounds:
                results.append(job(b))
                bar.update(b[1] - b[0])
            return results
        return _map_in_pool(tokenizer, job, files, bounds, min(workers, len(bounds)) - 1, bar)
    finally:
        _set_state(None)
        bar.close()


def _map_in_pool(
    tokenizer: MusicTokenizer,
    job: Callable[[Bounds], ResultT],
    files: list[Path | str],
    bounds: list[Bounds],
    helpers: int,
    bar: Any,
) -> list[ResultT]:
    """Plain processes rather than an executor: no manager thread or queues, so the fixed cost
    (fork, join, reading the results back) stays ~10 ms, small beside a 0.3 s job."""
    context = mp.get_context(start_method())
    with tempfile.TemporaryDirectory(prefix="midilm-tokenize-") as spill_dir:
        counter = context.Value("q", 0)
        shared = WorkerState(tokenizer, files, bounds, counter, spill_dir)
        _set_state(WorkerState(tokenizer, files, bounds, counter))  # this process keeps its own
        reports = [os.path.join(spill_dir, f"helper{k}.pickle") for k in range(helpers)]
        processes = [
            context.Process(target=_helper_main, args=(shared, job, report), daemon=True)
            for report in reports
        ]
        try:
            for process in processes:
                process.start()
            done = _drain(job, bar)
            for process, report in zip(processes, reports, strict=True):
                process.join()
                done.extend(_collect(process, report))
        except BaseException:
            with counter.get_lock():  # the pool stops after its current chunk
                counter.value = len(bounds)
            for process in processes:
                if process.pid is not None:
                    process.join()
            raise
    bar.update(len(files) - bar.n)
    done.sort(key=lambda item: item[0])
    if [i for i, _ in done] != list(range(len(bounds))):
        raise RuntimeError(f"map_chunks: chunks lost or repeated ({len(done)} results)")
    return [result for _, result in done]
