"""Training throughput (tokens/s) of the GPT by strategy: one process, DDP and DeepSpeed ZeRO-2
over 2 processes, each with and without gradient checkpointing; on GPU also the MFU.

    python benchmarks/bench_train.py                      # CPU, smoke GPT (conf/model/gpt.yaml)
    python benchmarks/bench_train.py --device cuda --size thesis --precision bf16 --batch 16

Each configuration runs as its own launch (`torchrun --standalone --nproc_per_node N` of this
file with `--worker`), builds the model from conf/model/gpt.yaml, and times `--steps` optimizer
steps after `--warmup` with the training engine the stage uses (`midilm.train.engine`) on random
windows of a synthetic token stream (throughput does not depend on the data). Tokens/s counts
every process's tokens (global batch x context per step).

On CUDA, MFU = model FLOPs per second / peak, with model FLOPs per token = 6 N + 12 L d T
(PaLM, appendix B: N = parameters that take part in matmuls, i.e. all but the position
embeddings, the tied token embedding counted once as the output head; L layers, width d,
context T; checkpointing's recompute is not counted) and the peak measured here as the best of
several large bf16 matmuls on the same GPU (not the datasheet figure).

Writes benchmarks/results/train_<device>.json (or `--name`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

REPO = Path(__file__).resolve().parents[1]
MARK = "BENCH_RESULT "


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


def matmul_flops_per_token(model: torch.nn.Module, cfg: dict) -> float:
    """6 N + 12 L d T (see the module docstring)."""
    seen = {id(p): p for p in model.parameters()}
    position = model.transformer.wpe.weight.numel() if hasattr(model, "transformer") else 0
    n = sum(p.numel() for p in seen.values()) - position
    return 6 * n + 12 * cfg["n_layer"] * cfg["n_embd"] * cfg["context"]


def bf16_peak_flops(size: int = 8192, repeats: int = 20) -> float:
    """Best measured bf16 matmul rate on this GPU (FLOP/s)."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def worker(args: argparse.Namespace) -> None:
    """One process of one configuration: time `args.steps` steps, rank 0 prints the result."""
    from midilm.models import build_model, count_parameters
    from midilm.models.runtime import deterministic, peak_memory_mb
    from midilm.specs.train import train_spec
    from midilm.train.data import random_batch
    from midilm.train.distributed import all_reduce_sum, dist_context, process_group
    from midilm.train.engine import enable_gradient_checkpointing, make_engine
    from midilm.train.loop import lm_loss
    from midilm.train.optim import lr_at
    from midilm.train.precision import matmul_precision, resolve_precision

    ctx = dist_context()
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    precision = resolve_precision(args.precision, device)
    cfg = model_cfg(args.size)
    context, vocab = int(cfg["context"]), args.vocab
    train_cfg = train_spec(  # the train group with seed 001's optimiser
        yaml.safe_load((REPO / "conf" / "train" / "default.yaml").read_text()),
        {
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
        },
    )
    tokens = np.random.default_rng(0).integers(3, vocab, size=2_000_000, dtype=np.uint16)
    with (
        process_group(ctx, device, required=args.strategy == "deepspeed"),
        deterministic(0, args.threads),
        matmul_precision(device, True),
    ):
        model = build_model(cfg, vocab, 0, 1, 2).to(device)
        if args.checkpointing:
            enable_gradient_checkpointing(model)
        flops_per_token = matmul_flops_per_token(model, cfg)
        parameters = count_parameters(model)
        engine = make_engine(args.strategy, model, train_cfg, ctx, device, precision)
        engine.module.train()
        elapsed = 0.0
        for step in range(args.warmup + args.steps):
            engine.set_lr(lr_at(step, train_cfg))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            x, y = random_batch(tokens, context, args.batch, 0, step, 0, ctx.rank, ctx.world_size)
            batch = {"input_ids": x.to(device), "labels": y.to(device)}
            loss = engine.micro_step(batch, lm_loss, 1.0, True)
            engine.optimizer_step()
            all_reduce_sum([loss])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                elapsed += time.perf_counter() - start
        tokens_per_s = ctx.world_size * args.batch * context * args.steps / elapsed
        if ctx.is_main:
            result = {
                "tokens_per_s": round(tokens_per_s, 1),
                "step_ms": round(1000 * elapsed / args.steps, 2),
                "peak_memory_mb": round(peak_memory_mb(device), 1),
                "parameters": parameters,
                "flops_per_token": flops_per_token,
                "precision": precision,
                "processes": ctx.world_size,
            }
            print(MARK + json.dumps(result), flush=True)


def launch(args: argparse.Namespace, name: str) -> dict:
    """Run configuration `name` in fresh processes; its result (or the error)."""
    table = configurations(args.device)
    if name not in table:
        raise SystemExit(f"--configs: {name!r} is not one of {sorted(table)}")
    strategy, processes, checkpointing = table[name]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(Path(__file__).resolve()),
        "--worker",
        f"--strategy={strategy}",
        f"--device={args.device}",
        f"--size={args.size}",
        f"--precision={args.precision}",
        f"--batch={args.batch}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        f"--vocab={args.vocab}",
    ] + (["--checkpointing"] if checkpointing else [])
    env = dict(os.environ, MIDILM_NO_PROGRESS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        return {"error": f"exit {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"}
    result = json.loads(lines[-1][len(MARK) :])
    result.update(strategy=strategy, gradient_checkpointing=checkpointing)
    return result


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
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    names = args.configs.split(",") if args.configs else list(configurations(args.device))
    env = environment()  # before the runs: the load average shows whether the machine was busy
    results = {name: launch(args, name) for name in names}
    peak = None
    if args.device == "cuda":
        peak = bf16_peak_flops()
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
