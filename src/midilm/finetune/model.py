"""A pretrained causal LM for fine-tuning (seed 004): loading, quantization, RoPE scaling, adapters.

`load_base` loads a model by Hugging Face hub id or local folder (Llama-2-7b, Mistral-7B-v0.1 on
the cluster), with RoPE scaling when the context is longer than the model's and, for
`quantize: nf4`, bitsandbytes 4-bit NF4 storage (block size 64, bitsandbytes' fixed 4-bit block)
with double quantization and bf16 compute: QLoRA, CUDA only. `apply_lora` wraps the seven
projections of every decoder layer (q, k, v, o, gate, up, down) in peft LoRA adapters and
freezes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from midilm.common.hub import hub_offline, looks_like_path
from midilm.common.logging import get_logger
from midilm.specs import FinetuneSpec

log = get_logger(__name__)

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class BaseLoading:
    """How the base model is loaded: in training and, from weights/instruct.json, again at
    generation (where `quantize` may be overridden, e.g. `none` to sample on a CPU)."""

    context: int
    quantize: Literal["none", "nf4"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    rope_scaling: Literal["linear", "dynamic", "yarn"] | None
    rope_factor: float | None

    @classmethod
    def of(cls, spec: FinetuneSpec, context: int) -> BaseLoading:
        return cls(context, spec.quantize, spec.dtype, spec.rope_scaling, spec.rope_factor)


class BaseModelUnavailable(RuntimeError):
    """The base model can be neither found locally nor downloaded."""


class QuantizationUnavailable(RuntimeError):
    """QLoRA (NF4) was asked for where bitsandbytes cannot run it (no CUDA GPU)."""


# --- loading -----------------------------------------------------------------------------------


def resolve_dtype(loading: BaseLoading, device: torch.device) -> torch.dtype:
    """`dtype: auto` -> bfloat16 on CUDA (the report's compute type), float32 elsewhere."""
    if loading.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, loading.dtype)


