"""Training-set augmentation: transposition and velocity jitter, train split only."""

from midilm.augment.transforms import feasible_shifts, jitter_velocity, transpose

__all__ = ["feasible_shifts", "jitter_velocity", "transpose"]
