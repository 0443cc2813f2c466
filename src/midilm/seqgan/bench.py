"""Memory and time of one SeqGAN adversarial batch against the sequence length (issue 14 item 5;
seed 003 ran out of a 12 GB GPU at 40 tokens).

One adversarial batch = one generator step (sample `g_batch` sequences, roll-out rewards of every
prefix with `rollouts` completions each, the policy-gradient update) then `d_rounds` x (fresh
negatives, `d_epochs` epochs) of the discriminator on `positives` real sequences. The music
task's networks (vocab 89, the length-32 kernel list) are used at every length; the positives
are samples of a random reference LSTM. Peak memory: the CUDA allocator's peak on a GPU, the
process's peak resident set on CPU (so one length per process: `benchmarks/bench_seqgan.py`),
with the process's peak before the batch (the interpreter and torch) beside it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from midilm.models.runtime import peak_memory_mb
from midilm.seqgan.algorithm import (
    device_generator,
    discriminator_optimizer,
    policy_gradient_step,
    train_discriminator,
)
from midilm.seqgan.discriminator import Discriminator
from midilm.seqgan.lstm import SeqLSTM
from midilm.seqgan.rollout import rollout_rewards
from midilm.specs.seqgan import DiscriminatorSpec

MUSIC_VOCAB = 89
MUSIC_DISCRIMINATOR = DiscriminatorSpec(
    embedding=64,
    kernel_sizes=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 24, 32),
    kernel_counts=(100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160, 160),
    dropout_keep=0.75,
    l2=0.2,
    lr=1e-4,
    batch_size=64,
)


@dataclass(frozen=True)
class BenchSizes:
    """How big one measured adversarial batch is (the paper's sizes by default)."""

    g_batch: int = 64
    rollouts: int = 16
    positives: int = 1024
    d_rounds: int = 5
    d_epochs: int = 3
    filter_scale: float = 1.0  # discriminator filters per kernel size x this
    rollout_rows: int = 32768
    score_tokens: int = 262144


def scaled_discriminator_spec(scale: float) -> DiscriminatorSpec:
    counts = tuple(max(1, math.ceil(c * scale)) for c in MUSIC_DISCRIMINATOR.kernel_counts)
    return dataclasses.replace(MUSIC_DISCRIMINATOR, kernel_counts=counts)


def measure_adversarial_batch(
    length: int, device: torch.device, sizes: BenchSizes, seed: int = 0
) -> dict[str, Any]:
    """Seconds of the generator step and of the discriminator rounds of one adversarial batch
    at sequence length `length`, and the peak memory (MB) while running it."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    baseline = peak_memory_mb(device)  # CPU: the process so far (interpreter, torch)
    init = torch.Generator().manual_seed(seed)
    generator = SeqLSTM(MUSIC_VOCAB, 32, 32, length, 0, 0.1, init).to(device)
    source = SeqLSTM(MUSIC_VOCAB, 32, 32, length, 0, 1.0, init).to(device)
    spec = scaled_discriminator_spec(sizes.filter_scale)
    discriminator = Discriminator(MUSIC_VOCAB, length, spec, init).to(device)
    g_opt = torch.optim.AdamW(generator.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                              weight_decay=0.0)  # fmt: skip
    d_opt = discriminator_optimizer(discriminator, spec)
    positives = source.sample(sizes.positives, device_generator(device, seed, "positives"))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    start = time.perf_counter()
    sequences = generator.sample(sizes.g_batch, device_generator(device, seed, "g"))
    rewards = rollout_rewards(
        generator, discriminator, sequences, sizes.rollouts,
        device_generator(device, seed, "rollout"), sizes.rollout_rows, sizes.score_tokens,
    )  # fmt: skip
    sync()
    rollout_s = time.perf_counter() - start
    policy_gradient_step(generator, g_opt, sequences, rewards, 5.0)
    sync()
    g_step_s = time.perf_counter() - start
    start = time.perf_counter()
    for r in range(sizes.d_rounds):
        negatives = generator.sample(sizes.positives, device_generator(device, seed, "neg", r))
        train_discriminator(discriminator, d_opt, positives, negatives, spec, sizes.d_epochs,
                            device_generator(device, seed, "shuffle", r))  # fmt: skip
    sync()
    d_s = time.perf_counter() - start
    return {
        "length": length,
        "device": device.type,
        "rollout_seconds": round(rollout_s, 4),
        "g_step_seconds": round(g_step_s, 4),
        "d_rounds_seconds": round(d_s, 4),
        "adversarial_batch_seconds": round(g_step_s + d_s, 4),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "memory_before_mb": round(baseline, 1),
        "rollout_sequences": (length - 1) * sizes.rollouts * sizes.g_batch,
        "sizes": dataclasses.asdict(sizes),
        "discriminator_filters": sum(spec.kernel_counts),
    }