def quantization_config(loading: BaseLoading) -> BitsAndBytesConfig | None:
    """QLoRA's 4-bit config for `quantize: nf4`, None for `none`; nf4 without CUDA is an error."""
    if loading.quantize == "none":
        return None
    if not torch.cuda.is_available():
        raise QuantizationUnavailable(
            "quantize: nf4 (QLoRA) needs a CUDA GPU: bitsandbytes' NF4 training kernels do not "
            "run on this machine (no GPU visible). Run on a GPU node, or set `quantize: none` "
            "under the model's size in conf/model/finetune.yaml to fine-tune with plain LoRA."
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def rope_parameters(config: Any, loading: BaseLoading) -> dict[str, Any] | None:
    """RoPE scaling for a context beyond the model's (`rope_parameters` in transformers 5, which
    reads the older `rope_scaling` key of saved configs too); None when not needed.

    `rope_scaling: linear|dynamic|yarn` (null: never scale); `rope_factor` null means
    context / the model's max_position_embeddings (the report's Unsloth runs scaled linearly).
    """
    kind = loading.rope_scaling
    if kind is None:
        return None
    native = int(config.max_position_embeddings)
    factor = loading.rope_factor or loading.context / native
    if float(factor) <= 1.0:
        return None
    params = {**dict(getattr(config, "rope_parameters", None) or {}), "rope_type": kind}
    params["factor"] = float(factor)
    if kind == "yarn":
        params["original_max_position_embeddings"] = native
    return params


def load_base(
    name_or_path: str | Path,
    loading: BaseLoading,
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
) -> PreTrainedModel:
    """A pretrained causal LM by hub id or local folder, with RoPE scaling and quantization.

    Offline (HF_HUB_OFFLINE=1) only the local cache is read. A model that cannot be found raises
    `BaseModelUnavailable` naming it and the ways to provide it.
    """
    device = torch.device(device)
    name = _checked_name(name_or_path)
    quant = quantization_config(loading)
    common = _hub_options(cache_dir)
    try:
        config = AutoConfig.from_pretrained(name, **common)
    except OSError as exc:  # transformers reports missing files and repos as OSError
        raise _unavailable(name, common["local_files_only"], cache_dir, exc) from exc
    rope = rope_parameters(config, loading)
    if rope is not None:
        config.rope_parameters = rope
        log.info("RoPE scaling for context %s: %s", loading.context, rope)
    kwargs: dict[str, Any] = {"config": config, "dtype": resolve_dtype(loading, device), **common}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device.index or 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise _unavailable(name, common["local_files_only"], cache_dir, exc) from exc
    return model if quant is not None else model.to(device)


def load_base_tokenizer(
    name_or_path: str | Path, cache_dir: str | Path | None = None
) -> PreTrainedTokenizerFast:
    """The base model's (fast) tokenizer, with a pad token (Llama-2 and Mistral have none;
    padding is masked anyway)."""
    name = _checked_name(name_or_path)
    common = _hub_options(cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **common)
    except OSError as exc:
        raise _unavailable(name, common["local_files_only"], cache_dir, exc) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise BaseModelUnavailable(f"base_model {name!r}: needs a fast (tokenizers) tokenizer")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def _checked_name(name_or_path: str | Path) -> str:
    name = str(name_or_path)
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
        raise BaseModelUnavailable(
            f"base_model {name!r}: no such folder; point base_model in conf/model/finetune.yaml "
            "at a folder with config.json, the weights and the tokenizer (save_pretrained output)."
        )
    return name


def _hub_options(cache_dir: str | Path | None) -> dict[str, Any]:
    return {"cache_dir": str(cache_dir) if cache_dir else None, "local_files_only": hub_offline()}


def _unavailable(
    name: str, offline: bool, cache_dir: str | Path | None, exc: Exception
) -> BaseModelUnavailable:
    """The error for a base that cannot be loaded, with the ways to provide it."""
    from huggingface_hub import constants

    if looks_like_path(name):
        return BaseModelUnavailable(f"base_model {name!r}: cannot load it ({exc})")
    cache = cache_dir or constants.HF_HUB_CACHE
    why = "the Hub is offline (HF_HUB_OFFLINE=1)" if offline else "the Hub could not serve it"
    return BaseModelUnavailable(
        f"base model {name!r} is not in the Hugging Face cache {cache} and {why} ({exc}). "
        f"Fix: on a machine with network run `hf download {name}` (gated models such as "
        "meta-llama/* need the licence accepted on huggingface.co and `hf auth login` first) "
        "and copy the cache here or point HF_HOME at it; or set base_model in "
        "conf/model/finetune.yaml to a local folder holding the model; or use base_model: null "
        "for the offline stand-in."
    )


# --- adapters ----------------------------------------------------------------------------------


def apply_lora(model: PreTrainedModel, spec: FinetuneSpec) -> PeftModel:
    """Freeze `model` and add LoRA adapters (r, alpha, dropout of `spec`) on the seven projections
    of every decoder layer; a 4-bit model is first prepared for k-bit training."""
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(TARGET_MODULES) - present)
    if missing:
        raise ValueError(
            f"{type(model).__name__} has no {missing} modules; LoRA targets {TARGET_MODULES} "
            "(a Llama / Mistral style decoder)"
        )
    model.config.use_cache = False
    ckpt = {"use_reentrant": False}
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, spec.gradient_checkpointing, ckpt)
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt)
        model.enable_input_require_grads()
    config = LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(TARGET_MODULES),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def adapted_modules(model: torch.nn.Module) -> dict[int, list[str]]:
    """Decoder layer index -> the sorted projection names that carry a LoRA adapter."""
    layers: dict[int, set[str]] = {}
    for name, module in model.named_modules():
        if not hasattr(module, "lora_A"):
            continue
        parts = name.split(".")
        if "layers" in parts:
            index = int(parts[parts.index("layers") + 1])
            layers.setdefault(index, set()).add(parts[-1])
    return {k: sorted(v) for k, v in sorted(layers.items())}


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights counted unpacked (peft's count)."""
    if isinstance(model, PeftModel):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
