"""MIDICompact's velocity bins (seed 001, MIDI-LLM-tokenizer): 16 bins on an exponential curve
(velocity_exp 0.33; linear when 1), bin 0 meaning note-off, and the curve's inverse."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def quantize_velocity(
    velocity: Any, bins: int = 16, exp: float = 0.33, events: int = 128
) -> np.ndarray:
    """MIDI velocity (0..127, float allowed) -> bin (0..bins-1), exponential curve; linear
    when `exp` == 1. The reference's formula, operation for operation (same bins on floats)."""
    v = np.clip(np.asarray(velocity, dtype=np.float64), 0, events - 1)
    bin_size = events / (bins - 1)
    curve = v if exp == 1.0 else events * ((exp ** (v / events) - 1.0) / (exp - 1.0))
    return np.clip(np.ceil(curve / bin_size), 0, bins - 1).astype(np.int64)


def dequantize_velocity(
    bin_: Any, bins: int = 16, exp: float = 0.33, events: int = 128
) -> np.ndarray:
    """Bin -> the velocity it stands for: the inverse (log) of `quantize_velocity`'s curve."""
    b = np.asarray(bin_, dtype=np.float64)
    bin_size = events / (bins - 1)
    if exp == 1.0:
        v = b * bin_size - 1.0
    else:
        v = events * (np.log((exp - 1.0) * bin_size * b / events + 1.0) / math.log(exp)) - 1.0
    return np.clip(np.ceil(v), 0, events - 1).astype(np.int64)
