"""Training throughput (tokens/s) of the GPT by strategy: one process, DDP and DeepSpeed ZeRO-2
over 2 processes, each with and without gradient checkpointing; on GPU also the MFU.

    python benchmarks/bench_train.py                      # CPU, smoke GPT (conf/model/gpt.yaml)
    python benchmarks/bench_train.py --device cuda --size thesis --precision bf16 --batch 16

Each configuration runs as its own launch (`torchrun --standalone --nproc_per_node N` of this
file with `--worker`; one process runs without torchrun), builds the model from
conf/model/gpt.yaml, and times `--steps` optimizer steps after `--warmup` with the training
engine the stage uses (`midilm.train.engine`) on random windows of a synthetic token stream
(throughput does not depend on the data). Tokens/s counts every process's tokens (global batch x
context per step). `time_training` is the measurement itself; `benchmarks/gpu_check.py` calls it
too (in process, and through `run_worker` for DeepSpeed).

On CUDA, MFU = model FLOPs per second / peak, with model FLOPs per token = 6 N + 12 L d T
(PaLM, appendix B: N = parameters that take part in matmuls, i.e. all but the position
embeddings and an untied input embedding (a lookup), a tied token embedding counted once as the
output head; L layers, width d, context T; the attention term only for attention families;
checkpointing's recompute is not counted) and the peak measured here as the best of several
large bf16 matmuls on the same GPU (not the datasheet figure).

Writes benchmarks/results/train_<device>.json (or `--name`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

REPO = Path(__file__).resolve().parents[1]
MARK = "BENCH_RESULT "
ATTENTION_FAMILIES = ("gpt2", "mistral", "llama")


def configurations(device: str) -> dict[str, tuple[str, int, bool]]:
    """name -> (strategy, processes, gradient checkpointing): 2 processes on CPU, one per GPU."""
    n = 2 if device == "cpu" else max(1, torch.cuda.device_count())
    table = {"single": ("single", 1, False), "single+checkpointing": ("single", 1, True)}
    if n > 1:
        table[f"ddp-{n}"] = ("ddp", n, False)
    table[f"deepspeed-{n}"] = ("deepspeed", n, False)
    table[f"deepspeed-{n}+checkpointing"] = ("deepspeed", n, True)
    return table


def model_cfg(size: str) -> dict:
    entry = yaml.safe_load((REPO / "conf" / "model" / "gpt.yaml").read_text())
    return {"family": entry["family"], "dropout": entry["dropout"], **entry["sizes"][size]}


def model_flops_per_token(model: torch.nn.Module, arch: Mapping[str, Any]) -> float:
    """6 N + 12 L d T (see the module docstring)."""
    seen = {id(p): p for p in model.parameters()}
    n = sum(p.numel() for p in seen.values())
    transformer = getattr(model, "transformer", None)
    if transformer is not None and hasattr(transformer, "wpe"):  # GPT-2's learned positions
        n -= transformer.wpe.weight.numel()
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if inputs is not None and (outputs is None or outputs.weight is not inputs.weight):
        n -= inputs.weight.numel()  # an untied input embedding is a lookup, not a matmul
    family = str(arch["family"]).lower()
    attention = 0
    if family in ATTENTION_FAMILIES:
        attention = 12 * int(arch["n_layer"]) * int(arch["n_embd"]) * int(arch["context"])
    return float(6 * n + attention)


def matmul_peak_flops(
    device: torch.device, dtype: torch.dtype = torch.bfloat16, size: int = 8192, repeats: int = 20
) -> dict[str, float]:
    """Best and mean rate (FLOP/s) of `repeats` square matmuls of `size` after 3 warm-ups."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        rates.append(2 * size**3 / (time.perf_counter() - start))
    return {"best": max(rates), "mean": sum(rates) / len(rates)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """How one configuration is timed, beyond what its TrainSpec says."""

    warmup: int
    steps: int
    fused_adamw: bool = False  # swap the engine's AdamW for torch's fused one (single/ddp)
    deterministic: bool = True  # as the stage trains (deterministic kernels, warn-only on CUDA)
    flash_only: bool = False  # CUDA: allow only the flash SDPA kernel (fails if it cannot run)
    max_seconds: float | None = None  # stop timing after this long (at least one timed step)
    seed: int = 0


@contextlib.contextmanager
def determinism(enabled: bool, seed: int, threads: int, device: torch.device) -> Iterator[None]:
    """The stage's deterministic mode (`run_job`: warn-only on CUDA), or seeds alone."""
    from midilm.models.runtime import deterministic

    if enabled:
        with deterministic(seed, threads):
            if device.type == "cuda":
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
        return
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def use_fused_adamw(engine: Any) -> None:
    """Replace a TorchEngine's AdamW by torch's fused AdamW with the same groups and settings
    (`midilm.train.optim.make_optimizer` builds the default foreach one)."""
    old = engine.optimizer
    first = old.param_groups[0]
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in old.param_groups]
    engine.optimizer = torch.optim.AdamW(
        groups, lr=first["lr"], betas=first["betas"], eps=first["eps"], fused=True
    )


