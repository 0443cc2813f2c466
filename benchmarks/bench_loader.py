"""Tokens per second of the binidx training loader (`TokenWindows.batch`) in one process, against
a plain sequential copy of the same memmap (anchor, same run). Target (issue): >= 50 M tokens/s.

    python benchmarks/bench_loader.py [--tokens 50000000] [--context 512] [--batch 64]

Data: a synthetic uint16 binidx of documents of random length (written to a temp dir), so the
benchmark does not depend on the corpus size. Writes benchmarks/results/loader_throughput.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.store.binidx import BinIdxDataset, BinIdxWriter
from midilm.store.loader import TokenWindows


def build(prefix: Path, n_tokens: int, seed: int = 0) -> BinIdxDataset:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 2000, size=n_tokens, dtype=np.uint16)
    cuts = np.sort(rng.choice(np.arange(1, n_tokens), size=n_tokens // 2000, replace=False))
    with BinIdxWriter(prefix, np.uint16) as writer:
        for doc in np.split(tokens, cuts):
            writer.add_document(doc)
    return BinIdxDataset(prefix)


def loader_rate(data: BinIdxDataset, context: int, batch: int, **kw: str) -> float:
    windows = TokenWindows(data, context, seed=0, **kw)
    n = len(windows) // batch * batch
    start = time.perf_counter()
    for first in range(0, n, batch):
        windows.batch(np.arange(first, first + batch))
    return n * context / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=50_000_000)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = build(Path(tmp) / "train", args.tokens)
        start = time.perf_counter()
        anchor = np.asarray(data.tokens, dtype=np.int64).sum()  # touch every token once
        anchor_rate = data.num_tokens / (time.perf_counter() - start)
        rates = {
            f"{layout}/{order}": round(
                loader_rate(data, args.context, args.batch, order=order, layout=layout) / 1e6, 1
            )
            for layout in ("packed", "padded")
            for order in ("permutation", "prime_stride")
        }
        del anchor
    write_result(
        "loader_throughput",
        {
            "benchmark": "loader_throughput",
            "tokens": args.tokens,
            "context": args.context,
            "batch": args.batch,
            "anchor": {
                "name": "sequential memmap read to int64",
                "M_tokens_per_s": round(anchor_rate / 1e6, 1),
            },
            "M_tokens_per_s": rates,
            "target_M_tokens_per_s": 50,
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
