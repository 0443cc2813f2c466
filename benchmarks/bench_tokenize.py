"""Encode throughput of every tokenizer in params.tokenizers on 1 and 2 workers, through the
tokenize stage's own code path (`midilm.tokenize.stage.encode_files`: read + encode + collect),
against MidiTok's own REMI on the same files (the anchor, measured in the same run).

    python benchmarks/bench_tokenize.py [--files 0] [--repeats 5]

Targets (issue): MIDICompact and Simplified MIDI >= 5x the anchor's files/s (1 worker); 2 workers
>= 1.8x 1 worker for every tokenizer. Files: a seeded sample of the augmented manifest (0: all of
it, as the stage encodes; run `dvc repro augment` first).

Each tokenizer (and the anchor) is measured in its own fresh process, so a worker is forked from a
process holding only what the stage would hold (MIDICompact's never imports MidiTok or torch).
Timings are the best of `--repeats` passes, 1- and 2-worker passes interleaved so a change of
machine load hits both; every pass time and the load average are recorded. Writes
benchmarks/results/tokenize_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import symusic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.tokenize.parallel import start_method
from midilm.tokenize.stage import build_entry, encode_files, seeded_sample, train_tokenizer

ANCHOR = "@miditok_remi"
TARGET_SPEEDUP, TARGET_VS_ANCHOR = 1.8, 5.0
THESIS_ENCODINGS = ("midicompact", "simplified_midi", "simplified_midi_bend")
WARMUP_FILES = 64


def sample_paths(params: dict[str, Any], files: int) -> list[Path]:
    """The seeded sample of the augmented manifest (all of it when `files` is 0), in order."""
    layout = Layout()
    manifest = pd.read_parquet(layout.augment_manifest)
    chosen = seeded_sample(list(manifest["id"]), files or None, int(params["seed"]))
    rows = zip(manifest["id"], manifest["path"], strict=True)
    return [layout.root / path for piece, path in rows if piece in chosen]


def measure_anchor(paths: list[Path], repeats: int) -> dict[str, Any]:
    """MidiTok's REMI with its default configuration, one process: load + encode each file."""
    import miditok

    anchor = miditok.REMI(miditok.TokenizerConfig())
    for path in paths[:WARMUP_FILES]:
        anchor.encode(symusic.Score(str(path)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            anchor.encode(symusic.Score(str(path)))
        times.append(time.perf_counter() - start)
    times_s = [round(t, 4) for t in times]
    return {"files_per_s": round(len(paths) / min(times), 1), "times_s": times_s}


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure_tokenizer(cfg: dict[str, Any], paths: list[Path], repeats: int) -> dict[str, Any]:
    """Best-of-`repeats` files/s of `encode_files` on 1 and 2 workers (passes interleaved).

    Beside wall time, each pass records the CPU seconds of this process and of the pool process
    (joined at the end of the pass): on a loaded machine, where wall time waits for a core,
    `cpu_speedup_2_workers` = 1-worker CPU / the busier process's CPU on 2 workers still shows
    how evenly the work splits and what the pool costs."""
    tokenizer = build_entry(cfg)
    if cfg.get("train"):
        train_tokenizer(tokenizer, cfg["train"], paths[: cfg["train"].get("max_files")])
    encode_files(tokenizer, paths[:WARMUP_FILES], 1)
    passes: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            own, pool = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            encode_files(tokenizer, paths, workers)
            wall = time.perf_counter() - start
            own = _cpu_s(resource.RUSAGE_SELF) - own
            pool = _cpu_s(resource.RUSAGE_CHILDREN) - pool
            passes[workers].append({"wall_s": wall, "cpu_main_s": own, "cpu_pool_s": pool})
    one = len(paths) / min(p["wall_s"] for p in passes[1])
    two = len(paths) / min(p["wall_s"] for p in passes[2])
    cpu_one = min(p["cpu_main_s"] for p in passes[1])
    cpu_two = min(max(p["cpu_main_s"], p["cpu_pool_s"]) for p in passes[2])
    return {
        "files_per_s_1_worker": round(one, 1),
        "files_per_s_2_workers": round(two, 1),
        "speedup_2_workers": round(two / one, 2),
        "cpu_speedup_2_workers": round(cpu_one / cpu_two, 2) if cpu_two else None,
        "start_method_2_workers": start_method(),
        "passes": {str(w): [_rounded(p) for p in ps] for w, ps in passes.items()},
    }


def measure_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process (the `--only` mode the driver runs per tokenizer)."""
    params = to_plain(load_params(args.params))
    paths = sample_paths(params, args.files)
    load_before = os.getloadavg()[0]
    if name == ANCHOR:
        result = measure_anchor(paths, args.repeats)
    else:
        result = measure_tokenizer(dict(params["tokenizers"][name]), paths, args.repeats)
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def run_in_fresh_process(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--only", name, "--files", str(args.files)]
    command += ["--repeats", str(args.repeats), "--params", args.params]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def main() -> None:
    os.environ["MIDILM_NO_PROGRESS"] = "1"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=0, help="0: the whole augmented manifest")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure_one(args.only, args)))
        return

    env = environment()
    params = to_plain(load_params(args.params))
    files = len(sample_paths(params, args.files))
    anchor = run_in_fresh_process(ANCHOR, args)
    print("anchor", anchor, flush=True)
    results: dict[str, Any] = {}
    for name in params.get("tokenizers") or {}:
        results[name] = result = run_in_fresh_process(name, args)
        if "error" not in result and anchor.get("files_per_s"):
            result["vs_miditok_remi"] = round(
                result["files_per_s_1_worker"] / anchor["files_per_s"], 2
            )
        print(name, {k: v for k, v in result.items() if k != "passes"}, flush=True)
    ok = {n: r for n, r in results.items() if "error" not in r}
    write_result(
        "tokenize_throughput",
        {
            "benchmark": "tokenize_throughput",
            "files": files,
            "repeats": args.repeats,
            "method": "best of repeats; 1- and 2-worker passes interleaved; one fresh process "
            "per tokenizer; stage code path midilm.tokenize.stage.encode_files; "
            "cpu_speedup_2_workers = 1-worker CPU s / busier process's CPU s on 2 workers",
            "anchor": {"name": "miditok.REMI(TokenizerConfig())", **anchor},
            "targets": {
                "speedup_2_workers": TARGET_SPEEDUP,
                "text_tokenizers_vs_anchor": TARGET_VS_ANCHOR,
            },
            "below_target": {
                "speedup_2_workers": sorted(
                    n for n, r in ok.items() if r["speedup_2_workers"] < TARGET_SPEEDUP
                ),
                "text_tokenizers_vs_anchor": sorted(
                    n
                    for n in THESIS_ENCODINGS
                    if n in ok and ok[n].get("vs_miditok_remi", 0) < TARGET_VS_ANCHOR
                ),
            },
            "tokenizers": results,
            "environment": env,
        },
    )


if __name__ == "__main__":
    main()
