"""The steps of the GPU check (`gpu_check.py`). Each takes the run's `Check` and fills its record
in place, so what it measured before a failure or a timeout stays in the JSON.

Models are built from conf/ as the thesis profile composes them (by hand here: the device has no
Hydra), with random weights and REMI's vocabulary (501, what the thesis models train on); a dry
run shrinks each to its smoke width, 2 layers and context 64, and runs in fp32 on the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import bench_train
import gpu_wheels
import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("gpt", "mistral", "llama", "mamba", "rwkv6")
ATTENTION = ("gpt", "mistral", "llama")
VOCAB = 501  # REMI's vocabulary with the committed tokenizer config (the thesis models' input)
TARGET_MFU = 0.40
WKV_TOLERANCE = 2.0**-8  # bf16's unit roundoff, relative to the largest reference value
MODEL_TOLERANCE_FP32 = 1e-4  # RWKV-6 logits in fp32, one forward vs token by token
PACKAGES = (
    "torch", "transformers", "peft", "accelerate", "deepspeed", "bitsandbytes", "safetensors",
    "huggingface_hub", "tokenizers", "numpy", "symusic", "omegaconf", "triton", "mamba_ssm",
    "causal_conv1d",
)  # fmt: skip


class Skipped(Exception):
    """The step cannot run here; the message says why."""


class StepTimeout(Exception):
    """A step ran past its time limit (raised by gpu_check's alarm in the main thread)."""


@dataclass(frozen=True)
class Sizes:
    """How big each step runs: the thesis sizes on a GPU, tiny ones in a dry run."""

    tiny: bool
    batch: int  # training micro-batch of the family steps (the thesis profile's 24)
    mfu_batches: tuple[int, int]  # GPT MFU: the thesis micro-batch, then a larger one
    mfu_warmup: int
    mfu_steps: int
    family_warmup: int
    family_steps: int
    matmul: int
    gen_contexts: tuple[int, int]
    new_tokens: int
    sample_batch: int
    wkv_shape: tuple[int, int, int, int]  # batch, time, heads, head size
    model_check_tokens: int
    qlora: Mapping[str, int] = field(default_factory=dict)


GPU = Sizes(
    tiny=False, batch=24, mfu_batches=(24, 48), mfu_warmup=3, mfu_steps=10, family_warmup=1,
    family_steps=3, matmul=8192, gen_contexts=(512, 4096), new_tokens=64, sample_batch=8,
    wkv_shape=(4, 512, 8, 64), model_check_tokens=128,
    qlora={"hidden": 1024, "intermediate": 2816, "layers": 8, "heads": 16, "vocab": 32000,
           "context": 2048, "batch": 2, "steps": 4},
)  # fmt: skip
DRY = Sizes(
    tiny=True, batch=2, mfu_batches=(2, 4), mfu_warmup=1, mfu_steps=2, family_warmup=1,
    family_steps=1, matmul=256, gen_contexts=(48, 96), new_tokens=8, sample_batch=2,
    wkv_shape=(1, 80, 2, 16), model_check_tokens=24,
    qlora={"hidden": 64, "intermediate": 172, "layers": 2, "heads": 4, "vocab": 1000,
           "context": 64, "batch": 2, "steps": 2},
)  # fmt: skip


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def profile_params(profile: str) -> dict[str, Any]:
    """params as conf/config.yaml composes them with `profile`, for the keys the check reads:
    train (the group with the profile's block on top), generate, seed, and each model entry
    (conf/model/<key>.yaml with the profile's models.<key> on top)."""
    conf = REPO / "conf"
    prof = _yaml(conf / "profile" / f"{profile}.yaml")
    models = {}
    for key in (*FAMILIES, "finetune"):
        models[key] = {
            **_yaml(conf / "model" / f"{key}.yaml"),
            **prof.get("models", {}).get(key, {}),
        }
    return {
        "seed": _yaml(conf / "config.yaml")["seed"],
        "train": {**_yaml(conf / "train" / "default.yaml"), **prof.get("train", {})},
        "generate": _yaml(conf / "generate" / "default.yaml"),
        "models": models,
    }


@dataclass
class Check:
    """One run of the check: device, sizes, the thesis specs and what earlier steps found."""

    device: torch.device
    dry_run: bool
    work: Path
    commit: str | None = None
    install_report: Path | None = None
    sizes: Sizes = field(init=False)
    params: dict[str, Any] = field(init=False)
    smoke: dict[str, Any] = field(init=False)
    peak_flops: float | None = None
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.sizes = DRY if self.dry_run else GPU
        self.params = profile_params("thesis")
        self.smoke = profile_params("smoke")

    def remaining(self) -> float:
        """Seconds left before the current step's limit (for subprocess timeouts)."""
        return max(1.0, self.deadline - time.monotonic())

    def spec(self, key: str) -> Any:
        from midilm.specs import model_spec

        return model_spec(self.params, key)

    def arch(self, key: str) -> dict[str, Any]:
        """The thesis architecture of `key`; a dry run's: the smoke width, 2 layers, context 64."""
        if not self.dry_run:
            return dict(self.spec(key).architecture)
        from midilm.specs import model_spec

        return {**model_spec(self.smoke, key).architecture, "context": 64, "n_layer": 2}

    @property
    def precision(self) -> str:
        return "bf16" if self.device.type == "cuda" else "fp32"

    def train_spec(self, key: str, **changes: Any) -> Any:
        """The thesis train spec of `key` (micro-batch 24, bf16, gradient checkpointing) on one
        process (DeepSpeed has its own step) with `changes`."""
        base = {
            "batch_size": self.sizes.batch,
            "strategy": "single",
            "precision": self.precision,
            "device": self.device.type,
            "threads": 1 if self.dry_run else 8,
            "compile": False,
        }
        return dataclasses.replace(self.spec(key).train, **{**base, **changes})

    def mfu(self, result: Mapping[str, Any]) -> float | None:
        if self.peak_flops is None or "tokens_per_s" not in result:
            return None
        flops = result["tokens_per_s"] * result["flops_per_token"]
        return round(flops / (self.peak_flops * result.get("processes", 1)), 4)


# --- environment -------------------------------------------------------------------------------


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def source_digest() -> str:
    """sha256 over the code and config the check ran (the copied tree may have no .git)."""
    digest = hashlib.sha256()
    files = sorted(
        [
            *REPO.glob("src/midilm/**/*.py"),
            *REPO.glob("benchmarks/*.py"),
            *REPO.glob("conf/**/*.yaml"),
        ]
    )
    for path in files:
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=False)  # fmt: skip
    return done.stdout.strip() or None


