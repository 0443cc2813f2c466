"""Peak memory and seconds of one SeqGAN adversarial batch against the sequence length.

    python benchmarks/bench_seqgan.py                                   # CPU, reduced sizes
    python benchmarks/bench_seqgan.py --device cuda --paper-sizes       # a GPU, the paper's sizes

Each length runs in its own process (`--worker`), so the CPU peak resident set is that length's;
on a GPU the allocator's peak is reset per length. What one batch is and which networks it uses:
`midilm.seqgan.bench`. The anchor, measured in the same worker: the roll-out rewards computed as
the reference code does (for each roll-out and each prefix length, the LSTM re-run from the
first token over the prefix, then sampled to the end, one batch of `g_batch` at a time), for
lengths up to `--anchor-max-length`; both give rewards of the same distribution.

Writes benchmarks/results/seqgan_<device>.json (or `--name`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.models.runtime import peak_memory_mb
from midilm.seqgan.algorithm import device_generator
from midilm.seqgan.bench import (
    MUSIC_VOCAB,
    BenchSizes,
    measure_adversarial_batch,
    scaled_discriminator_spec,
)
from midilm.seqgan.discriminator import Discriminator
from midilm.seqgan.lstm import SeqLSTM

MARK = "BENCH_RESULT "
LENGTHS = (32, 64, 128, 256, 512)
# CPU: a batch at the paper's sizes takes hours at length 512 on 2 cores (the roll-outs score
# (T-1) x 16 x 64 sequences of length T), so the default is smaller; --paper-sizes on a GPU.
REDUCED = BenchSizes(g_batch=8, rollouts=4, positives=128, d_rounds=1, d_epochs=1,
                     filter_scale=0.1)  # fmt: skip


@torch.no_grad()
def reference_rollout_rewards(
    policy: SeqLSTM, discriminator: Discriminator, sequences: torch.Tensor, rollouts: int,
    generator: torch.Generator, score_tokens: int,
) -> torch.Tensor:  # fmt: skip
    """The anchor: the reference code's loop (prefix re-run from the first token each time)."""
    batch, length = sequences.shape
    rewards = torch.zeros(batch, length, device=sequences.device)
    for _ in range(rollouts):
        for given in range(1, length):
            state = policy.initial_state(batch)
            token = torch.full((batch,), policy.start_token, device=sequences.device)
            out = sequences.clone()
            for t in range(length):
                state = policy.cell(policy.embedding[token], state)
                if t < given:
                    token = sequences[:, t]
                else:
                    token = policy.next_tokens(state[0], generator)
                    out[:, t] = token
            rewards[:, given - 1] += discriminator.real_probability(out, score_tokens)
    rewards /= rollouts
    rewards[:, -1] = discriminator.real_probability(sequences, score_tokens)
    return rewards


def worker(args: argparse.Namespace, sizes: BenchSizes) -> dict:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    measured = measure_adversarial_batch(args.length, device, sizes)
    if args.length <= args.anchor_max_length:
        init = torch.Generator().manual_seed(1)
        policy = SeqLSTM(MUSIC_VOCAB, 32, 32, args.length, 0, 0.1, init).to(device)
        spec = scaled_discriminator_spec(sizes.filter_scale)
        disc = Discriminator(MUSIC_VOCAB, args.length, spec, init).to(device)
        x = policy.sample(sizes.g_batch, device_generator(device, 0, "anchor"))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        seeded = device_generator(device, 0, "anchor-r")
        reference_rollout_rewards(policy, disc, x, sizes.rollouts, seeded, sizes.score_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        measured["anchor_reference_rollout_seconds"] = round(time.perf_counter() - start, 4)
        measured["peak_memory_mb_with_anchor"] = round(peak_memory_mb(device), 1)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--paper-sizes", action="store_true", help="64 x 16 roll-outs, full D")
    parser.add_argument("--anchor-max-length", type=int, default=128)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per length")
    parser.add_argument("--name", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = BenchSizes() if args.paper_sizes else REDUCED
    if args.worker:
        print(MARK + json.dumps(worker(args, sizes)), flush=True)
        return

    env = environment()
    rows = []
    for length in args.lengths:
        command = [sys.executable, __file__, "--worker", "--length", str(length),
                   "--device", args.device, "--threads", str(args.threads),
                   "--anchor-max-length", str(args.anchor_max_length)]  # fmt: skip
        if args.paper_sizes:
            command.append("--paper-sizes")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            rows.append({"length": length, "error": f"over {args.timeout} s"})
            continue
        found = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode != 0 or not found:
            tail = done.stderr.strip().splitlines()[-3:]
            rows.append({"length": length, "error": f"exit {done.returncode}: {tail}"})
            continue
        rows.append(json.loads(found[-1][len(MARK) :]))
        print(rows[-1], file=sys.stderr)
    result = {
        "benchmark": "seqgan adversarial batch against sequence length",
        "environment": env,
        "device": args.device,
        "threads": args.threads,
        "sizes": dataclasses.asdict(sizes),
        "paper_sizes": args.paper_sizes,
        "rows": rows,
    }
    write_result(args.name or f"seqgan_{args.device}", result)


if __name__ == "__main__":
    main()
