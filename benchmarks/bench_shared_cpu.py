"""Seconds per step of every model family's training on an idle CPU and beside a busy neighbour,
under libgomp's default wait policy and under midilm's.

    python benchmarks/bench_shared_cpu.py                        # every family, neighbour: train
    python benchmarks/bench_shared_cpu.py --families rwkv6 --policies libgomp,midilm,spin:10000

Each measurement is a fresh process that trains the family's smoke model (conf/model/<key>.yaml
`sizes.smoke`, what the default profile trains) on random tokens: forward, backward and an AdamW
step at the training group's batch size and thread count (conf/train/default.yaml), `--warmup`
steps untimed, then `--steps` timed. `generate` samples from the smoke GPT as the generate stage
does (its thread count, batch and top-k/top-p; one step = `--gen-tokens` new tokens per row).
`stage:<command>:<key>` (e.g. `stage:tokenize:tsd`) times one whole run of that stage's command,
`python -m midilm tokenize tsd`, in this checkout (it rewrites the stage's outputs: run the DAG
first; `dvc checkout` restores the measured speed files afterwards).
A policy is how long an idle OpenMP thread spins before it sleeps (GNU OpenMP, torch's on Linux):
  - `libgomp`: its default, 300,000 spins (what every run had before midilm set one);
  - `midilm`: what `import midilm` sets when the environment sets none (midilm.OPENMP_SPIN_COUNT);
  - `passive`: OMP_WAIT_POLICY=PASSIVE (sleep at once); `spin:N`: GOMP_SPINCOUNT=N.
Each workload runs idle under every policy, then again while a neighbour runs:
  - `train`: a second process training the smoke GPT on the same thread count, in a loop, under
    libgomp's default policy (a foreign process: nothing of ours tunes it);
  - `burn`: as many pure-Python spinning processes as the training has threads.
Idle and busy runs of a workload follow each other, so their ratio is measured under the same
background; on a machine shared with other work "idle" is only as idle as the load average
recorded beside each figure. `slowdown` is busy time under a policy over the idle time under
libgomp's default (the speed the machine gave before), `idle_cost` the idle time under a policy
over that same anchor. Mamba also runs with transformers' reference scan loop (the anchor of
midilm.models.selective_scan, `--anchor-steps` timed steps, libgomp's policy, no warm-up).

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
from collections.abc import Iterator
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("gpt", "mistral", "llama", "mamba", "rwkv6", "generate")
RUSAGE_WHO = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
STAGE = "stage:"  # stage:tokenize:tsd runs `python -m midilm tokenize tsd`
LIBGOMP_DEFAULT_SPINS = "300000"
MARK = "BENCH_RESULT "
READY = "NEIGHBOUR_READY"
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def midilm_spin_count() -> str:
    sys.path.insert(0, str(REPO / "src"))
    import midilm

    return midilm.OPENMP_SPIN_COUNT


def policy_env(policy: str) -> dict[str, str]:
    """The environment of a process under `policy` (the wait variables replaced)."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    if policy == "libgomp":
        env["GOMP_SPINCOUNT"] = LIBGOMP_DEFAULT_SPINS
    elif policy == "midilm":
        env["GOMP_SPINCOUNT"] = midilm_spin_count()
    elif policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif policy.startswith("spin:") and policy[5:].isdigit():
        env["GOMP_SPINCOUNT"] = policy[5:]
    else:
        raise SystemExit(
            f"bench_shared_cpu: unknown policy {policy!r} (libgomp, midilm, passive, spin:N)"
        )
    return env


def conf(*parts: str) -> dict:
    return yaml.safe_load(REPO.joinpath("conf", *parts).read_text())


def smoke_cfg(key: str) -> dict:
    entry = conf("model", f"{key}.yaml")
    return {"family": entry["family"], "dropout": entry["dropout"], **entry["sizes"]["smoke"]}


