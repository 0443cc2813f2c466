"""The tokenize stage: every piece of the augmented manifest -> BOS + tokens + EOS, with stats
and the round-trip F1 of the test originals."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import symusic
from omegaconf import DictConfig
from tqdm import tqdm

from midilm.common.io import atomic_dir, atomic_path, write_json_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.params import to_plain
from midilm.common.paths import Layout
from midilm.tokenize.base import MusicTokenizer, build_tokenizer
from midilm.tokenize.fidelity import match_notes, notes_at, notes_at_seconds, prf, time_grid_s

log = get_logger(__name__)

SPLITS = ("train", "valid", "test")
SEQUENCES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source_id", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("augmented", pa.bool_()),
        ("n_notes", pa.int64()),
        ("duration_s", pa.float64()),
        ("n_tokens", pa.int64()),
        ("ids", pa.list_(pa.int32())),
    ]
)
# sequences.parquet carries these so `pack` needs no other input
META_TOKENIZER, META_VOCAB = b"midilm.tokenizer", b"midilm.vocab_size"


def encode_piece(tokenizer: MusicTokenizer, path: Path) -> tuple[list[int] | None, str | None]:
    """(BOS + ids + EOS, None) or (None, reason) — a bad file is reported, never raised."""
    try:
        score = symusic.Score(str(path))
    except Exception as exc:  # reported, never raised
        return None, f"load_error: {type(exc).__name__}: {exc}"
    try:
        ids = tokenizer.encode(score)
    except Exception as exc:  # reported, never raised
        return None, f"encode_error: {type(exc).__name__}: {exc}"
    if not ids:
        return None, "empty: no tokens (no note inside the tokenizer's pitch range?)"
    return [tokenizer.bos_id, *ids, tokenizer.eos_id], None


RoundTrip = tuple[int, int, int]  # matched, reference notes, decoded notes


def roundtrip_counts(
    tokenizer: MusicTokenizer, path: Path, onset_tol_ticks: int = 1
) -> RoundTrip | None:
    """(matched, reference notes, decoded notes) of encode -> decode for one file, or None."""
    tpq = int(getattr(tokenizer, "resolution", 0)) or None
    try:
        reference = symusic.Score(str(path))
        decoded = tokenizer.decode(tokenizer.encode(reference))
    except Exception:  # already reported in `failed`
        return None
    step_s = time_grid_s(tokenizer)
    if step_s is not None:  # real-time tokenizer: compare in seconds, tempo-independent
        ref, dec = notes_at_seconds(reference, step_s), notes_at_seconds(decoded, step_s)
    else:
        base = tpq or decoded.ticks_per_quarter
        ref, dec = notes_at(reference, base), notes_at(decoded, base)
    return match_notes(ref, dec, onset_tol_ticks), len(ref), len(dec)


def roundtrip_summary(counts: list[RoundTrip | None]) -> dict[str, Any]:
    """Micro-averaged note P/R/F1 from `roundtrip_counts` results (None: a failed file)."""
    done = [c for c in counts if c is not None]
    if not done:
        return {"pieces": 0, "precision": None, "recall": None, "f1": None}
    matched, n_ref, n_dec = (sum(c[i] for c in done) for i in range(3))  # micro-average
    precision, recall, f1 = prf(matched, n_ref, n_dec)
    return {"pieces": len(done), "precision": _r(precision), "recall": _r(recall), "f1": _r(f1)}


def roundtrip_f1(
    tokenizer: MusicTokenizer, paths: list[Path], onset_tol_ticks: int = 1
) -> dict[str, Any]:
    """Micro-averaged note P/R/F1 of encode -> decode over `paths` at the tokenizer's grid."""
    return roundtrip_summary([roundtrip_counts(tokenizer, p, onset_tol_ticks) for p in paths])


