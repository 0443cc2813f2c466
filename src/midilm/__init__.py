"""midilm: a reproducible DVC pipeline for symbolic-music language models."""

import os as _os

__version__ = "0.1.0"

# How long an idle OpenMP thread spins before it sleeps, read by GNU OpenMP (torch's on Linux)
# when torch loads it, so set here, before any torch import. libgomp's default (300,000 spins,
# ~3 ms) makes a training beside another process crawl: every parallel region waits for the
# thread the scheduler parked while its partner burns the other core. 1,000 spins keep two
# threads beside a busy neighbour within ~2x of their idle speed (docs/decisions.md, "Shared
# cores"; benchmarks/results/shared_cpu.json). It changes speed only, never results; a wait
# policy already in the environment (OMP_WAIT_POLICY or GOMP_SPINCOUNT) is left as it is.
OPENMP_SPIN_COUNT = "1000"
if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & _os.environ.keys():
    _os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
