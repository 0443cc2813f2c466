"""CPU speed of every model family at its configured size (conf/model/<key>.yaml, smoke by default):
training tokens/s (forward + backward + AdamW step on batch x context tokens) and sampling
tokens/s (`generate_ids`, KV cache or recurrent state), on `--threads` cores.

    python benchmarks/bench_models.py [--threads 1] [--steps 5] [--new-tokens 256]

Random weights and random tokens (speed does not depend on them). Writes
benchmarks/results/models_cpu.json; the load average in it tells whether the machine was shared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.common.compose import compose_params_text
from midilm.generate.sampling import Sampling, generate
from midilm.models import build_model, count_parameters
from midilm.specs import ModelSpec, model_spec

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("gpt", "mistral", "llama", "mamba", "rwkv6")


def model_specs(keys: list[str], size: str) -> dict[str, ModelSpec]:
    """The specs of models `keys` at `size`, composed from conf/ as params.yaml would be."""
    overrides = [f"models.{key}.size={size}" for key in keys]
    params = OmegaConf.to_container(
        OmegaConf.create(compose_params_text(ROOT / "conf", overrides)), resolve=True
    )
    return {key: model_spec(params, key) for key in keys}


def train_seconds(
    model: torch.nn.Module, vocab: int, batch: int, context: int, steps: int
) -> float:
    """Median seconds of one optimizer step (after one warm-up step)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(
        3, vocab, (batch, context + 1), generator=torch.Generator().manual_seed(0)
    )
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        logits = model(input_ids=tokens[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def sample_rate(
    model: torch.nn.Module, vocab: int, prompt: int, new_tokens: int, batch: int
) -> float:
    """Tokens/s (all sequences together) of the sampling loop (top-k 8, no end token) after a
    `prompt`-token prompt, `batch` sequences at once."""
    model.eval()
    ids = torch.randint(3, vocab, (prompt,), generator=torch.Generator().manual_seed(1)).tolist()
    generators = [torch.Generator().manual_seed(i) for i in range(batch)]
    start = time.perf_counter()
    new = generate(model, [ids] * batch, generators, new_tokens, Sampling(top_k=8))
    return sum(len(n) for n in new) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--size", default="smoke")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--sample-batch", type=int, default=8, help="sequences sampled at once")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment()
    results = {}
    for key, spec in model_specs(list(args.families), args.size).items():
        context = spec.context
        torch.manual_seed(0)
        model = build_model(spec.architecture, args.vocab, 0, 1, 2)
        seconds = train_seconds(model, args.vocab, args.batch, context, args.steps)
        alone = sample_rate(model, args.vocab, args.prompt, args.new_tokens, 1)
        batched = sample_rate(model, args.vocab, args.prompt, args.new_tokens, args.sample_batch)
        results[key] = {
            "family": spec.family,
            "params": count_parameters(model),
            "context": context,
            "train_s_per_step": round(seconds, 3),
            "train_tokens_per_s": round(args.batch * context / seconds),
            "generate_tokens_per_s": round(alone, 1),
            "generate_tokens_per_s_batched": round(batched, 1),
            "batched_over_alone": round(batched / alone, 2),
        }
        print(key, results[key], flush=True)
    env["versions"].update({p: metadata.version(p) for p in ("transformers", "rwkv")})
    write_result(
        "models_cpu",
        {
            "benchmark": "models_cpu",
            "size": args.size,
            "threads": args.threads,
            "vocab_size": args.vocab,
            "batch": args.batch,
            "timed_steps": args.steps,
            "prompt_tokens": args.prompt,
            "new_tokens": args.new_tokens,
            "sample_batch": args.sample_batch,
            "results": results,
            "note": "2-core machine shared with other jobs; see the load averages",
            "environment": env,
        },
    )


if __name__ == "__main__":
    main()
