"""The chunked multi-process map: every chunk once, in order, shared by both processes, under
fork and spawn; encoding on 2 workers gives exactly the 1-worker result."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import pytest
import symusic

from midilm.store.sequences import ids_column
from midilm.tokenize import build_tokenizer
from midilm.tokenize.encode import encode_files
from midilm.tokenize.parallel import Bounds, chunk_bounds, map_chunks, start_method

MAIN_PID_ENV = "MIDILM_TEST_MAIN_PID"
MARKS_ENV = "MIDILM_TEST_MARKS"


def owner_of_chunk(bounds: Bounds) -> tuple[int, Bounds]:
    """The process that ran this chunk; the main process is slowed down so the pool (even a
    spawned one, ~2 s to start) takes chunks too."""
    if os.environ.get(MAIN_PID_ENV) == str(os.getpid()):
        time.sleep(0.5)
    return os.getpid(), bounds


def _mark_done(bounds: Bounds) -> Bounds:
    """Leave a file per chunk run (its process and bounds) where the test counts them."""
    Path(os.environ[MARKS_ENV], f"{os.getpid()}-{bounds[0]}").touch()
    return bounds


def fail_in_main(bounds: Bounds) -> Bounds:
    if os.environ.get(MAIN_PID_ENV) == str(os.getpid()):
        raise ValueError(f"chunk {bounds} failed")
    time.sleep(0.1)
    return _mark_done(bounds)


def fail_in_pool(bounds: Bounds) -> Bounds:
    if os.environ.get(MAIN_PID_ENV) != str(os.getpid()):
        raise ValueError(f"chunk {bounds} failed in the pool")
    time.sleep(0.1)
    return _mark_done(bounds)


def exit_in_pool(bounds: Bounds) -> Bounds:
    """The pool process dies on its first chunk; this one is slow enough (2 s for all chunks) that
    the pool surely starts and takes one, even on a loaded machine."""
    if os.environ.get(MAIN_PID_ENV) != str(os.getpid()):
        os._exit(9)  # a worker killed mid-chunk (OOM killer, scancel): no result, no traceback
    time.sleep(0.05)
    return bounds


def test_chunk_bounds_cover_the_paths_once() -> None:
    assert chunk_bounds(0, 2) == []
    assert chunk_bounds(20, 1) == [(0, 8), (8, 16), (16, 20)]  # at least 8 files a chunk
    assert chunk_bounds(20, 2) == [(0, 8), (8, 16), (16, 18), (18, 20)]  # a finer tail
    bounds = chunk_bounds(5330, 2)
    assert bounds[0] == (0, 84) and bounds[-1] == (5315, 5330) and len(bounds) == 88
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert max(b - a for a, b in chunk_bounds(10**6, 2)) == 256


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_both_processes_take_chunks_in_order(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDILM_START_METHOD", method)
    monkeypatch.setenv(MAIN_PID_ENV, str(os.getpid()))
    assert start_method() == method
    paths = [f"piece{i}.mid" for i in range(8 * 12)]
    tokenizer = build_tokenizer({"name": "midicompact"})
    results = map_chunks(tokenizer, owner_of_chunk, paths, 2, "test")
    assert [b for _, b in results] == chunk_bounds(len(paths), 2)
    assert {pid for pid, _ in results} - {os.getpid()}, "the pool process took no chunk"


def test_an_error_stops_the_pool_and_is_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MAIN_PID_ENV, str(os.getpid()))
    monkeypatch.setenv(MARKS_ENV, str(tmp_path))
    paths = [f"piece{i}.mid" for i in range(8 * 200)]  # 90 chunks of 0.1 s in the pool
    with pytest.raises(ValueError, match=r"chunk \(\d+, \d+\) failed"):
        map_chunks(build_tokenizer({"name": "midicompact"}), fail_in_main, paths, 2, "test")
    # the pool was joined before the error was raised, and had stopped after its current chunk
    assert len(list(tmp_path.iterdir())) < len(chunk_bounds(len(paths), 2)) // 2


def test_an_error_in_the_pool_names_the_worker_and_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MAIN_PID_ENV, str(os.getpid()))
    monkeypatch.setenv(MARKS_ENV, str(tmp_path))
    paths = [f"piece{i}.mid" for i in range(8 * 200)]
    with pytest.raises(RuntimeError, match=r"(?s)tokenize worker \(pid \d+\) failed.*ValueError"):
        map_chunks(build_tokenizer({"name": "midicompact"}), fail_in_pool, paths, 2, "test")
    # this process stopped too, once the pool had failed (its start costs at most a few chunks)
    assert len(list(tmp_path.iterdir())) < len(chunk_bounds(len(paths), 2)) // 2
    with pytest.raises(RuntimeError, match=r"exited with code 9 and no result"):
        map_chunks(build_tokenizer({"name": "midicompact"}), exit_in_pool, paths[:320], 2, "test")


def test_unknown_start_method_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDILM_START_METHOD", "threads")
    with pytest.raises(ValueError, match="MIDILM_START_METHOD='threads'"):
        start_method()


@pytest.mark.parametrize("name", ["midicompact", "simplified_midi", "remi"])
def test_two_workers_encode_exactly_like_one(
    name: str, chorale_midis: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "truncated.mid"
    bad.write_bytes(chorale_midis[0].read_bytes()[:40])
    paths = [*chorale_midis, bad, *chorale_midis] * 2  # 50 files, 7 chunks
    tokenizer = build_tokenizer({"name": name})
    one, two = encode_files(tokenizer, paths, 1), encode_files(tokenizer, paths, 2)
    assert np.array_equal(one.lengths, two.lengths) and np.array_equal(one.values, two.values)
    assert one.failures == two.failures and [i for i, _ in one.failures] == [12, 37]
    assert one.values.dtype == np.int32 and int(one.lengths.sum()) == len(one.values)
    first = one.values[: one.lengths[0]]
    ids = tokenizer.encode(symusic.Score(str(chorale_midis[0])))
    assert first.tolist() == [tokenizer.bos_id, *ids, tokenizer.eos_id]


def test_ids_column_splits_only_past_the_offset_limit() -> None:
    lengths = np.asarray([3, 4, 2, 5], dtype=np.int64)
    values = np.arange(14, dtype=np.int32)
    whole = ids_column(lengths, values)
    assert whole.num_chunks == 1 and whole.to_pylist()[1] == [3, 4, 5, 6]
    split = ids_column(lengths, values, max_chunk_ids=7)
    assert [len(c) for c in split.chunks] == [2, 2] and split.to_pylist() == whole.to_pylist()
    with pytest.raises(ValueError, match="a sequence of 5 ids is over 4 ids"):
        ids_column(lengths, values, max_chunk_ids=4)
