"""Encode throughput of every tokenizer in params.tokenizers against MidiTok's own REMI on the
same files (anchor measured in the same run), and the speed-up of 2 worker processes.

    python benchmarks/bench_tokenize.py [--files 2000] [--repeats 3]

Targets (issue): MIDICompact and Simplified MIDI >= 5x the anchor's files/s; 2 workers >= 1.8x.
Files: a seeded sample of the augmented manifest (run `dvc repro augment` first). Writes
benchmarks/results/tokenize_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import miditok
import pandas as pd
import symusic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.tokenize.stage import (
    _encode_job,
    _map,
    build_entry,
    seeded_sample,
    train_tokenizer,
)


def anchor_remi() -> miditok.REMI:
    """MidiTok's REMI with its default configuration: the reference everything is compared to."""
    return miditok.REMI(miditok.TokenizerConfig())


def files_per_s(encode: Any, paths: list[Path], repeats: int) -> float:
    """Best of `repeats` passes (load + encode each file), in files per second."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            encode(symusic.Score(str(path)))
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def pool_files_per_s(tokenizer: Any, paths: list[Path], workers: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _map(tokenizer, _encode_job, paths, workers, "bench")
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main() -> None:
    os.environ["MIDILM_NO_PROGRESS"] = "1"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    params = to_plain(load_params(args.params))
    layout = Layout()
    manifest = pd.read_parquet(layout.augment_manifest)
    chosen = seeded_sample(list(manifest["id"]), args.files, int(params["seed"]))
    paths = [
        layout.root / p
        for i, p in zip(manifest["id"], manifest["path"], strict=True)
        if i in chosen
    ]

    anchor = anchor_remi()
    anchor_fps = files_per_s(anchor.encode, paths, args.repeats)
    results: dict[str, Any] = {}
    for name, cfg in (params.get("tokenizers") or {}).items():
        try:
            tokenizer = build_entry(cfg)
            if cfg.get("train"):
                train_tokenizer(tokenizer, cfg["train"], paths[: cfg["train"].get("max_files")])
        except Exception as exc:  # recorded, the other tokenizers still run
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        one = files_per_s(tokenizer.encode, paths, args.repeats)
        pooled1 = pool_files_per_s(tokenizer, paths, 1, args.repeats)
        pooled2 = pool_files_per_s(tokenizer, paths, 2, args.repeats)
        results[name] = {
            "encode_files_per_s": round(one, 1),
            "vs_miditok_remi": round(one / anchor_fps, 2),
            "stage_map_1_worker_files_per_s": round(pooled1, 1),
            "stage_map_2_workers_files_per_s": round(pooled2, 1),
            "speedup_2_workers": round(pooled2 / pooled1, 2),
        }
        print(name, results[name], flush=True)
    write_result(
        "tokenize_throughput",
        {
            "benchmark": "tokenize_throughput",
            "files": len(paths),
            "repeats": args.repeats,
            "anchor": {
                "name": "miditok.REMI(TokenizerConfig())",
                "files_per_s": round(anchor_fps, 1),
            },
            "targets": {"text_tokenizers_vs_anchor": 5.0, "speedup_2_workers": 1.8},
            "tokenizers": results,
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