def environment(check: Check, record: dict[str, Any]) -> None:
    """Device, driver, versions, where the packages came from, the installed wheels."""
    record.update(
        python=sys.version.split()[0],
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        commit=check.commit or _git_commit(),
        source_digest=source_digest(),
        versions={name: _version(name) for name in PACKAGES},
        transformers_from=str(Path(importlib.import_module("transformers").__file__).parent),
        torch_cuda=torch.version.cuda,
    )
    if check.install_report and check.install_report.exists():
        record["install"] = json.loads(check.install_report.read_text())
    if check.device.type == "cuda":
        props = torch.cuda.get_device_properties(check.device)
        record["device"] = {
            "name": props.name,
            "capability": list(torch.cuda.get_device_capability(check.device)),
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "cudnn": torch.backends.cudnn.version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "sdpa_flash_enabled": torch.backends.cuda.flash_sdp_enabled(),
        }
        query = ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"]
        try:
            smi = subprocess.run(query, capture_output=True, text=True, check=False, timeout=10)
            record["device"]["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()[-300:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            record["device"]["nvidia_smi"] = f"not available: {exc}"
    else:
        record["device"] = {"name": "cpu", "threads": torch.get_num_threads()}


def matmul_peak(check: Check, record: dict[str, Any]) -> None:
    """The bf16 matmul rate the MFU figures divide by (fp32 on a dry run's CPU)."""
    dtype = torch.bfloat16 if check.device.type == "cuda" else torch.float32
    rate = bench_train.matmul_peak_flops(check.device, dtype, check.sizes.matmul)
    check.peak_flops = rate["best"]
    record.update(
        dtype=str(dtype).removeprefix("torch."),
        size=check.sizes.matmul,
        best_tflops=float(f"{rate['best'] / 1e12:.4g}"),
        mean_tflops=float(f"{rate['mean'] / 1e12:.4g}"),
    )


# --- training ----------------------------------------------------------------------------------


@contextmanager
def _dry_compile(check: Check) -> Iterator[None]:
    """In a dry run torch.compile traces with dynamo but skips inductor's code generation (a
    C++ build of minutes on a shared CPU): the model's graph capture is what can break."""
    if not check.dry_run:
        yield
        return
    original = torch.compile

    def eager_compile(model: Any = None, **kwargs: Any) -> Any:
        return original(model, **{**kwargs, "backend": "eager"})

    torch.compile = eager_compile  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.compile = original  # type: ignore[assignment]


def gpt_mfu(check: Check, record: dict[str, Any]) -> None:
    """The thesis GPT (12 x 768, context 1024) in bf16: tokens/s and MFU as the stage trains
    (micro-batch 24, deterministic kernels, foreach AdamW), then fused AdamW without
    deterministic mode under flash-only SDPA, a micro-batch of 48, and torch.compile."""
    arch = check.arch("gpt")
    small, large = check.sizes.mfu_batches
    variants = {
        f"stage_b{small}": ({"batch_size": small}, {}),
        f"fused_flash_b{small}": (
            {"batch_size": small}, {"fused_adamw": True, "deterministic": False, "flash_only": True}
        ),
        f"fused_b{large}": ({"batch_size": large}, {"fused_adamw": True, "deterministic": False}),
        f"compiled_fused_b{large}": (
            {"batch_size": large, "compile": True}, {"fused_adamw": True, "deterministic": False}
        ),
    }  # fmt: skip
    record.update(arch=arch, vocab=VOCAB, target_mfu=TARGET_MFU, variants={})
    for name, (spec_changes, timing_changes) in variants.items():
        spec = check.train_spec("gpt", gradient_checkpointing=False, **spec_changes)
        timing = bench_train.Timing(
            warmup=check.sizes.mfu_warmup, steps=check.sizes.mfu_steps, **timing_changes
        )
        record["variants"][name] = {"status": "running"}  # what a timeout interrupted
        try:
            with _dry_compile(check):
                result = bench_train.time_training(arch, VOCAB, spec, check.device, timing)
            result["mfu"] = check.mfu(result)
        except StepTimeout:
            raise
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[-1500:]}
        record["variants"][name] = result
        _best_so_far(record)
        _release(check)
    if "best" not in record:
        raise RuntimeError("every GPT variant failed (see variants)")
    if check.dry_run:
        record["note"] = "dry run: fp32 on CPU, torch.compile with backend 'eager'"


