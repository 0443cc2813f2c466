"""The parameters of every stage as typed specs, resolved once from params.yaml.

params.yaml is composed from `conf/` (Hydra); a stage reads it once, at its boundary, into the
frozen dataclasses here and hands those to the library. Defaults live in `conf/` only: a key
missing from params.yaml is an error naming its conf file (`midilm.common.spec`).
"""

from midilm.specs.generate import GenerateSpec
from midilm.specs.model import FinetuneSpec, ModelSpec, main_model, model_keys, model_spec
from midilm.specs.train import TrainSpec, WandbSpec

__all__ = [
    "FinetuneSpec",
    "GenerateSpec",
    "ModelSpec",
    "TrainSpec",
    "WandbSpec",
    "main_model",
    "model_keys",
    "model_spec",
]
