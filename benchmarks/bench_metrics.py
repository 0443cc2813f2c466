"""Seed 001's metrics: the note-array implementation (`midilm.evaluate.seed001`, variant midilm)
against the music21 reference (`midilm.evaluate.metrics`, the anchor), on the same pieces in one
run: pieces/s of each, their ratio, and the largest difference per metric.

    python benchmarks/bench_metrics.py [--pieces 0] [--repeats 3]

Pieces: the test split of the default profile (`data/split/manifest.parquet`; run
`dvc repro split` first), sorted by id; `--pieces N` takes the first N (0: all). Both sides do
what the evaluate stage needs per piece: read the file, rhythm consistency, consonance and
dissonance, key changes (4 measures of the first time signature, as the reference), and the
note events melodic similarity uses; max_quarter_length 256. The note-array side is timed as
the best of `--repeats` passes after a warm-up pass; music21 once (it takes minutes).
Also timed, for the record: both variants, and everything the stage computes per piece
(standard features + both variants). Target (issue 13): >= 100x music21's pieces/s.

Equality: per metric, the largest absolute difference over all pieces, and over the pieces whose
music21 parse keeps every note where the file has it (music21 moves notes in some pieces with
overlapping notes across barlines: docs/metrics.md). Writes benchmarks/results/metrics.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.common.paths import Layout
from midilm.evaluate import metrics, seed001
from midilm.evaluate.analysis import analyze_piece
from midilm.evaluate.m21view import UNITS, music21_view
from midilm.evaluate.notes import piece_from_bytes
from midilm.specs.evaluate import DistributionSpec, FeatureSpec, MetricsSpec

MAX_QUARTER_LENGTH = 256.0
WINDOW_MEASURES = 4
TARGET_RATIO = 100.0
COMPARED = ("rhythm_consistency", "consonance", "dissonance", "key_changes", "top_melody")


def test_pieces(limit: int) -> list[Path]:
    layout = Layout()
    if not layout.split_manifest.exists():
        raise SystemExit(f"{layout.split_manifest} missing: run `dvc repro split` first")
    frame = pd.read_parquet(layout.split_manifest, columns=["id", "path", "split"])
    test = frame[frame["split"] == "test"].sort_values("id")
    paths = [layout.root / p for p in test["path"]]
    return paths[:limit] if limit else paths


def music21_side(path: Path) -> tuple[dict[str, Any], set[tuple]]:
    """The reference metrics of one piece, and its parse as (part, onset, duration, pitches)."""
    score = metrics.load_score(path, MAX_QUARTER_LENGTH)
    consonance, dissonance = metrics.harmonic_coherence(score)
    values = {
        "rhythm_consistency": metrics.rhythm_consistency(score),
        "consonance": consonance,
        "dissonance": dissonance,
        "key_changes": float(metrics.key_changes(score, WINDOW_MEASURES)),
        "top_melody": metrics.top_melody(metrics.note_events(score)),
        "bar_quarters": metrics.bar_quarter_length(score),
    }
    elements = set()
    for index, part in enumerate(score.parts):
        for element in part.flatten().notes:
            pitches = tuple(sorted(int(p.midi) for p in element.pitches))
            onset, length = float(element.offset), float(element.quarterLength)
            elements.add((index, round(onset * UNITS), round(length * UNITS), pitches))
    return values, elements


def fast_side(data: bytes, bar_quarters: float, variants: tuple[str, ...]) -> dict[str, Any]:
    spec = seed001.Seed001Spec(MAX_QUARTER_LENGTH, WINDOW_MEASURES * bar_quarters)
    result = seed001.analyze(piece_from_bytes(data), spec, data, variants)
    values = {k.removeprefix("midilm_"): v for k, v in result.values.items()}
    values["top_melody"] = seed001.top_line(result.events)
    return values


def view_elements(data: bytes) -> set[tuple]:
    view = music21_view(piece_from_bytes(data), True, round(MAX_QUARTER_LENGTH * UNITS))
    counts = view.pitch_counts()
    return {
        (int(p), int(o), int(d), tuple(sorted(view.pitches[s : s + c].tolist())))
        for p, o, d, s, c in zip(
            view.part, view.onset, view.duration, view.pitch_start, counts, strict=True
        )
    }


def difference(a: Any, b: Any) -> float:
    if isinstance(a, list):
        return 0.0 if a == b else 1.0
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b)


def timed_pass(datas: list[bytes], bars: list[float], job: Any) -> float:
    start = time.perf_counter()
    for data, bar in zip(datas, bars, strict=True):
        job(data, bar)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=0, help="first N test pieces (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="passes of the fast side")
    args = parser.parse_args()
    env = environment()
    paths = test_pieces(args.pieces)
    datas = [p.read_bytes() for p in paths]

    start = time.perf_counter()
    reference, parses = [], []
    for path in paths:
        values, elements = music21_side(path)
        reference.append(values)
        parses.append(elements)
    music21_s = time.perf_counter() - start
    bars = [r["bar_quarters"] for r in reference]

    features = FeatureSpec(12, (1.5, 8.0), 4.0)

    distribution = DistributionSpec(("pitch_range",), (), ("pitch_range",), 512, 4000, 0, 2)

    def stage_job(data: bytes, bar: float) -> None:
        seed = seed001.Seed001Spec(MAX_QUARTER_LENGTH, WINDOW_MEASURES * bar)
        spec = MetricsSpec(features, seed, distribution, workers=1)
        analyze_piece(piece_from_bytes(data), spec, data)

    jobs = {
        "midilm": lambda d, b: fast_side(d, b, ("midilm",)),
        "both_variants": lambda d, b: fast_side(d, b, seed001.VARIANTS),
        "stage_per_piece": stage_job,
    }
    timings: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():
        timed_pass(datas, bars, job)  # warm-up: imports, cached tables
    for _ in range(args.repeats):
        for name, job in jobs.items():
            timings[name].append(timed_pass(datas, bars, job))

    diffs_all = dict.fromkeys(COMPARED, 0.0)
    diffs_kept = dict.fromkeys(COMPARED, 0.0)
    kept = 0
    for data, bar, ref, parse in zip(datas, bars, reference, parses, strict=True):
        ours = fast_side(data, bar, ("midilm",))
        in_place = parse == view_elements(data)
        kept += in_place
        for name in COMPARED:
            gap = difference(ref[name], ours[name])
            diffs_all[name] = max(diffs_all[name], gap)
            if in_place:
                diffs_kept[name] = max(diffs_kept[name], gap)

    n = len(paths)
    music21_rate = n / music21_s
    rates = {name: n / min(times) for name, times in timings.items()}
    result = {
        "environment": env,
        "pieces": n,
        "pieces_source": "test split of the default profile (data/split/manifest.parquet)",
        "max_quarter_length": MAX_QUARTER_LENGTH,
        "music21": {"pieces_per_s": round(music21_rate, 2), "seconds": round(music21_s, 2)},
        "note_arrays": {
            name: {"pieces_per_s": round(rates[name], 1), "times_s": [round(t, 4) for t in times]}
            for name, times in timings.items()
        },
        "speedup_midilm_vs_music21": round(rates["midilm"] / music21_rate, 1),
        "target_speedup": TARGET_RATIO,
        "meets_target": rates["midilm"] / music21_rate >= TARGET_RATIO,
        "max_abs_difference_all_pieces": {k: round(v, 12) for k, v in diffs_all.items()},
        "pieces_music21_keeps_in_place": kept,
        "max_abs_difference_pieces_in_place": {k: round(v, 12) for k, v in diffs_kept.items()},
        "note": "top_melody difference is 1 if any melody differs, else 0",
    }
    write_result("metrics", result)


if __name__ == "__main__":
    main()