def _best_so_far(record: dict[str, Any]) -> None:
    """The fastest variant measured yet and whether it reaches the MFU target (kept up to date
    after each variant, so a timeout in torch.compile leaves it)."""
    ran = {k: v for k, v in record["variants"].items() if "tokens_per_s" in v}
    if not ran:
        return
    best = max(ran, key=lambda k: ran[k]["tokens_per_s"])
    mfu = ran[best]["mfu"]
    record["best"] = {"variant": best, "tokens_per_s": ran[best]["tokens_per_s"], "mfu": mfu}
    record["target_met"] = None if mfu is None else mfu >= TARGET_MFU


def _release(check: Check) -> None:
    import gc

    gc.collect()
    if check.device.type == "cuda":
        torch.cuda.empty_cache()


def deepspeed_zero2(check: Check, record: dict[str, Any]) -> None:
    """The thesis GPT under DeepSpeed ZeRO-2 in one process (bf16 on GPU, fp32 with gloo on a
    dry run's CPU), with and without gradient checkpointing, each in its own process."""
    if importlib.util.find_spec("deepspeed") is None:
        raise Skipped("deepspeed is not installed (its wheel was not carried)")
    arch = check.arch("gpt")
    record.update(arch=arch, variants={})
    variants = (("zero2", False), ("zero2+checkpointing", True))
    for index, (name, checkpointing) in enumerate(variants):
        options = bench_train.worker_options(
            "deepspeed", check.device.type, check.precision, check.sizes.batch,
            check.sizes.mfu_steps, check.sizes.mfu_warmup, VOCAB, arch=arch,
            threads=1 if check.dry_run else 8, checkpointing=checkpointing,
        )  # fmt: skip
        timeout = check.remaining() / (len(variants) - index) - 1
        result = bench_train.run_worker(options, processes=1, timeout=timeout)
        if "tokens_per_s" in result:
            result["mfu"] = check.mfu(result)
        record["variants"][name] = result
    if all("error" in v for v in record["variants"].values()):
        raise RuntimeError("both DeepSpeed runs failed (see variants)")


