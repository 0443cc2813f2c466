"""The memory/time measurement of one adversarial batch and its table (tiny sizes)."""

from __future__ import annotations

import torch

from midilm.models.runtime import deterministic
from midilm.report.seqgan import seqgan_speed_table
from midilm.seqgan.bench import BenchSizes, measure_adversarial_batch

TINY = BenchSizes(g_batch=2, rollouts=2, positives=16, d_rounds=1, d_epochs=1, filter_scale=0.02)


def test_one_adversarial_batch_is_measured_at_each_length() -> None:
    with deterministic(0, threads=1):
        rows = [measure_adversarial_batch(n, torch.device("cpu"), TINY) for n in (32, 64)]
    assert [r["rollout_sequences"] for r in rows] == [31 * 2 * 2, 63 * 2 * 2]
    for row in rows:
        assert 0 < row["rollout_seconds"] <= row["g_step_seconds"]
        assert row["adversarial_batch_seconds"] >= row["g_step_seconds"]
        assert row["peak_memory_mb"] >= row["memory_before_mb"] > 0
    data = {"rows": [*rows, {"length": 512, "error": "over 3600 s"}], "device": "cpu",
            "threads": 1, "sizes": rows[0]["sizes"]}  # fmt: skip
    table = seqgan_speed_table(data)
    assert [r[0] for r in table.cells()] == ["32", "64", "512"]
    assert table.cells()[-1][-1] == "over 3600 s"