def tokenizer_entry(plain: Mapping[str, Any], key: str | None) -> tuple[str, dict[str, Any]]:
    """(output name, config) of tokenizer `key` in params.tokenizers; None: the training one."""
    training = dict(plain["tokenizer"])
    key = str(key or training["name"])
    entries = dict(plain.get("tokenizers") or {training["name"]: training})
    if key not in entries:
        raise KeyError(
            f"params.yaml: tokenizer {key!r} is not in `tokenizers` ({', '.join(entries)}); "
            "add it to conf/tokenizers/*.yaml or pick one of those."
        )
    return key, dict(entries[key])


def build_entry(cfg: Mapping[str, Any]) -> MusicTokenizer:
    """Build a tokenizer from a `tokenizers` entry (`family` names the class when set)."""
    return build_tokenizer({**cfg, "name": cfg.get("family") or cfg["name"]})


def seeded_sample(ids: list[str], n: int | None, seed: int) -> set[str]:
    """At most `n` of `ids`, chosen by a hash of (seed, id): independent of order."""
    if n is None or n >= len(ids):
        return set(ids)
    rank = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}\x1f{i}".encode()).digest())
    return set(rank[: int(n)])


def train_tokenizer(
    tokenizer: MusicTokenizer, train_cfg: Mapping[str, Any], paths: list[Path]
) -> dict[str, Any]:
    """Train BPE/Unigram on `paths` (already a capped sample); returns what was done."""
    if not hasattr(tokenizer, "train"):
        raise ValueError(f"tokenizer {tokenizer.name!r} cannot be trained (BPE/Unigram)")
    model, size = str(train_cfg.get("model", "BPE")), int(train_cfg["vocab_size"])
    tokenizer.train(size, model, paths)  # type: ignore[attr-defined]
    return {"model": model, "vocab_size": size, "files": len(paths)}


_WORKER_TOKENIZER: MusicTokenizer | None = None


def _init_worker(tokenizer: MusicTokenizer) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer


def _encode_job(path: Path) -> tuple[list[int] | None, str | None]:
    assert _WORKER_TOKENIZER is not None
    return encode_piece(_WORKER_TOKENIZER, path)


def _roundtrip_job(path: Path) -> RoundTrip | None:
    assert _WORKER_TOKENIZER is not None
    return roundtrip_counts(_WORKER_TOKENIZER, path)


def _map(tokenizer: MusicTokenizer, fn: Any, paths: list[Path], workers: int, desc: str) -> list:
    """`fn` over `paths` in order, in `workers` processes (each holding one tokenizer copy)."""
    bar = {"total": len(paths), "desc": desc, "disable": progress_disabled()}
    if workers <= 1 or len(paths) < 2 * workers:
        _init_worker(tokenizer)
        return [fn(p) for p in tqdm(paths, **bar)]
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(tokenizer,)) as pool:
        return list(tqdm(pool.map(fn, paths, chunksize=16), **bar))


