"""Numeric precision of training: bf16 autocast on GPU, fp32 on CPU, TF32 matmuls on GPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` -> bf16 on a CUDA device that supports it, else fp32; bf16 is kept as asked."""
    if name not in PRECISIONS:
        raise ValueError(f"train.precision={name!r}; use one of {PRECISIONS} (conf/train)")
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast for the forward pass, or nothing in fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def matmul_precision(device: torch.device, tf32: bool) -> Iterator[None]:
    """TF32 for fp32 matmuls and convolutions on GPU (when `tf32`); restored afterwards."""
    if device.type != "cuda" or not tf32:
        yield
        return
    old_matmul, old_cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old_matmul)
        torch.backends.cudnn.allow_tf32 = old_cudnn
