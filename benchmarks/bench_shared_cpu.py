"""Seconds per training step of every model family on an idle CPU and beside a busy neighbour.

    python benchmarks/bench_shared_cpu.py                        # every family, neighbour: train
    python benchmarks/bench_shared_cpu.py --families mamba --neighbour burn

Each measurement is a fresh process that trains the family's smoke model (conf/model/<key>.yaml
`sizes.smoke`, what the default profile trains) on random tokens: forward, backward and an AdamW
step at the training group's batch size and thread count (conf/train/default.yaml), `--warmup`
steps untimed, then `--steps` timed. Then the same again while a neighbour runs:
  - `train`: a second process training the smoke GPT at the same thread count, in a loop (the
    situation that made the Mamba stage crawl: one other training process on the cores);
  - `burn`: as many pure-Python spinning processes as the training has threads.
Idle and busy runs of a family follow each other, so their ratio (`slowdown`) is measured under
the same background; on a machine shared with other work "idle" is only as idle as the load
average recorded beside each figure.
Mamba runs twice: with our chunked scan (midilm.models.selective_scan) and with transformers'
reference loop (the anchor, `--anchor-steps` timed steps, no warm-up: it is ~100x slower).

Writes benchmarks/results/shared_cpu.json (or `--name`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("gpt", "mistral", "llama", "mamba", "rwkv6")
MARK = "BENCH_RESULT "
READY = "NEIGHBOUR_READY"


def train_defaults() -> dict:
    return yaml.safe_load((REPO / "conf" / "train" / "default.yaml").read_text())


def smoke_cfg(key: str) -> dict:
    entry = yaml.safe_load((REPO / "conf" / "model" / f"{key}.yaml").read_text())
    return {"family": entry["family"], "dropout": entry["dropout"], **entry["sizes"]["smoke"]}


def train_steps(key: str, scan: str, warmup: int, steps: int, threads: int, vocab: int):
    """Yield the seconds of each step after `warmup` untimed ones (forever when steps < 0)."""
    import torch
    from transformers.models.mamba import modeling_mamba

    from midilm.models import build_model, mamba
    from midilm.models.runtime import deterministic

    if scan == "reference":
        modeling_mamba.mamba_selective_scan = mamba._REFERENCE_SCAN
    cfg, batch = smoke_cfg(key), int(train_defaults()["batch_size"])
    with deterministic(0, threads):
        model = build_model(cfg, vocab, 0, 1, 2).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        generator = torch.Generator().manual_seed(0)
        step = 0
        while steps < 0 or step < warmup + steps:
            tokens = torch.randint(3, vocab, (batch, int(cfg["context"])), generator=generator)
            start = time.perf_counter()
            model(input_ids=tokens, labels=tokens).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= warmup:
                yield time.perf_counter() - start
            step += 1


def worker(args: argparse.Namespace) -> None:
    seconds = list(
        train_steps(args.worker, args.scan, args.warmup, args.steps, args.threads, args.vocab)
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(MARK + json.dumps({"seconds": seconds, "peak_rss_mb": round(peak, 1)}), flush=True)


def neighbour(args: argparse.Namespace) -> None:
    if args.neighbour == "burn":
        print(READY, flush=True)
        while True:
            pass
    for i, _ in enumerate(train_steps("gpt", "chunked", 0, -1, args.threads, args.vocab)):
        if i == 0:
            print(READY, flush=True)


def start_neighbours(kind: str, threads: int, vocab: int) -> list[subprocess.Popen]:
    """The neighbour processes, returned once each is running its work."""
    count = threads if kind == "burn" else 1
    base = [sys.executable, __file__, "--neighbour-worker", "--neighbour", kind]
    procs = [
        subprocess.Popen(
            [*base, "--threads", str(threads), "--vocab", str(vocab)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(count)
    ]
    for proc in procs:
        line = proc.stdout.readline() if proc.stdout else ""
        if READY not in line:
            stop(procs)
            raise SystemExit(f"bench_shared_cpu: the {kind} neighbour did not start")
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)


def measure(key: str, scan: str, warmup: int, steps: int, args: argparse.Namespace) -> dict:
    """One worker process: median s/step, every step, peak memory and the load around it."""
    load_before = os.getloadavg()[0]
    command = [sys.executable, __file__, "--worker", key, "--scan", scan]
    command += ["--warmup", str(warmup), "--steps", str(steps)]
    command += ["--threads", str(args.threads), "--vocab", str(args.vocab)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        raise SystemExit(f"bench_shared_cpu: {key} ({scan}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len(MARK) :])
    return {
        "s_per_step": round(statistics.median(result["seconds"]), 3),
        "steps_s": [round(s, 3) for s in result["seconds"]],
        "peak_rss_mb": result["peak_rss_mb"],
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated keys")
    parser.add_argument("--neighbour", choices=("train", "burn"), default="train")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--anchor-steps", type=int, default=1, help="0: skip the Mamba anchor")
    parser.add_argument("--threads", type=int, default=int(train_defaults()["threads"]))
    parser.add_argument("--vocab", type=int, default=501, help="REMI's on the default corpus")
    parser.add_argument("--name", default="shared_cpu")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scan", default="chunked", help=argparse.SUPPRESS)
    parser.add_argument("--neighbour-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.neighbour_worker:
        return neighbour(args)

    env = environment()
    runs = []
    for key in args.families.split(","):
        variants = [("chunked", args.warmup, args.steps)]
        if key == "mamba" and args.anchor_steps:
            variants.append(("reference", 0, args.anchor_steps))
        for scan, warmup, steps in variants:
            run = {"family": key, "scan": scan if key == "mamba" else None}
            run["idle"] = measure(key, scan, warmup, steps, args)
            neighbours = start_neighbours(args.neighbour, args.threads, args.vocab)
            try:
                run["busy"] = measure(key, scan, warmup, steps, args)
            finally:
                stop(neighbours)
            run["slowdown"] = round(run["busy"]["s_per_step"] / run["idle"]["s_per_step"], 2)
            print(json.dumps(run), flush=True)
            runs.append(run)
    write_result(
        args.name,
        {
            "environment": env,
            "neighbour": args.neighbour,
            "threads": args.threads,
            "batch_size": int(train_defaults()["batch_size"]),
            "runs": runs,
            "target": "slowdown <= 3 for every family beside one busy neighbour",
        },
    )


if __name__ == "__main__":
    main()
