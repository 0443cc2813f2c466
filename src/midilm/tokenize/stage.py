"""Stage `tokenize@KEY`: every piece of the augmented manifest encoded with tokenizer KEY of
params `tokenizers` (BOS + tokens + EOS per piece, or per segment), with stats and the round-trip
F1 of the test originals.

Outputs: data/tokens/KEY/{tokenizer.json, sequences.parquet, stats.json}, byte-identical across
runs with the same inputs, and outputs/speed/tokenize-KEY.json, the wall-clock measurement.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import symusic

from midilm.common.io import atomic_dir, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.common.seeding import seeded_order
from midilm.specs.tokenizer import TokenizerSpec, tokenizer_spec
from midilm.store.sequences import PIECE_COLUMNS, SEQUENCES_FILE, sequences_table, write_table
from midilm.tokenize.base import MusicTokenizer, build_tokenizer
from midilm.tokenize.encode import encode_files
from midilm.tokenize.fidelity import match_notes, notes_at, notes_at_seconds, prf, time_grid_s
from midilm.tokenize.parallel import Bounds, map_chunks, start_method, worker_state
from midilm.tokenize.stats import sequence_stats

log = get_logger(__name__)

STATS_FILE = "stats.json"


# --- round trip ---------------------------------------------------------------------------------

RoundTrip = tuple[int, int, int]  # matched, reference notes, decoded notes


def compare_notes(
    tokenizer: MusicTokenizer,
    reference: symusic.Score,
    decoded: symusic.Score,
    onset_tol_ticks: int = 1,
    duration_tol: float = 0.2,
) -> RoundTrip:
    """(matched, reference notes, decoded notes) at the tokenizer's grid: seconds for real-time
    tokenizers (tempo-independent), else its positions per quarter."""
    step_s = time_grid_s(tokenizer)
    if step_s is not None:
        ref, dec = notes_at_seconds(reference, step_s), notes_at_seconds(decoded, step_s)
    else:
        base = int(getattr(tokenizer, "resolution", 0)) or decoded.ticks_per_quarter
        ref, dec = notes_at(reference, base), notes_at(decoded, base)
    return match_notes(ref, dec, onset_tol_ticks, duration_tol), len(ref), len(dec)


def roundtrip_counts(
    tokenizer: MusicTokenizer, path: Path | str, onset_tol_ticks: int = 1
) -> tuple[RoundTrip, RoundTrip] | None:
    """(raw, on grid) counts for one file, or None when it fails.

    raw: decode(encode(piece)) against the piece, within `onset_tol_ticks` grid steps.
    on grid: the piece snapped to the tokenizer's grid and rules (g = decode(encode(piece)))
    against decode(encode(g)), matched exactly (same pitch, onset and duration step)."""
    try:
        reference = symusic.Score(str(path))
        once = tokenizer.decode(tokenizer.encode(reference))
        twice = tokenizer.decode(tokenizer.encode(once))
    except Exception:  # already reported in `failed`
        return None
    raw = compare_notes(tokenizer, reference, once, onset_tol_ticks)
    return raw, compare_notes(tokenizer, once, twice, 0, 0.0)


def _roundtrip_chunk(bounds: Bounds) -> list[tuple[RoundTrip, RoundTrip] | None]:
    tokenizer, paths = worker_state()
    return [roundtrip_counts(tokenizer, paths[k]) for k in range(*bounds)]


def roundtrip_summary(counts: Sequence[RoundTrip | None]) -> dict[str, Any]:
    """Micro-averaged note P/R/F1 from `roundtrip_counts` results (None: a failed file)."""
    done = [c for c in counts if c is not None]
    if not done:
        return {"pieces": 0, "precision": None, "recall": None, "f1": None}
    matched, n_ref, n_dec = (sum(c[i] for c in done) for i in range(3))  # micro-average
    precision, recall, f1 = prf(matched, n_ref, n_dec)
    return {"pieces": len(done), "precision": _r(precision), "recall": _r(recall), "f1": _r(f1)}


def roundtrip_f1(
    tokenizer: MusicTokenizer, paths: Sequence[Path | str], workers: int = 1
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(raw, on grid) micro-averaged note P/R/F1 of encode -> decode over `paths`."""
    chunks = map_chunks(tokenizer, _roundtrip_chunk, paths, workers, "round-trip")
    counts = [c for chunk in chunks for c in chunk]
    raw = roundtrip_summary([c[0] if c else None for c in counts])
    return raw, roundtrip_summary([c[1] if c else None for c in counts])