def threads_of(workload: str) -> int | None:
    """The thread count the stage runs the workload on (None: a whole stage, its own)."""
    if workload.startswith(STAGE):
        return None
    group = "generate" if workload == "generate" else "train"
    return int(conf(group, "default.yaml")["threads"])


def train_steps(key: str, scan: str, threads: int, vocab: int) -> Iterator[float]:
    """Seconds of each training step, forever."""
    import torch
    from transformers.models.mamba import modeling_mamba

    from midilm.models import build_model, mamba
    from midilm.models.runtime import deterministic

    if scan == "reference":
        modeling_mamba.mamba_selective_scan = mamba._REFERENCE_SCAN
    cfg, batch = smoke_cfg(key), int(conf("train", "default.yaml")["batch_size"])
    with deterministic(0, threads):
        model = build_model(cfg, vocab, 0, 1, 2).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        generator = torch.Generator().manual_seed(0)
        while True:
            tokens = torch.randint(3, vocab, (batch, int(cfg["context"])), generator=generator)
            start = time.perf_counter()
            model(input_ids=tokens, labels=tokens).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            yield time.perf_counter() - start


def generate_steps(threads: int, vocab: int, new_tokens: int) -> Iterator[float]:
    """Seconds to sample `new_tokens` after each of a batch of 64-token prompts, forever."""
    import torch

    from midilm.generate.sampling import Sampling, generate
    from midilm.models import build_model
    from midilm.models.runtime import deterministic

    gen = conf("generate", "default.yaml")
    sampling = Sampling(top_k=gen["top_k"], top_p=gen["top_p"])
    with deterministic(0, threads):
        model = build_model(smoke_cfg("gpt"), vocab, 0, 1, 2).eval()
        rows = int(gen["batch_size"])
        prompts = torch.randint(
            3, vocab, (rows, int(gen["prompt_tokens"])), generator=torch.Generator().manual_seed(0)
        )
        round_ = 0
        while True:
            generators = [torch.Generator().manual_seed(round_ * rows + r) for r in range(rows)]
            start = time.perf_counter()
            with torch.no_grad():
                generate(model, prompts.tolist(), generators, new_tokens, sampling)
            round_ += 1
            yield time.perf_counter() - start


def stage_steps(stage_args: list[str]) -> Iterator[float]:
    """Wall seconds of one run of a pipeline stage command in this checkout, forever."""
    while True:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "midilm", *stage_args], cwd=REPO, check=True, capture_output=True
        )
        yield time.perf_counter() - start


def steps_of(workload: str, scan: str, args: argparse.Namespace) -> Iterator[float]:
    if workload.startswith(STAGE):
        return stage_steps(workload[len(STAGE) :].split(":"))
    threads = threads_of(workload)
    if workload == "generate":
        return generate_steps(threads, args.vocab, args.gen_tokens)
    return train_steps(workload, scan, threads, args.vocab)


def worker(args: argparse.Namespace) -> None:
    seconds = []
    for i, step in enumerate(steps_of(args.worker, args.scan, args)):
        if i >= args.warmup:
            seconds.append(step)
        if len(seconds) == args.steps:
            break
    peak = max(resource.getrusage(who).ru_maxrss for who in RUSAGE_WHO) / 1024
    print(MARK + json.dumps({"seconds": seconds, "peak_rss_mb": round(peak, 1)}), flush=True)


def neighbour(args: argparse.Namespace) -> None:
    if args.neighbour == "burn":
        print(READY, flush=True)
        while True:
            pass
    for i, _ in enumerate(train_steps("gpt", "chunked", threads_of("gpt"), args.vocab)):
        if i == 0:
            print(READY, flush=True)


def start_neighbours(kind: str, vocab: int) -> list[subprocess.Popen]:
    """The neighbour processes (libgomp's default policy), returned once each runs its work."""
    count = threads_of("gpt") if kind == "burn" else 1
    command = [sys.executable, __file__, "--neighbour-worker", "--neighbour", kind]
    command += ["--vocab", str(vocab)]
    env = policy_env("libgomp")
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
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


