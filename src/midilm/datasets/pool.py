"""A small process pool with a per-task time-out: a hung or crashed task is killed and reported,
its worker replaced, and the pool keeps going (concurrent.futures cannot kill one task).

Each worker holds up to `depth` tasks (the next one waits in its pipe), so it starts the next
file the moment it sends a result instead of idling for a round trip through this process: on
~0.5 ms files that round trip made 2 workers slower than 1."""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Generic, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")
PREFETCH_BYTES = 32 * 1024  # a queued task fits the pipe (64 KiB): no send blocks on a busy worker


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    queue: deque[int] = field(default_factory=deque)  # tasks sent to it; the first one runs
    deadline: float = 0.0  # for the running task


class TaskFailed(Exception):
    """Why a task produced no result: `reason` is "timeout" or "crash"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class _Raised:
    """What a task raised in the worker, sent back instead of a result."""

    detail: str


def _serve(conn: Connection, fn: Callable[[Any], Any], memory_mb: int | None) -> None:
    """Worker loop: receive (index, task), send (index, result); None stops it. An exception
    from `fn` (or from pickling its result) is sent back as `_Raised`, not fatal."""
    if memory_mb is not None:
        limit_heap(memory_mb)
    while (message := conn.recv()) is not None:
        index, task = message
        try:
            reply = (index, fn(task))
            conn.send(reply)
        except Exception as error:
            conn.send((index, _Raised(describe(error))))


def describe(error: BaseException) -> str:
    """`Type: message (at file:line in function)` for the innermost frame of the traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})"
    return f"{type(error).__name__}: {error}{where if frames else ''}"


def limit_heap(memory_mb: int) -> None:
    """Let this process grow its data segment by at most `memory_mb` MiB beyond what it holds
    now (RLIMIT_DATA; Linux counts every private writable mapping): an allocation past it raises
    MemoryError (Python, numpy, symusic's C++ via pybind11) instead of exhausting the machine."""
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            held = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmData:"))  # fmt: skip
    except (OSError, StopIteration, ValueError):
        return  # not Linux: no bound
    limit = held + memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def exit_detail(code: int | None) -> str:
    """How a worker ended: `exit 3`, or the signal that killed it (SIGKILL: often the kernel's
    out-of-memory killer)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit {code}"


class TimeoutPool(Generic[T, R]):
    """Run `fn` over tasks in `workers` processes, each task limited to `timeout_s` seconds.

    `on_failure(task, TaskFailed)` turns a time-out, an exception or a crashed worker into a
    result, so the output has one result per task, in task order. `fn` must be picklable (a
    module-level function or a functools.partial of one). `memory_mb` bounds what each worker
    may allocate beyond what it inherits (None: no bound).
    """

    def __init__(
        self,
        fn: Callable[[T], R],
        on_failure: Callable[[T, TaskFailed], R],
        workers: int,
        timeout_s: float,
        depth: int = 2,
        memory_mb: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"dataset.workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"dataset.timeout_s must be > 0, got {timeout_s}")
        self.fn, self.on_failure = fn, on_failure
        if memory_mb is not None and memory_mb < 1:
            raise ValueError(f"dataset.worker_memory_mb must be >= 1 or null, got {memory_mb}")
        self.workers, self.timeout_s, self.depth = workers, timeout_s, max(depth, 1)
        self.memory_mb = memory_mb
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def map(self, tasks: Sequence[T], progress: bool = False, desc: str = "") -> list[R]:
        results: list[R | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        staged: dict[int, bytes] = {}  # the pickled next task, kept while it waits for a worker
        pool: list[_Worker] = []
        bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="piece")
        try:
            pool = [self._start() for _ in range(min(self.workers, len(tasks)))]
            while pending or any(w.queue for w in pool):
                for worker in pool:
                    self._feed(worker, tasks, pending, staged)
                busy = [w for w in pool if w.queue]
                left = min(w.deadline for w in busy) - time.monotonic()
                ready = set(wait([w.conn for w in busy], timeout=max(left, 0.0)))
                for i, worker in enumerate(pool):
                    if not worker.queue:
                        continue
                    if worker.conn in ready:
                        try:
                            index, result = worker.conn.recv()
                        except (EOFError, OSError, pickle.UnpicklingError) as error:
                            worker.process.join(timeout=1)
                            detail = exit_detail(worker.process.exitcode)
                            if isinstance(error, pickle.UnpicklingError):
                                detail += f"; its result did not unpickle: {error}"
                            failure = TaskFailed("crash", f"worker process died ({detail})")
                        else:
                            if index != worker.queue[0]:
                                raise RuntimeError(f"pool: result {index} came out of order")
                            worker.deadline = time.monotonic() + self.timeout_s  # the next one
                            if isinstance(result, _Raised):
                                failure = TaskFailed("crash", result.detail)
                                results[worker.queue.popleft()] = self.on_failure(
                                    tasks[index], failure
                                )
                            else:
                                results[worker.queue.popleft()] = result
                            bar.update(1)
                            continue
                    elif time.monotonic() >= worker.deadline:
                        failure = TaskFailed("timeout", f"no result after {self.timeout_s:g} s")
                    else:
                        continue
                    failed = worker.queue.popleft()
                    results[failed] = self.on_failure(tasks[failed], failure)
                    bar.update(1)
                    pending.extendleft(reversed(worker.queue))  # queued behind it: run again
                    worker.queue.clear()
                    self._stop(worker, kill=True)
                    pool[i] = self._start()
        finally:
            for worker in pool:
                self._stop(worker, kill=bool(worker.queue))
            bar.close()
        return results  # type: ignore[return-value]

    def _feed(
        self, worker: _Worker, tasks: Sequence[T], pending: deque[int], staged: dict[int, bytes]
    ) -> None:
        """Send `worker` tasks until it holds `depth`; a big task waits until the worker is idle
        (it could fill the pipe while the worker blocks on sending its own big result). The next
        task is pickled once, however long it waits, in `staged`."""
        while pending and len(worker.queue) < self.depth:
            index = pending[0]
            if index not in staged:
                staged.clear()
                staged[index] = pickle.dumps((index, tasks[index]), pickle.HIGHEST_PROTOCOL)
            if worker.queue and len(staged[index]) > PREFETCH_BYTES:
                return
            if not worker.queue:
                worker.deadline = time.monotonic() + self.timeout_s
            worker.conn.send_bytes(staged.pop(index))
            worker.queue.append(pending.popleft())

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_serve, args=(child, self.fn, self.memory_mb), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process=process, conn=parent)

    def _stop(self, worker: _Worker, kill: bool) -> None:
        if not kill:
            try:
                worker.conn.send(None)
                worker.process.join(timeout=5)
            except (BrokenPipeError, OSError):
                pass
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
