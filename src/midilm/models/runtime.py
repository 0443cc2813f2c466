"""Where and how models run: device choice, deterministic execution, peak memory.

Deterministic on CPU means the same bits whatever the thread count and the load beside it
(docs/decisions.md, "Same bits on any thread count"): MKL's GEMMs run in its strict
reproducibility mode (`MKL_CBWR`, read at MKL's first call, so set here on import, before any
matmul; a value already in the environment wins), and kernels that have no such mode run on a
fixed thread count (`fixed_threads`).
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
from collections.abc import Iterator

import numpy as np
import torch

# MKL conditional numerical reproducibility, strict: GEMM results independent of the number of
# threads. AUTO keeps this CPU's fastest code path; `AVX2,STRICT` would also make results equal
# across CPU generations, slower on AVX-512 machines.
MKL_REPRODUCIBLE = "AUTO,STRICT"
os.environ.setdefault("MKL_CBWR", MKL_REPRODUCIBLE)


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no GPU is visible; set the device to auto or cpu")
    return torch.device(name)


@contextlib.contextmanager
def deterministic(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed every RNG, force deterministic kernels (and a thread count); restore afterwards."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


@contextlib.contextmanager
def fixed_threads(count: int) -> Iterator[None]:
    """Run the block on `count` intra-op threads, for a kernel whose result depends on the count
    (LAPACK's QR, say), then restore the caller's."""
    old = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_transformers() -> None:
    """transformers' own bars (loading, saving weights) follow MIDILM_NO_PROGRESS too."""
    from transformers.utils import logging as hf_logging

    from midilm.common.logging import progress_disabled

    if progress_disabled():
        hf_logging.disable_progress_bar()
