"""Seed 001's four music21 metrics, for generated samples and the test split."""

from midilm.evaluate.metrics import (
    harmonic_coherence,
    key_changes,
    load_score,
    melodic_similarity,
    rhythm_consistency,
)

__all__ = [
    "harmonic_coherence",
    "key_changes",
    "load_score",
    "melodic_similarity",
    "rhythm_consistency",
]