def _kernel_choice(device: torch.device, flash_only: bool) -> contextlib.AbstractContextManager:
    if not (flash_only and device.type == "cuda"):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def time_training(
    arch: Mapping[str, Any],
    vocab: int,
    spec: Any,
    device: torch.device,
    timing: Timing,
    ctx: Any = None,
) -> dict[str, Any]:
    """Build the model of `arch`, train it with `spec`'s engine (strategy, precision, batch,
    checkpointing, compile) and time `timing.steps` optimizer steps after `timing.warmup`.

    Returns tokens/s (all processes), ms per step, peak memory, parameters, model FLOPs per
    token, the first and last loss and how many steps were timed.
    """
    from midilm.models import build_model, count_parameters
    from midilm.models.runtime import peak_memory_mb
    from midilm.train.data import random_batch
    from midilm.train.distributed import DistContext, all_reduce_sum
    from midilm.train.engine import enable_gradient_checkpointing, make_engine
    from midilm.train.loop import lm_loss
    from midilm.train.optim import lr_at
    from midilm.train.precision import matmul_precision, resolve_precision

    ctx = ctx or DistContext()
    precision = resolve_precision(spec.precision, device)
    context, batch = int(arch["context"]), int(spec.batch_size)
    dtype = np.uint16 if vocab <= 2**16 else np.int32
    stream = np.random.default_rng(timing.seed).integers(3, vocab, size=2_000_000, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with (
        determinism(timing.deterministic, timing.seed, spec.threads, device),
        matmul_precision(device, spec.tf32),
    ):
        model = build_model(arch, vocab, 0, 1, 2).to(device)
        checkpointing = bool(spec.gradient_checkpointing) and enable_gradient_checkpointing(model)
        flops_per_token = model_flops_per_token(model, arch)
        parameters = count_parameters(model)
        engine = make_engine(spec.strategy, model, spec, ctx, device, precision)
        if timing.fused_adamw:
            use_fused_adamw(engine)
        engine.module.train()
        elapsed, timed, losses = 0.0, 0, []
        with _kernel_choice(device, timing.flash_only):
            for step in range(timing.warmup + timing.steps):
                engine.set_lr(lr_at(step, spec))
                _sync(device)
                start = time.perf_counter()
                x, y = random_batch(stream, context, batch, timing.seed, step, 0, ctx.rank,
                                    ctx.world_size)  # fmt: skip
                loss = engine.micro_step(
                    {"input_ids": x.to(device), "labels": y.to(device)}, lm_loss, 1.0, True
                )
                engine.optimizer_step()
                (loss,) = all_reduce_sum([loss])
                losses.append(loss / ctx.world_size)
                _sync(device)
                if step >= timing.warmup:
                    elapsed += time.perf_counter() - start
                    timed += 1
                    if timing.max_seconds is not None and elapsed > timing.max_seconds:
                        break
        if timed == 0:
            raise RuntimeError("no step was timed (steps=0)")
        tokens_per_s = ctx.world_size * batch * context * timed / elapsed
        return {
            "tokens_per_s": round(tokens_per_s, 1),
            "step_ms": round(1000 * elapsed / timed, 2),
            "steps_timed": timed,
            "warmup_steps": timing.warmup,
            "batch_per_process": batch,
            "context": context,
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "parameters": parameters,
            "flops_per_token": flops_per_token,
            "precision": precision,
            "processes": ctx.world_size,
            "strategy": spec.strategy,
            "gradient_checkpointing": checkpointing,
            "compile": bool(spec.compile),
            "fused_adamw": timing.fused_adamw,
            "deterministic": timing.deterministic,
            "flash_only": timing.flash_only and device.type == "cuda",
            "loss_first": round(losses[0], 4),
            "loss_last": round(losses[-1], 4),
        }


def thesis_optimiser(args: argparse.Namespace) -> dict[str, Any]:
    """Overrides of the train group for a timing run: seed 001's optimiser and the flags."""
    return {
        "batch_size": args.batch,
        "grad_accum": 1,
        "grad_clip": 1.0,
        "lr": 6e-4,
        "min_lr": 6e-5,
        "warmup_steps": 10,
        "steps": args.warmup + args.steps,
        "weight_decay": 0.001,
        "betas": [0.9, 0.99],
        "eps": 1e-8,
        "zero_stage": 2,
        "strategy": args.strategy,
        "precision": args.precision,
        "gradient_checkpointing": args.checkpointing,
        "compile": args.compile,
        "threads": args.threads,
    }


def skip_shared_memory_allreduce() -> None:
    """DeepSpeed on a CPU JIT-compiles a shared-memory allreduce op (minutes of C++ on a small
    machine) when its communication backend starts; one process reduces with nobody, so gloo's
    plain path is kept instead (what DeepSpeed does where the op is unavailable)."""
    import importlib

    # by module path: the package attribute `deepspeed.comm.torch` is PyTorch itself
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def worker(args: argparse.Namespace) -> None:
    """One process of one configuration: time it, rank 0 prints the result."""
    from midilm.specs.train import train_spec
    from midilm.train.distributed import dist_context, process_group

    ctx = dist_context()
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    group = yaml.safe_load((REPO / "conf" / "train" / "default.yaml").read_text())
    spec = train_spec(group, thesis_optimiser(args))
    arch = json.loads(args.arch) if args.arch else model_cfg(args.size)
    timing = Timing(
        warmup=args.warmup,
        steps=args.steps,
        fused_adamw=args.fused_adamw,
        deterministic=not args.nondeterministic,
        max_seconds=args.max_seconds,
    )
    if args.strategy == "deepspeed" and device.type == "cpu" and ctx.world_size == 1:
        skip_shared_memory_allreduce()
    with process_group(ctx, device, required=args.strategy == "deepspeed"):
        result = time_training(arch, args.vocab, spec, device, timing, ctx)
    if ctx.is_main:
        print(MARK + json.dumps(result), flush=True)


def worker_options(
    strategy: str,
    device: str,
    precision: str,
    batch: int,
    steps: int,
    warmup: int,
    vocab: int,
    arch: Mapping[str, Any] | None = None,
    size: str = "smoke",
    threads: int = 1,
    checkpointing: bool = False,
    flags: tuple[str, ...] = (),
) -> list[str]:
    """The command-line options of one `--worker` run."""
    options = [
        f"--strategy={strategy}",
        f"--device={device}",
        f"--size={size}",
        f"--precision={precision}",
        f"--batch={batch}",
        f"--steps={steps}",
        f"--warmup={warmup}",
        f"--threads={threads}",
        f"--vocab={vocab}",
    ]
    if arch is not None:
        options.append("--arch=" + json.dumps(dict(arch)))
    if checkpointing:
        options.append("--checkpointing")
    return options + list(flags)


def run_worker(options: list[str], processes: int, timeout: float | None = None) -> dict:
    """Run `--worker` with `options` in fresh processes (torchrun for several, plain python for
    one: DeepSpeed then makes a one-process group); its result, or {"error": tail of output}."""
    me = str(Path(__file__).resolve())
    if processes > 1:
        runner = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command = [sys.executable, *runner, me, "--worker", *options]
    else:
        command = [sys.executable, me, "--worker", *options]
    path = os.pathsep.join(
        filter(None, [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH")])
    )
    env = dict(os.environ, MIDILM_NO_PROGRESS="1", PYTHONPATH=path)
    started = time.time()
    # its own session: a timeout kills the workers and what they started (a JIT build's ninja)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        tail = (stdout + stderr)[-3000:]
        return {"error": f"timed out after {timeout:.0f} s{_stale_locks(started)}: {tail}"}
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        return {"error": f"exit {done.returncode}: {(done.stdout + done.stderr)[-3000:]}"}
    return json.loads(lines[-1][len(MARK) :])


def _stale_locks(since: float) -> str:
    """torch JIT-extension locks taken since `since` (DeepSpeed builds a C++ op on CPU): a
    killed build leaves its lock behind, and the next build waits on it forever."""
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    locks = [str(p) for p in root.glob("**/lock") if p.stat().st_mtime >= since]
    if not locks:
        return ""
    return f" (an extension build was interrupted; once no build runs, delete {locks})"


def launch(args: argparse.Namespace, name: str) -> dict:
    """Run configuration `name` in fresh processes; its result (or the error)."""
    table = configurations(args.device)
    if name not in table:
        raise SystemExit(f"--configs: {name!r} is not one of {sorted(table)}")
    strategy, processes, checkpointing = table[name]
    options = worker_options(
        strategy,
        args.device,
        args.precision,
        args.batch,
        args.steps,
        args.warmup,
        args.vocab,
        size=args.size,
        threads=args.threads,
        checkpointing=checkpointing,
    )
    return run_worker(options, processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="smoke", choices=["smoke", "thesis"])
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=8, help="per process")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--configs", default=None, help="comma-separated subset")
    parser.add_argument("--name", default=None, help="result name (default train_<device>)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arch", default=None, help=argparse.SUPPRESS)  # JSON architecture
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fused-adamw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--nondeterministic", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    names = args.configs.split(",") if args.configs else list(configurations(args.device))
    env = environment()  # before the runs: the load average shows whether the machine was busy
    results = {name: launch(args, name) for name in names}
    peak = None
    if args.device == "cuda":
        peak = matmul_peak_flops(torch.device("cuda"))["best"]
        for result in results.values():
            if "tokens_per_s" in result:
                model_flops = result["tokens_per_s"] * result["flops_per_token"]
                result["mfu"] = round(model_flops / (peak * result["processes"]), 4)
    for package in ("deepspeed", "transformers"):
        env["versions"][package] = metadata.version(package)
    if args.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    write_result(
        args.name or f"train_{args.device}",
        {
            "benchmark": "train_throughput",
            "device": args.device,
            "model": {"family": "gpt2", "size": args.size, **model_cfg(args.size)},
            "batch_per_process": args.batch,
            "steps_timed": args.steps,
            "warmup_steps": args.warmup,
            "threads_per_process": args.threads,
            "precision": args.precision,
            "bf16_matmul_peak_tflops": round(peak / 1e12, 1) if peak else None,
            "results": results,
            "environment": env,
        },
    )


if __name__ == "__main__":
    main()
