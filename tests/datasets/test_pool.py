"""TimeoutPool: one result per task in task order, with tasks queued in each worker's pipe; a
crash or a time-out costs only its own task (the ones queued behind it run again elsewhere)."""

from __future__ import annotations

import os
import time

import pytest

from midilm.datasets.pool import PREFETCH_BYTES, TaskFailed, TimeoutPool


def square_or_fail(task: int | str) -> tuple[int, int]:
    """(task squared, pid); task -1 kills its process, task -2 hangs; a str echoes its length
    as a big result (a big task and a big result at once must not deadlock the pipes)."""
    if isinstance(task, str):
        return len(task), os.getpid()
    if task == -1:
        os._exit(3)
    if task == -2:
        time.sleep(60)
    return task * task, os.getpid()


def as_failure(task: int | str, failure: TaskFailed) -> tuple[str, str]:
    return failure.reason, str(failure)


def test_two_workers_give_every_result_in_order() -> None:
    tasks = list(range(400))
    results = TimeoutPool(square_or_fail, as_failure, workers=2, timeout_s=10).map(tasks)
    assert [r[0] for r in results] == [t * t for t in tasks]
    assert len({pid for _, pid in results}) == 2  # both workers took tasks


def test_a_crash_and_a_hang_cost_only_their_own_task() -> None:
    tasks = [1, 2, -1, 3, 4, 5, -2, 6, 7, 8]
    start = time.monotonic()
    results = TimeoutPool(square_or_fail, as_failure, workers=2, timeout_s=1).map(tasks)
    assert time.monotonic() - start < 10
    assert results[2] == ("crash", "worker process died (exit 3)")
    assert results[6] == ("timeout", "no result after 1 s")
    good = [(t, r) for t, r in zip(tasks, results, strict=True) if t >= 0]
    assert all(r[0] == t * t for t, r in good)  # the tasks queued behind a failure ran again


def test_big_tasks_wait_for_an_idle_worker() -> None:
    big = "x" * (4 * PREFETCH_BYTES)
    tasks: list[int | str] = [big, 1, big, 2, big, big]
    results = TimeoutPool(square_or_fail, as_failure, workers=2, timeout_s=10).map(tasks)
    assert [r[0] for r in results] == [len(big), 1, len(big), 4, len(big), len(big)]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"dataset\.workers"):
        TimeoutPool(square_or_fail, as_failure, workers=0, timeout_s=1)
    with pytest.raises(ValueError, match=r"dataset\.timeout_s"):
        TimeoutPool(square_or_fail, as_failure, workers=1, timeout_s=0)