def measure(workload: str, scan: str, policy: str, steps: tuple[int, int], args) -> dict:
    """One worker process: median s/step, every step, peak memory and the load around it."""
    load_before = os.getloadavg()[0]
    warmup, timed = steps
    command = [sys.executable, __file__, "--worker", workload, "--scan", scan]
    command += ["--warmup", str(warmup), "--steps", str(timed), "--vocab", str(args.vocab)]
    command += ["--gen-tokens", str(args.gen_tokens)]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, check=False, env=policy_env(policy)
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        raise SystemExit(
            f"bench_shared_cpu: {workload} ({scan}, {policy}) failed:\n{done.stderr[-3000:]}"
        )
    result = json.loads(lines[-1][len(MARK) :])
    return {
        "s_per_step": round(statistics.median(result["seconds"]), 3),
        "steps_s": [round(s, 3) for s in result["seconds"]],
        "peak_rss_mb": result["peak_rss_mb"],
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def measure_workload(workload: str, scan: str, policies: list[str], steps, args) -> dict:
    """Idle under every policy, then busy under every policy beside one neighbour."""
    run: dict = {"workload": workload, "scan": scan if workload == "mamba" else None}
    run["threads"] = threads_of(workload)
    run["idle"] = {p: measure(workload, scan, p, steps, args) for p in policies}
    neighbours = start_neighbours(args.neighbour, args.vocab)
    try:
        run["busy"] = {p: measure(workload, scan, p, steps, args) for p in policies}
    finally:
        stop(neighbours)
    anchor = run["idle"]["libgomp"]["s_per_step"]
    run["slowdown"] = {p: round(run["busy"][p]["s_per_step"] / anchor, 2) for p in policies}
    run["idle_cost"] = {p: round(run["idle"][p]["s_per_step"] / anchor, 2) for p in policies}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(WORKLOADS), help="comma-separated workloads")
    parser.add_argument("--policies", default="libgomp,midilm", help="libgomp is always measured")
    parser.add_argument("--neighbour", choices=("train", "burn"), default="train")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--anchor-steps", type=int, default=1, help="0: skip the Mamba anchor")
    parser.add_argument("--gen-tokens", type=int, default=128, help="new tokens per generate step")
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

    policies = ["libgomp", *(p for p in args.policies.split(",") if p and p != "libgomp")]
    for policy in policies:
        policy_env(policy)  # an unknown policy fails before anything runs
    env = environment()
    runs = []
    for workload in args.families.split(","):
        if workload not in WORKLOADS and not workload.startswith(STAGE):
            raise SystemExit(f"bench_shared_cpu: unknown workload {workload!r}; use {WORKLOADS}")
        steps = (0, 1) if workload.startswith(STAGE) else (args.warmup, args.steps)
        run = measure_workload(workload, "chunked", policies, steps, args)
        print(json.dumps(run), flush=True)
        runs.append(run)
        if workload == "mamba" and args.anchor_steps:
            anchor = measure_workload(
                workload, "reference", ["libgomp"], (0, args.anchor_steps), args
            )
            print(json.dumps(anchor), flush=True)
            runs.append(anchor)
    measured = [r for r in runs if r["scan"] != "reference"]
    write_result(
        args.name,
        {
            "environment": env,
            "neighbour": args.neighbour,
            "batch_size": int(conf("train", "default.yaml")["batch_size"]),
            "policies": {
                p: {k: v for k, v in policy_env(p).items() if k in WAIT_VARIABLES} for p in policies
            },
            "runs": runs,
            "target": "slowdown <= 3 for every workload beside one busy neighbour, midilm policy",
            "worst_slowdown": {p: max(r["slowdown"][p] for r in measured) for p in policies},
        },
    )


if __name__ == "__main__":
    main()
