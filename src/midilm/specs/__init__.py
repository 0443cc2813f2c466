"""The parameters of every stage as typed specs, resolved once from params.yaml.

params.yaml is composed from `conf/` (Hydra); a stage reads it once, at its boundary, into the
frozen dataclasses here and hands those to the library. Defaults live in `conf/` only: a key
missing from params.yaml is an error naming its conf file (`midilm.common.spec`).
"""

from collections.abc import Mapping
from typing import Any

from midilm.specs.audio import audio_spec
from midilm.specs.augment import augment_spec
from midilm.specs.dataset import dataset_spec
from midilm.specs.evaluate import complexity_spec, evaluate_spec
from midilm.specs.generate import GenerateSpec
from midilm.specs.listen import listen_spec
from midilm.specs.model import (
    FinetuneSpec,
    ModelSpec,
    main_model,
    model_keys,
    model_spec,
    sample_set_key,
    sample_set_keys,
    samples_stage,
)
from midilm.specs.seqgan import seqgan_spec
from midilm.specs.tokenizer import tokenizer_keys, tokenizer_spec
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
    "resolve_all",
    "sample_set_key",
    "sample_set_keys",
    "samples_stage",
]


def resolve_all(params: Mapping[str, Any]) -> list[object]:
    """Every spec of these params (each model, tokenizer and group): a broken config fails here,
    not in the stage that reads it an hour later."""
    specs: list[object] = [dataset_spec(params), augment_spec(params), evaluate_spec(params)]
    specs += [complexity_spec(params), audio_spec(params), listen_spec(params)]
    specs.append(seqgan_spec(params))
    specs += [model_spec(params, key) for key in model_keys(params)]
    specs += [tokenizer_spec(params, key) for key in tokenizer_keys(params)]
    specs.append(model_spec(params, main_model(params)))
    return specs
