"""Train smoke models a few steps and print a hash of their weights, per thread count.

    python -m tests.models.train_probe rwkv6 gpt --threads 1 2

Run as a fresh process: MKL reads its reproducibility mode (set by midilm.models.runtime on
import) at its first call, which must come after that import.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
import yaml

from midilm.models import build_model
from midilm.models.runtime import deterministic

REPO = Path(__file__).resolve().parents[2]


def smoke_cfg(key: str) -> dict:
    """conf/model/<key>.yaml's smoke size, as the default profile trains it."""
    entry = yaml.safe_load((REPO / "conf" / "model" / f"{key}.yaml").read_text())
    return {"family": entry["family"], "dropout": entry["dropout"], **entry["sizes"]["smoke"]}


def trained_weights_hash(key: str, threads: int, steps: int, batch: int, vocab: int = 300) -> str:
    """SHA-256 of the weights after `steps` AdamW steps on seeded random tokens."""
    cfg = smoke_cfg(key)
    with deterministic(0, threads):
        model = build_model(cfg, vocab, 0, 1, 2).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(steps):
            tokens = torch.randint(3, vocab, (batch, int(cfg["context"])), generator=generator)
            model(input_ids=tokens, labels=tokens).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", nargs="+", help="conf/model keys (gpt, rwkv6, ...)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="x context rows: >= 1024 so that "
                        "MKL splits the weight-gradient GEMMs")  # fmt: skip
    args = parser.parse_args()
    hashes = {
        key: {str(t): trained_weights_hash(key, t, args.steps, args.batch) for t in args.threads}
        for key in args.keys
    }
    print(json.dumps(hashes))


if __name__ == "__main__":
    main()
