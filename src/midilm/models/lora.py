"""A pretrained causal LM with LoRA / QLoRA adapters (seed 004), and its offline stand-in.

`load_base` loads a model by Hugging Face hub id or local folder (Llama-2-7b, Mistral-7B-v0.1 on
the cluster), with RoPE scaling when the context is longer than the model's and, for
`quantize: nf4`, bitsandbytes 4-bit NF4 storage (block size 64, bitsandbytes' fixed 4-bit block)
with double quantization and bf16 compute: QLoRA, CUDA only. `apply_lora` wraps the seven
projections of every decoder layer (q, k, v, o, gate, up, down) in peft LoRA adapters and
freezes the rest. `build_offline_base` makes the stand-in the offline DAG fine-tunes instead of
Llama-2-7b: a small Llama trained from scratch with its own byte-level BPE tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from midilm.common.logging import get_logger
from midilm.train.data import random_batch
from midilm.train.loop import lm_loss
from midilm.train.optim import lr_at, make_optimizer

log = get_logger(__name__)

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QUANTIZE_MODES = ("none", "nf4")
ROPE_TYPES = ("linear", "dynamic", "yarn")
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0..3, Llama's order plus a pad
CHAT_MARKERS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
_TRUE = {"1", "on", "yes", "true"}


class BaseModelUnavailable(RuntimeError):
    """The base model can be neither found locally nor downloaded."""


class QuantizationUnavailable(RuntimeError):
    """QLoRA (NF4) was asked for where bitsandbytes cannot run it (no CUDA GPU)."""


# --- loading -----------------------------------------------------------------------------------


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set now (read at call time, unlike the hub's
    import-time constant), or huggingface_hub's own offline mode."""
    import huggingface_hub

    flags = (
        os.environ.get(k, "").strip().lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return any(f in _TRUE for f in flags) or bool(huggingface_hub.is_offline_mode())


def looks_like_path(name: str) -> bool:
    """A local folder rather than a hub id (`org/name`)."""
    return Path(name).expanduser().exists() or name.startswith(("/", "./", "../", "~"))


def resolve_dtype(cfg: Mapping[str, Any], device: torch.device) -> torch.dtype:
    """`dtype: auto` -> bfloat16 on CUDA (the report's compute type), float32 elsewhere."""
    name = str(cfg.get("dtype") or "auto")
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(
            f"dtype={name!r}; use auto, float32, bfloat16 or float16 (conf/model/lora.yaml)"
        )
    return getattr(torch, name)


def quantization_config(cfg: Mapping[str, Any]) -> BitsAndBytesConfig | None:
    """QLoRA's 4-bit config for `quantize: nf4`, None for `none`; nf4 without CUDA is an error."""
    mode = str(cfg.get("quantize") or "none").lower()
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize={mode!r}; use one of {QUANTIZE_MODES} (conf/model/lora.yaml)")
    if mode == "none":
        return None
    if not torch.cuda.is_available():
        raise QuantizationUnavailable(
            "quantize: nf4 (QLoRA) needs a CUDA GPU: bitsandbytes' NF4 training kernels do not "
            "run on this machine (no GPU visible). Run on a GPU node, or set `quantize: none` "
            "under the model's size in conf/model/lora.yaml to fine-tune with plain LoRA."
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def rope_parameters(config: Any, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """RoPE scaling for a context beyond the model's (`rope_parameters` in transformers 5, which
    reads the older `rope_scaling` key of saved configs too); None when not needed.

    `rope_scaling: linear|dynamic|yarn` (null: never scale); `rope_factor` null means
    context / the model's max_position_embeddings (the report's Unsloth runs scaled linearly).
    """
    kind = cfg.get("rope_scaling")
    if not kind or str(kind).lower() == "none":
        return None
    kind = str(kind).lower()
    if kind not in ROPE_TYPES:
        raise ValueError(f"rope_scaling={kind!r}; use one of {ROPE_TYPES} or null")
    native = int(config.max_position_embeddings)
    factor = cfg.get("rope_factor") or int(cfg["context"]) / native
    if float(factor) <= 1.0:
        return None
    params = {**dict(getattr(config, "rope_parameters", None) or {}), "rope_type": kind}
    params["factor"] = float(factor)
    if kind == "yarn":
        params["original_max_position_embeddings"] = native
    return params


def load_base(
    name_or_path: str | Path,
    cfg: Mapping[str, Any],
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """(model, tokenizer) of a pretrained causal LM by hub id or local folder.

    Offline (HF_HUB_OFFLINE=1) only the local cache is read. A model that cannot be found raises
    `BaseModelUnavailable` naming it and the ways to provide it.
    """
    device = torch.device(device)
    name = str(name_or_path)
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
        raise BaseModelUnavailable(
            f"base_model {name!r}: no such folder; point base_model in conf/model/lora.yaml at a "
            "folder with config.json, the weights and the tokenizer (save_pretrained output)."
        )
    quant = quantization_config(cfg)
    offline = hub_offline()
    common: dict[str, Any] = {"cache_dir": str(cache_dir) if cache_dir else None}
    common["local_files_only"] = offline
    try:
        config = AutoConfig.from_pretrained(name, **common)
    except OSError as exc:  # transformers reports missing files and repos as OSError
        raise _unavailable(name, offline, cache_dir, exc) from exc
    rope = rope_parameters(config, cfg)
    if rope is not None:
        config.rope_parameters = rope
        log.info("RoPE scaling for context %s: %s", cfg.get("context"), rope)
    kwargs: dict[str, Any] = {"config": config, "dtype": resolve_dtype(cfg, device), **common}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device.index or 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name, **common)
    except OSError as exc:
        raise _unavailable(name, offline, cache_dir, exc) from exc
    if quant is None:
        model = model.to(device)
    if not getattr(tokenizer, "is_fast", False):
        raise BaseModelUnavailable(f"base_model {name!r}: needs a fast (tokenizers) tokenizer")
    if tokenizer.pad_token_id is None:  # Llama-2 and Mistral have none; padding is masked anyway
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return model, tokenizer


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
        "conf/model/lora.yaml to a local folder holding the model; or use base_model: null "
        "for the offline stand-in."
    )


# --- adapters ----------------------------------------------------------------------------------


def apply_lora(
    model: PreTrainedModel, cfg: Mapping[str, Any], gradient_checkpointing: bool = False
) -> PeftModel:
    """Freeze `model` and add LoRA adapters (r, alpha, dropout of `cfg`) on the seven projections
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
        model = prepare_model_for_kbit_training(model, gradient_checkpointing, ckpt)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt)
        model.enable_input_require_grads()
    config = LoraConfig(
        r=int(cfg["lora_r"]),
        lora_alpha=int(cfg["lora_alpha"]),
        lora_dropout=float(cfg.get("lora_dropout", 0.0)),
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


# --- the offline stand-in ----------------------------------------------------------------------


def train_offline_tokenizer(
    texts: Iterable[str], vocab_size: int, extra_texts: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts` (+ `extra_texts`, e.g. the instruction header, weighted
    like one text each per text so its words get merges too).

    Pre-tokens split words at spaces and colons, so a note word ``p60:v80:d96:t0`` is a few
    field tokens (`` p60`` ``:v80`` ``:d96`` ``:t0`` once merged), as a general LLM tokenizer
    spends several tokens per note and unseen values still encode; the chat markers are single
    added tokens; ids 0..3 are <unk> <s> </s> <pad>.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = list(texts)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r" ?[^\s:]+|:[^\s:]*|\s+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus() -> Iterable[str]:
        for text in texts:
            yield text
            yield from extra_texts

    core.train_from_iterator(corpus(), trainer, length=len(texts) * (1 + len(extra_texts)))
    core.add_tokens([AddedToken(m, normalized=False, single_word=False) for m in CHAT_MARKERS])
    unk, bos, eos, pad = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=unk, bos_token=bos, eos_token=eos, pad_token=pad
    )


def build_offline_base(
    out_dir: Path, texts: Sequence[str], cfg: Mapping[str, Any], seed: int, header: str = ""
) -> Path:
    """The offline stand-in for Llama-2-7b in `out_dir` (save_pretrained model + tokenizer).

    A LlamaForCausalLM built from config with random weights (sizes in `cfg["offline_base"]`:
    n_layer, hidden, heads, intermediate, vocab_size), a BPE tokenizer trained on `texts` and
    `header`, then `pretrain_steps` steps of plain next-token training on the texts so the
    fine-tune starts from a pretrained model, like the real one. Deterministic for a seed.
    """
    base = dict(cfg.get("offline_base") or {})
    context = int(cfg["context"])
    torch.manual_seed(seed)
    tokenizer = train_offline_tokenizer(
        texts, int(base.get("vocab_size", 1024)), [header] if header else []
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(base.get("hidden", 128)),
        intermediate_size=int(base.get("intermediate", 344)),
        num_hidden_layers=int(base.get("n_layer", 4)),
        num_attention_heads=int(base.get("heads", 4)),
        num_key_value_heads=int(base.get("kv_heads", base.get("heads", 4))),
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    steps = int(base.get("pretrain_steps", 0))
    if steps > 0:
        pretrain(model, tokenizer, texts, base, context, seed, steps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info(
        "offline base: %d parameters, vocab %d -> %s",
        model.num_parameters(),
        len(tokenizer),
        out_dir,
    )
    return out_dir


def pretrain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    base: Mapping[str, Any],
    context: int,
    seed: int,
    steps: int,
) -> list[float]:
    """Full-weight next-token training on the texts (BOS text EOS, concatenated); the losses."""
    ids = tokenizer([f" {t}" for t in texts], add_special_tokens=False)["input_ids"]
    stream = np.asarray(
        [i for row in ids for i in (tokenizer.bos_token_id, *row, tokenizer.eos_token_id)],
        dtype=np.int64,
    )
    window = min(context, int(base.get("pretrain_context", 256)), stream.size - 1)
    cfg = {
        "lr": float(base.get("pretrain_lr", 3e-3)),
        "min_lr": float(base.get("pretrain_lr", 3e-3)) / 10,
        "warmup_steps": max(1, steps // 10),
        "steps": steps,
        "weight_decay": 0.01,
        "betas": (0.9, 0.99),
        "eps": 1e-8,
    }
    batch = int(base.get("pretrain_batch_size", 8))
    optimizer = make_optimizer(model, cfg)
    model.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        inputs, targets = random_batch(stream, window, batch, seed, step)
        loss = lm_loss(model, inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    log.info(
        "offline base pre-training: loss %.3f -> %.3f in %d steps", losses[0], losses[-1], steps
    )
    return losses
