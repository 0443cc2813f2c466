"""A `models.<key>` entry (conf/model/<name>.yaml) resolved into one `ModelSpec`.

An entry names its `family`, the `tokenizer` it trains on, the `size` to build and the `sizes` it
knows (smoke, thesis); the chosen size is merged on top, the global `train` and `generate` groups
under the entry's own blocks (and a size's own `train` block on top of those). A `finetune` entry
(LoRA/QLoRA of a pretrained LLM) holds its settings in `finetune` instead of an architecture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from midilm.common.spec import ConfigError, from_mapping, section
from midilm.specs.generate import GenerateSpec, generate_spec
from midilm.specs.train import TrainSpec, train_spec

FINETUNE = "finetune"
# Keys of an entry that describe the entry, not the architecture.
ENTRY_KEYS = ("name", "family", "tokenizer", "size", "sizes", "train", "generate")


@dataclass(frozen=True)
class OfflineBaseSpec:
    """The offline stand-in for a pretrained LLM: a small Llama built from config, a BPE
    tokenizer trained on the texts, and a short pre-training through the one training loop."""

    n_layer: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab_size: int
    context: int  # pre-training window
    pretrain: TrainSpec  # the `train` group with the entry's `pretrain` block on top


@dataclass(frozen=True)
class FinetuneSpec:
    """LoRA / QLoRA instruction fine-tuning (seed 004) of `base_model` (null: the stand-in)."""

    persona: str | None
    prompt_fraction: float
    base_model: str | None
    offline_base: OfflineBaseSpec | None
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    quantize: Literal["none", "nf4"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    rope_scaling: Literal["linear", "dynamic", "yarn"] | None
    rope_factor: float | None
    gradient_checkpointing: bool


@dataclass(frozen=True)
class ModelSpec:
    key: str
    family: str
    tokenizer: str  # data/packed/<tokenizer> (a key of `tokenizers`)
    size: str
    context: int
    arch: dict[str, Any]  # architecture keys for the family's builder (empty for finetune)
    train: TrainSpec
    generate: GenerateSpec
    finetune: FinetuneSpec | None = None

    @property
    def is_finetune(self) -> bool:
        return self.family == FINETUNE

    @property
    def architecture(self) -> dict[str, Any]:
        """What the family's builder reads: family, context and the architecture keys."""
        return {"family": self.family, "context": self.context, **self.arch}


def model_keys(params: Mapping[str, Any]) -> list[str]:
    """Keys of params `models`, in params order (the DAG's train@<key> stages)."""
    return list(section(params, "models", where="conf/models/*.yaml"))


SEQGAN_SAMPLES = "seqgan"  # outputs/samples/seqgan: the SeqGAN music task's melodies


def sample_set_key(params: Mapping[str, Any], key: str) -> str:
    """A set of samples under outputs/samples/ that evaluate and render accept: a model's key,
    or `seqgan` (written by the stage seqgan_music rather than generate@<key>)."""
    models = section(params, "models", where="conf/models/*.yaml")
    if key == SEQGAN_SAMPLES and key not in models:
        return key
    return model_spec(params, key).key


def sample_set_keys(params: Mapping[str, Any]) -> list[str]:
    """Every sample set the DAG evaluates and renders: the models' (params order), then
    SeqGAN's melodies."""
    keys = model_keys(params)
    return keys if SEQGAN_SAMPLES in keys else [*keys, SEQGAN_SAMPLES]


def samples_stage(key: str, stage: str = "generate") -> str:
    """The DVC stage `stage` (train, generate, evaluate or render) of sample set `key`:
    stage@KEY, or for SeqGAN's melodies seqgan_music (trains and generates), evaluate_seqgan,
    render_seqgan."""
    if key != SEQGAN_SAMPLES:
        return f"{stage}@{key}"
    return "seqgan_music" if stage in ("train", "generate") else f"{stage}_{SEQGAN_SAMPLES}"


def main_model(params: Mapping[str, Any]) -> str:
    """`main_model`: the model whose tokenizer T1/T3 count; the report leads with its samples."""
    key = params.get("main_model")
    keys = model_keys(params)
    if key not in keys:
        raise ConfigError(f"main_model={key!r} is not one of the models {keys} (conf/config.yaml)")
    return str(key)


def model_spec(params: Mapping[str, Any], key: str | None = None) -> ModelSpec:
    """The spec of model `key` (without a key: the only model; an error when there are several)."""
    models = section(params, "models", where="conf/models/*.yaml")
    if key is None:
        if len(models) != 1:
            raise ConfigError(
                f"params declare models {sorted(models)}: name one, e.g. `midilm train <key>` "
                "(DVC runs train@<key>)"
            )
        key = next(iter(models))
    if key not in models:
        raise ConfigError(
            f"model {key!r} is not in params `models` ({sorted(models)}); conf/models"
        )
    entry = dict(models[key])
    where = f"conf/model/{entry.get('name', key)}.yaml"
    for required in ("family", "tokenizer", "size", "sizes"):
        if required not in entry:
            raise ConfigError(f"{where}: missing key {required!r} (model {key!r})")
    sizes, size = dict(entry["sizes"] or {}), str(entry["size"])
    if size not in sizes:
        raise ConfigError(f"{where}: size {size!r} is not one of {sorted(sizes)}; set `size`")
    chosen = dict(sizes[size])
    size_train = chosen.pop("train", None)
    flat = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    flat.update(chosen)
    if "context" not in flat:
        raise ConfigError(f"{where}: size {size!r} has no `context`")
    context = int(flat.pop("context"))
    family = str(entry["family"]).lower()
    finetune = None
    train_group = section(params, "train", where="conf/train")
    if family == FINETUNE:
        offline = flat.get("offline_base")
        if offline:
            pretrain = train_spec(train_group, offline.get("pretrain"))
            flat["offline_base"] = {**offline, "pretrain": pretrain}
        finetune = from_mapping(FinetuneSpec, flat, f"{where} (size {size})")
        flat = {}
    return ModelSpec(
        key=str(key),
        family=family,
        tokenizer=str(entry["tokenizer"]).lower(),
        size=size,
        context=context,
        arch=flat,
        train=train_spec(train_group, entry.get("train"), size_train),
        generate=generate_spec(
            section(params, "generate", where="conf/generate"), entry.get("generate")
        ),
        finetune=finetune,
    )
