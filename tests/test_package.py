"""`import midilm` gives GNU OpenMP a short spin before torch loads it (docs/decisions.md, "Shared
cores"); what the environment already sets wins. Its effect on speed is measured by
benchmarks/bench_shared_cpu.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys

import midilm

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
PROBE = (
    "import midilm, os, torch\n"
    "torch.ones(256, 256) @ torch.ones(256, 256)\n"
    "runtimes = sorted({l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps')"
    " if 'omp' in l.rsplit('/', 1)[-1]})\n"
    "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), runtimes)\n"
)


def probe(**env: str) -> str:
    """What a fresh process that imports midilm, then torch, sees."""
    clean = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_import_sets_the_spin_count_of_the_openmp_runtime_torch_loads() -> None:
    # torch's CPU build runs GNU OpenMP: the variable is the one its runtime reads
    assert probe() == f"{midilm.OPENMP_SPIN_COUNT} None ['libgomp.so.1']"


def test_a_wait_policy_already_in_the_environment_is_kept() -> None:
    assert probe(OMP_WAIT_POLICY="ACTIVE").startswith("None ACTIVE ")
    assert probe(GOMP_SPINCOUNT="300000").startswith("300000 None ")