def train_family(key: str) -> Callable[[Check, dict[str, Any]], None]:
    """The step timing family `key`'s training at its thesis size and the thesis profile's
    settings (micro-batch 24, bf16, gradient checkpointing) through the stage's engine."""

    def run(check: Check, record: dict[str, Any]) -> None:
        arch = check.arch(key)
        spec = check.train_spec(key)
        warmup, steps = check.sizes.family_warmup, check.sizes.family_steps
        if key == "mamba" and not check.dry_run:
            steps = 1  # launch bound (see the plan): one timed step after the warm-up
        timing = bench_train.Timing(warmup=warmup, steps=steps, max_seconds=check.remaining() / 3)
        record.update(family=arch["family"], arch=arch, vocab=VOCAB)
        if key == "mamba":
            record["mamba_kernels"] = importlib.util.find_spec("mamba_ssm") is not None
        result = bench_train.time_training(arch, VOCAB, spec, check.device, timing)
        result["mfu"] = check.mfu(result)
        record.update(result)
        if not math.isfinite(result["loss_last"]):
            raise FloatingPointError(f"loss {result['loss_last']} after {steps + warmup} steps")

    run.__name__ = f"train_{key}"
    return run


def train_seqgan(check: Check, record: dict[str, Any]) -> None:
    """One SeqGAN adversarial batch at the paper's sizes (64 sequences x 16 roll-outs of every
    prefix, 5 x 3 discriminator epochs on 1,024 + 1,024, the full discriminator) at the music
    task's length 32; dry run: tiny. Longer lengths: benchmarks/bench_seqgan.py --device cuda."""
    from midilm.seqgan.bench import BenchSizes, measure_adversarial_batch

    if check.dry_run:
        sizes = BenchSizes(g_batch=4, rollouts=2, positives=16, d_rounds=1, d_epochs=1,
                           filter_scale=0.05)  # fmt: skip
    else:
        sizes = BenchSizes()
    record["sizes"] = dataclasses.asdict(sizes)
    record["lengths"] = {"32": measure_adversarial_batch(32, check.device, sizes)}


# --- RWKV-6's WKV kernel -----------------------------------------------------------------------


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    scale = float(reference.abs().max()) or 1.0
    return float((value.double() - reference).abs().max()) / scale


def _wkv_inputs(shape: tuple[int, int, int, int], strong: bool, seed: int) -> list[torch.Tensor]:
    """r, k, v, log decay, bonus, state as the model feeds the kernel: bf16 projections cast
    to fp32. `strong` decays make a chunk's total decay pass e^-60 (the pairwise score path)."""
    batch, _, heads, size = shape
    g = torch.Generator().manual_seed(seed)
    r, k = (torch.randn(shape, generator=g) * 0.5 for _ in range(2))
    v = torch.randn(shape, generator=g)
    low, high = (1.0, 2.5) if strong else (-6.0, -0.5)
    decay = torch.rand(shape, generator=g) * (high - low) + low
    u = torch.randn(heads, size, generator=g) * 0.5
    state = torch.randn(batch, heads, size, size, generator=g) * 0.1
    rounded = [x.bfloat16().float() for x in (r, k, v, decay)]
    r, k, v, decay = rounded
    return [r, k, v, -torch.exp(decay), u, state]


