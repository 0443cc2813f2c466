"""Where and how models run: device choice, deterministic execution, peak memory."""

from __future__ import annotations

import contextlib
import os
import random
import resource
from collections.abc import Iterator

import numpy as np
import torch


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
