"""Model builders: an architecture (`midilm.specs.ModelSpec.architecture`) -> a fresh causal LM."""

from midilm.models.registry import MODEL_BUILDERS, build_model, count_parameters

__all__ = ["MODEL_BUILDERS", "build_model", "count_parameters"]
