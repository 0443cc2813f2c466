"""Training-set augmentation (seed 004): transposition, modulation, tempo scaling and velocity
jitter; train split only."""

from midilm.augment.transforms import (
    feasible_shifts,
    jitter_velocity,
    modulate,
    scale_tempo,
    transpose,
)

__all__ = ["feasible_shifts", "jitter_velocity", "modulate", "scale_tempo", "transpose"]
