"""Hypothesis fuzzing of the MIDI and ABC readers as the `datasets` stage runs them: each batch
of generated files goes through the real worker in the real pool, with a time and a memory
bound per file. Nothing may crash a worker, and whatever is kept must satisfy every bound."""

from __future__ import annotations

import functools
import math
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symusic import Score

from midilm.datasets.pool import TimeoutPool
from midilm.datasets.sources import PieceTask
from midilm.datasets.stage import _failure_result
from midilm.datasets.validate import REASONS
from midilm.datasets.worker import PieceResult, process_piece
from tests.datasets.params import make_spec
from tests.hostile.strategies import abc_tune, generated_midi, mutated_midi

TIME_BOUND_S = 20  # per file (music21 on a long generated tune takes a few seconds)
MEMORY_BOUND_MB = 768  # heap a worker may add per file
FILTERS = make_spec().filters


def check(results: list[PieceResult]) -> tuple[int, int]:
    """Every result is a quarantine with a known reason, or a kept piece that meets every
    bound and re-parses to what the manifest says; returns (kept, timed out)."""
    kept = timed_out = 0
    for result in results:
        assert result.reason != "crash", (result.task.ref, result.detail)
        if not result.kept:
            assert result.reason in REASONS and result.detail, result
            timed_out += result.reason == "timeout"
            continue
        kept += 1
        score = Score.from_midi(result.midi)
        assert score.note_num() == result.n_notes
        assert FILTERS.min_notes <= result.n_notes <= FILTERS.max_notes
        assert FILTERS.min_duration_s <= result.duration_s <= FILTERS.max_duration_s
        assert math.isfinite(result.duration_s) and len(result.content_hash) == 64
        for tempo in score.tempos:
            assert FILTERS.min_qpm <= 60e6 / tempo.mspq <= FILTERS.max_qpm
        for meter in score.time_signatures:
            assert meter.numerator > 0 and meter.denominator > 0
    return kept, timed_out


def run_batch(midi: list[bytes], abc: list[str], folder: Path) -> tuple[int, int, int]:
    """The files through the real pool; returns (cases, kept, timed out)."""
    tasks = []
    for i, data in enumerate(midi):
        path = folder / f"{i}.mid"
        path.write_bytes(data)
        tasks.append(PieceTask("fuzz", f"m{i}", "folder", f"fuzz:{i}", "", str(path)))
    for i, text in enumerate(abc):
        tasks.append(PieceTask("fuzz", f"a{i}", "abc", f"fuzz:abc{i}", "", "", text=text))
    pool = TimeoutPool(functools.partial(process_piece, filters=FILTERS), _failure_result,
                       workers=2, timeout_s=TIME_BOUND_S, memory_mb=MEMORY_BOUND_MB)  # fmt: skip
    results = pool.map(tasks)
    assert [r.task for r in results] == tasks
    return (len(tasks), *check(results))


def test_fuzzed_midi_and_abc_never_crash_a_worker(tmp_path: Path) -> None:
    totals = Counter()

    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(midi=st.lists(st.one_of(mutated_midi(), generated_midi()), min_size=12, max_size=24),
           abc=st.lists(abc_tune(), min_size=2, max_size=4))  # fmt: skip
    def batch(midi: list[bytes], abc: list[str]) -> None:
        folder = tmp_path / f"batch{totals['batches']}"
        folder.mkdir()
        cases, kept, timed_out = run_batch(midi, abc, folder)
        totals.update(batches=1, cases=cases, kept=kept, timeouts=timed_out)

    batch()
    line = (f"fuzz: cases {totals['cases']}, kept {totals['kept']}, quarantined "
            f"{totals['cases'] - totals['kept']}, crashes 0, time-outs {totals['timeouts']} "
            f"(bounds: {TIME_BOUND_S} s, {MEMORY_BOUND_MB} MiB per file)")  # fmt: skip
    (tmp_path / "fuzz_summary.txt").write_text(line + "\n")
    print(f"\n{line}")
    assert totals["cases"] >= 100
