"""Same trained weights, bit for bit, whatever the thread count and the load beside the run.

Each check trains smoke models a few steps in a fresh process (tests/models/train_probe.py: MKL
must start in its reproducible mode) with 1 and with 2 threads, once on its own and once beside
two CPU burners. GPT is not among them: transformers' GPT-2 sums its LayerNorm and attention
gradients in per-thread partials, so its weights depend on the thread count (docs/decisions.md).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def trained_hashes(keys: list[str]) -> dict[str, dict[str, str]]:
    """{key: {threads: weights hash}} from a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.models.train_probe", *keys, "--threads", "1", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def busy_neighbour(processes: int = 2) -> Iterator[None]:
    """Plain CPU burners (one per core of the 2-core CI machine) while the block runs."""
    spin = [sys.executable, "-c", "while True: pass"]
    burners = [subprocess.Popen(spin) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def assert_same_weights(keys: list[str]) -> None:
    idle = trained_hashes(keys)
    with busy_neighbour():
        busy = trained_hashes(keys)
    for key in keys:
        runs = {
            f"{threads} threads{load}": digest
            for load, hashes in (("", idle), (", busy", busy))
            for threads, digest in hashes[key].items()
        }
        assert len(set(runs.values())) == 1, f"{key}: weights differ between runs: {runs}"


def test_rwkv6_trains_to_the_same_weights_on_any_thread_count_and_load() -> None:
    assert_same_weights(["rwkv6"])


@pytest.mark.slow
def test_mistral_llama_and_mamba_train_to_the_same_weights_on_any_thread_count_and_load() -> None:
    assert_same_weights(["mistral", "llama", "mamba"])