def _wkv_run(fn: Callable, inputs: list[torch.Tensor], weight: torch.Tensor,
             dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:  # fmt: skip
    leaves = [x.to(device, dtype, copy=True).requires_grad_(i < 5) for i, x in enumerate(inputs)]
    out, state = fn(*leaves)
    (out * weight.to(device, dtype)).sum().backward()
    names = ("r", "k", "v", "log_w", "u")
    grads = {f"grad_{n}": leaf.grad.detach() for n, leaf in zip(names, leaves, strict=False)}
    return {"out": out.detach(), "state": state.detach(), **grads}


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    bench_train._sync(device)
    start = time.perf_counter()
    fn()
    bench_train._sync(device)
    return time.perf_counter() - start


def rwkv6_kernel(check: Check, record: dict[str, Any]) -> None:
    """The chunked WKV against the step-by-step reference on the device (fp64 reference; fp32
    chunked and recurrent, as the model runs them on bf16-rounded inputs), in both score paths;
    then the thesis RWKV-6, whole sequence (chunked) against token by token with its state
    (recurrent), in fp32 (must agree) and bf16 autocast (reported). Fails beyond a tolerance."""
    from midilm.models import build_model
    from midilm.models.wkv6 import wkv6_chunked, wkv6_recurrent

    shape, device = check.sizes.wkv_shape, check.device
    chunk = int(check.arch("rwkv6")["chunk_size"])
    record.update(shape=list(shape), chunk=chunk, tolerance=WKV_TOLERANCE, regimes={})
    passed = True
    for regime, strong in (("mild_decay", False), ("strong_decay", True)):
        inputs = _wkv_inputs(shape, strong, seed=1 if strong else 0)
        weight = torch.randn(shape, generator=torch.Generator().manual_seed(2))
        reference = _wkv_run(wkv6_recurrent, inputs, weight, torch.float64, device)
        chunked = _wkv_run(lambda *a: wkv6_chunked(*a, chunk=chunk), inputs, weight,
                           torch.float32, device)  # fmt: skip
        stepwise = _wkv_run(wkv6_recurrent, inputs, weight, torch.float32, device)
        errors = {n: _relative_error(chunked[n], reference[n]) for n in reference}
        yardstick = {n: _relative_error(stepwise[n], reference[n]) for n in reference}
        ok = max(errors.values()) <= WKV_TOLERANCE
        passed &= ok
        fp32 = [x.to(device) for x in inputs]
        with torch.no_grad():
            t_chunk = _timed(lambda fp32=fp32: wkv6_chunked(*fp32, chunk=chunk), device)
            t_step = _timed(lambda fp32=fp32: wkv6_recurrent(*fp32), device)
        record["regimes"][regime] = {
            "chunked_relative_error": {n: float(f"{e:.3g}") for n, e in errors.items()},
            "recurrent_fp32_relative_error": {n: float(f"{e:.3g}") for n, e in yardstick.items()},
            "within_tolerance": ok,
            "forward_ms": {"chunked": round(1e3 * t_chunk, 2), "recurrent": round(1e3 * t_step, 2)},
        }

    # the model: one forward over the sequence against one token at a time with the state, in
    # fp32 (must agree) and under bf16 autocast (reported: the matmuls round differently)
    torch.manual_seed(0)
    model = build_model(check.arch("rwkv6"), VOCAB, 0, 1, 2).to(device).eval()
    ids = torch.randint(3, VOCAB, (2, check.sizes.model_check_tokens), device=device)
    record["model"] = {"tokens": ids.size(1), "tolerance_fp32": MODEL_TOLERANCE_FP32}
    for precision in ("fp32", "bf16") if device.type == "cuda" else ("fp32",):
        error = _whole_against_stepwise(model, ids, precision)
        record["model"][f"logits_relative_error_{precision}"] = float(f"{error:.3g}")
    model_ok = record["model"]["logits_relative_error_fp32"] <= MODEL_TOLERANCE_FP32
    record["model"]["within_tolerance"] = model_ok
    if not (passed and model_ok):
        raise AssertionError("chunked and recurrent WKV differ beyond the tolerance (see record)")


def _whole_against_stepwise(model: torch.nn.Module, ids: torch.Tensor, precision: str) -> float:
    """Relative difference of the logits of one forward over `ids` and of one token at a time."""
    from midilm.train.precision import autocast

    with torch.no_grad(), autocast(ids.device, precision):
        whole = model(input_ids=ids).logits.double()
        state, steps = None, []
        for t in range(ids.size(1)):
            out = model(input_ids=ids[:, t : t + 1], state=state, use_cache=True)
            state = out.state
            steps.append(out.logits[:, -1])
    return _relative_error(torch.stack(steps, 1), whole)


# --- QLoRA -------------------------------------------------------------------------------------


def qlora(check: Check, record: dict[str, Any]) -> None:
    """A Llama built from config (random weights, saved and loaded back as a base model) in
    NF4 with bf16 compute and double quantization, LoRA on the seven projections (the thesis
    finetune spec: r 16, alpha 16, gradient checkpointing), a few steps through the engine.
    Without a GPU or bitsandbytes the base loads unquantized and the reason is recorded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from midilm.finetune.model import (
        TARGET_MODULES,
        BaseLoading,
        QuantizationUnavailable,
        adapted_modules,
        apply_lora,
        load_base,
        parameter_counts,
        quantization_config,
    )
    from midilm.train.data import random_batch
    from midilm.train.distributed import DistContext
    from midilm.train.engine import make_engine
    from midilm.train.loop import lm_loss
    from midilm.train.precision import resolve_precision

    size, device = check.sizes.qlora, check.device
    finetune = check.spec("finetune").finetune
    config = LlamaConfig(
        vocab_size=size["vocab"], hidden_size=size["hidden"],
        intermediate_size=size["intermediate"], num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"], num_key_value_heads=size["heads"],
        max_position_embeddings=size["context"], tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = check.work / "qlora_base"
    LlamaForCausalLM(config).save_pretrained(folder)

    reason = None
    wanted = finetune.quantize
    if wanted == "nf4":
        try:
            quantization_config(BaseLoading(size["context"], "nf4", "auto", None, None))
        except QuantizationUnavailable as exc:
            reason = str(exc)
        if reason is None and importlib.util.find_spec("bitsandbytes") is None:
            reason = "bitsandbytes is not installed (its wheel was not carried): LoRA in bf16"
    quantize = "nf4" if wanted == "nf4" and reason is None else "none"
    record["nf4"] = {"status": "ran" if quantize == "nf4" else "skipped", "reason": reason}
    loading = BaseLoading(size["context"], quantize, finetune.dtype, None, None)
    model = apply_lora(load_base(folder, loading, device), finetune)
    trainable, total = parameter_counts(model)
    adapted = adapted_modules(model)
    four_bit = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
    record.update(
        sizes=dict(size), lora_r=finetune.lora_r, lora_alpha=finetune.lora_alpha,
        gradient_checkpointing=finetune.gradient_checkpointing, quantize=quantize,
        trainable_parameters=trainable, total_parameters=total, linear4bit_modules=four_bit,
    )  # fmt: skip
    expected = {i: sorted(TARGET_MODULES) for i in range(size["layers"])}
    if adapted != expected:
        raise AssertionError(f"LoRA adapters on {adapted}, expected {expected}")
    if quantize == "nf4" and four_bit != len(TARGET_MODULES) * size["layers"]:
        raise AssertionError(f"{four_bit} Linear4bit modules, expected 7 x {size['layers']}")

    precision = resolve_precision(check.precision, device)
    spec = dataclasses.replace(
        check.spec("finetune").train,
        batch_size=size["batch"],
        grad_accum=1,
        gradient_checkpointing=False,
        compile=False,
    )
    engine = make_engine("single", model, spec, DistContext(), device, precision)
    base_name, base_param = next((n, p) for n, p in model.named_parameters()
                                 if "q_proj.base_layer" in n)  # fmt: skip
    base_before = base_param.detach().clone()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    stream = np.random.default_rng(0).integers(4, size["vocab"], size=200_000)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, elapsed = [], 0.0
    model.train()
    for step in range(size["steps"]):
        x, y = random_batch(stream, size["context"], size["batch"], 0, step % 2)  # two batches
        bench_train._sync(device)
        start = time.perf_counter()
        losses.append(engine.micro_step({"input_ids": x.to(device), "labels": y.to(device)},
                                        lm_loss, 1.0, True))  # fmt: skip
        engine.optimizer_step()
        bench_train._sync(device)
        elapsed += time.perf_counter() - start if step else 0.0  # the first step warms up
    from midilm.models.runtime import peak_memory_mb

    timed = max(size["steps"] - 1, 1)
    record.update(
        precision=precision,
        losses=[round(v, 4) for v in losses],
        tokens_per_s=round(size["batch"] * size["context"] * timed / max(elapsed, 1e-9), 1),
        peak_memory_mb=round(peak_memory_mb(device), 1),
        base_weight_unchanged=bool(torch.equal(base_param.detach(), base_before)),
        lora_b_trained=bool(any(p.detach().abs().sum() > 0 for p in lora_b)),
        base_weight_checked=base_name,
    )
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError(f"non-finite loss: {losses}")
    if not (record["base_weight_unchanged"] and record["lora_b_trained"]):
        raise AssertionError("LoRA training changed the frozen base or left the adapters at zero")


# --- generation --------------------------------------------------------------------------------


class ForwardTimer:
    """Wall time of each forward call of a model (synchronized): the first is the prompt."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device, self.times, self._start = device, [], 0.0
        self.handles = [
            model.register_forward_pre_hook(self._before),
            model.register_forward_hook(self._after),
        ]

    def _before(self, *_: Any) -> None:
        bench_train._sync(self.device)
        self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        bench_train._sync(self.device)
        self.times.append(time.perf_counter() - self._start)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def generation(check: Check, record: dict[str, Any]) -> None:
    """Sampling tokens/s of each family (random weights in fp32, as the generate stage loads
    them, under its deterministic mode) with the thesis sampling settings, one sequence and a
    batch, after prompts that fill the context to 512 and 4096 tokens (attention families are
    built with 4096 positions). Decode tokens/s leaves the prompt's forward out."""
    from midilm.generate.sampling import Sampling, generate
    from midilm.models import build_model
    from midilm.models.runtime import deterministic, peak_memory_mb

    sizes, device = check.sizes, check.device
    gen = check.spec("gpt").generate
    sampling = Sampling(gen.temperature, gen.top_k, gen.top_p, gen.presence_penalty,
                        gen.frequency_penalty, gen.alpha_decay)  # fmt: skip
    record.update(contexts=list(sizes.gen_contexts), new_tokens=sizes.new_tokens,
                  sample_batch=sizes.sample_batch, sampling=dataclasses.asdict(sampling),
                  families={})  # fmt: skip
    rng = np.random.default_rng(0)
    failures = []
    for key in FAMILIES:
        rows: dict[str, Any] = {}
        record["families"][key] = rows
        try:
            arch = check.arch(key)
            if key in ATTENTION:
                arch["context"] = max(sizes.gen_contexts)
            with deterministic(0, 1 if check.dry_run else 8):
                model = build_model(arch, VOCAB, 0, 1, 2).to(device).eval()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                for context in sizes.gen_contexts:
                    for mode, batch in (("alone", 1), ("batched", sizes.sample_batch)):
                        prompt = rng.integers(3, VOCAB, context - sizes.new_tokens).tolist()
                        rows[f"{mode}_{context}"] = _sample(
                            model, [prompt] * batch, sizes.new_tokens, sampling, device, generate
                        )
            rows["peak_memory_mb"] = round(peak_memory_mb(device), 1)
        except StepTimeout:
            raise
        except Exception as exc:
            rows["error"] = f"{type(exc).__name__}: {exc}"[-1500:]
            failures.append(key)
        finally:
            model = None
            _release(check)
    if failures:
        raise RuntimeError(f"generation failed for {failures} (see families)")


def _sample(model: torch.nn.Module, prompts: list[list[int]], new_tokens: int, sampling: Any,
            device: torch.device, generate: Callable) -> dict[str, Any]:  # fmt: skip
    generators = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    timer = ForwardTimer(model, device)
    try:
        start = time.perf_counter()
        new = generate(model, prompts, generators, new_tokens, sampling)
        total = time.perf_counter() - start
    finally:
        timer.close()
    produced = sum(len(n) for n in new)
    decode = total - timer.times[0]
    return {
        "sequences": len(prompts),
        "prompt_tokens": len(prompts[0]),
        "new_tokens": produced,
        "prompt_s": round(timer.times[0], 4),
        "decode_s": round(decode, 4),
        "decode_tokens_per_s": round(produced / max(decode, 1e-9), 1),
        "tokens_per_s_with_prompt": round(produced / total, 1),
    }


# --- what the device must have ------------------------------------------------------------------


def imports(check: Check, record: dict[str, Any]) -> None:
    """Direct dependencies of midilm imported by the check (and by the `midilm train` path it
    runs in subprocesses) that the device image lacks and no carried wheel brings."""
    for module in ("midilm.cli", "midilm.train.stage", "midilm.finetune.model"):
        importlib.import_module(module)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    direct = {gpu_wheels.normalize(d.split("==")[0].split(">")[0].split("<")[0].split("[")[0])
              for d in pyproject["project"]["dependencies"]}  # fmt: skip
    owners = metadata.packages_distributions()
    loaded = {gpu_wheels.normalize(d) for name in list(sys.modules)
              for d in owners.get(name.split(".")[0], [])}  # fmt: skip
    image = gpu_wheels.read_image_packages()
    carried = {gpu_wheels.normalize(w.name) for w in gpu_wheels.read_wanted()}
    needed = sorted(loaded & direct)
    missing = [name for name in needed if name not in image | carried]
    record.update(direct_dependencies_loaded=needed, not_on_device=missing,
                  carried=sorted(carried))  # fmt: skip
    if missing:
        raise AssertionError(
            f"{missing} are imported but neither in the device image nor carried: add them to "
            "benchmarks/gpu_wheels.txt"
        )