# --- the stage ----------------------------------------------------------------------------------


def run_tokenize(
    params: Mapping[str, Any], layout: Layout, key: str, workers: int | None = None
) -> dict[str, Any]:
    """Run the stage for tokenizer `key`; returns the stats written to data/tokens/KEY/stats.json
    (the timing goes to outputs/speed/tokenize-KEY.json)."""
    spec = tokenizer_spec(params, key)
    tokenizer = build_tokenizer(spec.build_cfg)
    workers = workers or int(params["dataset"]["workers"])
    if not layout.augment_manifest.exists():
        raise FileNotFoundError(
            f"{layout.augment_manifest}: augmented manifest missing; run `dvc repro augment`."
        )
    manifest = pd.read_parquet(layout.augment_manifest)
    seed = int(params["seed"])
    chosen = _sample(list(manifest["id"]), spec.max_pieces, seed)
    pieces = manifest[manifest["id"].isin(chosen)].reset_index(drop=True)
    trained = _train_vocabulary(tokenizer, spec, pieces, layout, seed)

    start = time.perf_counter()
    encoded = encode_files(
        tokenizer,
        [layout.root / p for p in pieces["path"]],
        workers,
        spec.segments,
        f"tokenize {spec.key}",
    )
    seconds = time.perf_counter() - start
    failed = [{"id": str(pieces["id"][i]), "reason": reason} for i, reason in encoded.failures]
    for f in failed:
        log.warning("tokenize %s: skipped %s (%s)", spec.key, f["id"], f["reason"])

    originals = manifest[(manifest["split"] == "test") & ~manifest["augmented"].astype(bool)]
    raw, on_grid = roundtrip_f1(tokenizer, [layout.root / p for p in originals["path"]], workers)

    rows = pieces.iloc[encoded.files].reset_index(drop=True)
    table = sequences_table(
        rows[list(PIECE_COLUMNS)],
        encoded.segments,
        encoded.lengths,
        encoded.values,
        spec.key,
        tokenizer.vocab_size,
    )
    stats = sequence_stats(spec.key, tokenizer, rows, encoded.lengths, failed)
    stats.update(
        roundtrip=raw,
        roundtrip_on_grid=on_grid,
        family=spec.family,
        max_pieces=spec.max_pieces,
        segments=spec.segments,
        trained=trained,
    )
    speed = {
        "tokenizer": spec.key,
        "files": len(pieces),
        "workers": workers,
        "start_method": start_method() if workers > 1 else None,
        "seconds": round(seconds, 3),
        "encode_files_per_s": round(len(pieces) / seconds, 2) if seconds > 0 else None,
    }
    with atomic_dir(layout.tokens_dir(spec.key)) as tmp:
        tokenizer.save(tmp / "tokenizer.json")
        write_table(tmp / SEQUENCES_FILE, table)
        write_json_atomic(tmp / STATS_FILE, stats)
    write_json_atomic(layout.speed_file("tokenize", spec.key), speed)
    log.info(
        "tokenize %s: %d sequences, %d tokens, %d failed, round-trip F1 %s (on grid %s), "
        "%s files/s",
        spec.key,
        stats["sequences"],
        stats["tokens"],
        len(failed),
        raw["f1"],
        on_grid["f1"],
        speed["encode_files_per_s"],
    )
    return stats


def _sample(ids: list[str], n: int | None, seed: int) -> set[str]:
    """At most `n` of `ids` (all when n is None), a seeded choice independent of order."""
    return set(ids if n is None else seeded_order(seed, ids)[:n])


def _train_vocabulary(
    tokenizer: MusicTokenizer,
    spec: TokenizerSpec,
    pieces: pd.DataFrame,
    layout: Layout,
    seed: int,
) -> dict[str, Any] | None:
    """Train BPE/Unigram on a seeded sample of the train pieces (when the spec asks)."""
    if spec.train is None:
        return None
    if not hasattr(tokenizer, "train"):
        raise ValueError(f"tokenizer {spec.key!r} cannot be trained (BPE/Unigram): drop `train`")
    train_ids = list(pieces.loc[pieces["split"] == "train", "id"])
    sample = _sample(train_ids, spec.train.max_files, seed)
    paths = [layout.root / p for p in pieces.loc[pieces["id"].isin(sample), "path"]]
    tokenizer.train(spec.train.vocab_size, spec.train.model, paths)  # type: ignore[attr-defined]
    return {"model": spec.train.model, "vocab_size": spec.train.vocab_size, "files": len(paths)}


def _r(value: float) -> float:
    return round(float(value), 6)