def run_tokenize(
    params: Mapping[str, Any] | DictConfig,
    layout: Layout | None = None,
    key: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the stage for tokenizer `key` of params.tokenizers (None: the training tokenizer);
    returns the stats written to `tokens_dir(key)/stats.json`."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    name, cfg = tokenizer_entry(plain, key)
    tokenizer = build_entry(cfg)
    if workers is None:
        workers = int((plain.get("dataset") or {}).get("workers") or 1)
    if not layout.augment_manifest.exists():
        raise FileNotFoundError(
            f"{layout.augment_manifest}: augmented manifest missing; run `dvc repro augment`."
        )
    manifest = pd.read_parquet(layout.augment_manifest)
    seed = int(plain.get("seed", 0))
    records = manifest.to_dict("records")
    chosen = seeded_sample([r["id"] for r in records], cfg.get("max_pieces"), seed)
    records = [r for r in records if r["id"] in chosen]

    trained = None
    if cfg.get("train"):
        train_ids = [r["id"] for r in records if r["split"] == "train"]
        sample = seeded_sample(train_ids, cfg["train"].get("max_files"), seed)
        paths = [layout.root / r["path"] for r in records if r["id"] in sample]
        trained = train_tokenizer(tokenizer, cfg["train"], paths)

    start = time.perf_counter()
    paths = [layout.root / r["path"] for r in records]
    encoded = _map(tokenizer, _encode_job, paths, workers, f"tokenize {name}")
    seconds = time.perf_counter() - start
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    keep = ("id", "source_id", "dataset", "split", "augmented", "n_notes", "duration_s")
    for row, (ids, reason) in zip(records, encoded, strict=True):
        if ids is None:
            log.warning("tokenize %s: skipped %s (%s)", name, row["id"], reason)
            failed.append({"id": row["id"], "reason": str(reason)})
            continue
        rows.append({**{k: row[k] for k in keep}, "n_tokens": len(ids), "ids": ids})

    test_paths = [
        layout.root / r["path"]
        for r in manifest.to_dict("records")
        if r["split"] == "test" and not r["augmented"]
    ]
    roundtrip = roundtrip_summary(
        _map(tokenizer, _roundtrip_job, test_paths, workers, f"round-trip {name}")
    )
    stats = _stats(name, tokenizer, rows, failed, roundtrip)
    stats["family"] = str(cfg.get("family") or cfg["name"])
    stats["max_pieces"] = cfg.get("max_pieces")
    stats["trained"] = trained
    stats["speed"] = {
        "files": len(records),
        "workers": workers,
        "seconds": round(seconds, 3),
        "encode_files_per_s": round(len(records) / seconds, 2) if seconds > 0 else None,
    }

    with atomic_dir(layout.tokens_dir(name)) as tmp:
        tokenizer.save(tmp / "tokenizer.json")
        write_sequences(tmp / "sequences.parquet", rows, name, tokenizer.vocab_size)
        write_json_atomic(tmp / "stats.json", stats)
    log.info(
        "tokenize %s: %d sequences, %d tokens, %d failed, round-trip F1 %s",
        name,
        stats["sequences"],
        stats["tokens"],
        len(failed),
        roundtrip["f1"],
    )
    return stats


def write_sequences(path: Path, rows: list[dict[str, Any]], name: str, vocab_size: int) -> None:
    """sequences.parquet with the exact schema (ids list<int32>) and the tokenizer in metadata."""
    columns = {f.name: [r[f.name] for r in rows] for f in SEQUENCES_SCHEMA}
    meta = {META_TOKENIZER: name.encode(), META_VOCAB: str(vocab_size).encode()}
    table = pa.Table.from_pydict(columns, schema=SEQUENCES_SCHEMA.with_metadata(meta))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _stats(
    name: str,
    tokenizer: MusicTokenizer,
    rows: list[dict[str, Any]],
    failed: list[dict[str, str]],
    roundtrip: dict[str, Any],
) -> dict[str, Any]:
    lengths = np.asarray([r["n_tokens"] for r in rows], dtype=np.int64)
    tokens = int(lengths.sum())
    notes = int(sum(int(r["n_notes"]) for r in rows))
    duration = float(sum(float(r["duration_s"]) for r in rows))
    per_split = {
        split: {
            "sequences": sum(1 for r in rows if r["split"] == split),
            "tokens": sum(int(r["n_tokens"]) for r in rows if r["split"] == split),
            "notes": sum(int(r["n_notes"]) for r in rows if r["split"] == split),
        }
        for split in SPLITS
    }
    return {
        "tokenizer": name,
        "vocab_size": int(tokenizer.vocab_size),
        "sequences": len(rows),
        "tokens": tokens,
        "notes": notes,
        "duration_s": _r(duration),
        "tokens_per_note": _r(tokens / notes) if notes else None,
        "tokens_per_second": _r(tokens / duration) if duration else None,
        "seq_len_p50": _r(float(np.percentile(lengths, 50))) if lengths.size else None,
        "seq_len_p95": _r(float(np.percentile(lengths, 95))) if lengths.size else None,
        "failed": sorted(failed, key=lambda f: f["id"]),
        "per_split": per_split,
        "roundtrip": roundtrip,
    }


def _r(value: float) -> float:
    return round(float(value), 6)
