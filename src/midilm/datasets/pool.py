"""A small process pool with a per-task time-out: a hung or crashed task is killed and reported,
its worker replaced, and the pool keeps going (concurrent.futures cannot kill one task)."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    index: int = -1  # the task it is running, -1 when idle
    deadline: float = 0.0


class TaskFailed(Exception):
    """Why a task produced no result: `reason` is "timeout" or "crash"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _serve(conn: Connection, fn: Callable[[Any], Any]) -> None:
    """Worker loop: receive (index, task), send (index, result); None stops it."""
    while (message := conn.recv()) is not None:
        index, task = message
        conn.send((index, fn(task)))


class TimeoutPool(Generic[T, R]):
    """Run `fn` over tasks in `workers` processes, each task limited to `timeout_s` seconds.

    `on_failure(task, TaskFailed)` turns a time-out or a crashed worker into a result, so the
    output has one result per task, in task order. `fn` must be picklable (a module-level
    function or a functools.partial of one).
    """

    def __init__(
        self,
        fn: Callable[[T], R],
        on_failure: Callable[[T, TaskFailed], R],
        workers: int,
        timeout_s: float,
    ) -> None:
        if workers < 1:
            raise ValueError(f"dataset.workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"dataset.timeout_s must be > 0, got {timeout_s}")
        self.fn, self.on_failure = fn, on_failure
        self.workers, self.timeout_s = workers, timeout_s
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def map(self, tasks: Sequence[T], progress: bool = False, desc: str = "") -> list[R]:
        results: list[R | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        pool: list[_Worker] = []
        bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="piece")
        try:
            pool = [self._start() for _ in range(min(self.workers, len(tasks)))]
            while pending or any(w.index >= 0 for w in pool):
                for worker in pool:
                    if worker.index < 0 and pending:
                        worker.index = pending.popleft()
                        worker.deadline = time.monotonic() + self.timeout_s
                        worker.conn.send((worker.index, tasks[worker.index]))
                busy = [w for w in pool if w.index >= 0]
                left = min(w.deadline for w in busy) - time.monotonic()
                ready = set(wait([w.conn for w in busy], timeout=max(left, 0.0)))
                for i, worker in enumerate(pool):
                    if worker.index < 0:
                        continue
                    failure = None
                    if worker.conn in ready:
                        try:
                            index, result = worker.conn.recv()
                            results[index] = result
                        except (EOFError, OSError):
                            worker.process.join(timeout=1)
                            code = worker.process.exitcode
                            failure = TaskFailed("crash", f"worker process died (exit {code})")
                    elif time.monotonic() >= worker.deadline:
                        failure = TaskFailed("timeout", f"no result after {self.timeout_s:g} s")
                    else:
                        continue
                    if failure is not None:
                        results[worker.index] = self.on_failure(tasks[worker.index], failure)
                        self._stop(worker, kill=True)
                        pool[i] = worker = self._start()
                    worker.index = -1
                    bar.update(1)
        finally:
            for worker in pool:
                self._stop(worker, kill=worker.index >= 0)
            bar.close()
        return results  # type: ignore[return-value]

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child, self.fn), daemon=True)
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
