"""Model builders: params.yaml's `model` group -> a fresh `transformers` causal LM."""

from midilm.models.registry import MODEL_BUILDERS, build_model, count_parameters

__all__ = ["MODEL_BUILDERS", "build_model", "count_parameters"]
