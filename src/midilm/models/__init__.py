"""Model builders: a `models.<key>` entry of params.yaml -> a fresh causal LM."""

from midilm.models.registry import (
    MODEL_BUILDERS,
    build_model,
    count_parameters,
    resolve_model_cfg,
    resolve_train_cfg,
)

__all__ = [
    "MODEL_BUILDERS",
    "build_model",
    "count_parameters",
    "resolve_model_cfg",
    "resolve_train_cfg",
]
