"""The tokenize stage: every piece of the augmented manifest -> BOS + tokens + EOS, with stats
and the round-trip F1 of the test originals."""

from __future__ import annotations

import time
from collections.abc import Mapping
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
from midilm.tokenize.fidelity import match_notes, notes_at, prf

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


def roundtrip_f1(
    tokenizer: MusicTokenizer, paths: list[Path], onset_tol_ticks: int = 1
) -> dict[str, Any]:
    """Micro-averaged note P/R/F1 of encode -> decode over `paths` at the tokenizer's grid."""
    tpq = int(getattr(tokenizer, "resolution", 0)) or None
    matched = n_ref = n_dec = pieces = 0
    for path in paths:
        try:
            reference = symusic.Score(str(path))
            decoded = tokenizer.decode(tokenizer.encode(reference))
        except Exception:  # already reported in `failed`
            continue
        base = tpq or decoded.ticks_per_quarter
        ref, dec = notes_at(reference, base), notes_at(decoded, base)
        matched += match_notes(ref, dec, onset_tol_ticks)
        n_ref, n_dec, pieces = n_ref + len(ref), n_dec + len(dec), pieces + 1
    if pieces == 0:
        return {"pieces": 0, "precision": None, "recall": None, "f1": None}
    precision, recall, f1 = prf(matched, n_ref, n_dec)
    return {"pieces": pieces, "precision": _r(precision), "recall": _r(recall), "f1": _r(f1)}


def run_tokenize(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None
) -> dict[str, Any]:
    """Run the stage; returns the stats written to `tokens_dir(name)/stats.json`."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    tokenizer = build_tokenizer(plain["tokenizer"])
    if not layout.augment_manifest.exists():
        raise FileNotFoundError(
            f"{layout.augment_manifest}: augmented manifest missing; run `dvc repro augment`."
        )
    manifest = pd.read_parquet(layout.augment_manifest)
    out_dir = layout.tokens_dir(tokenizer.name)

    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    start = time.perf_counter()
    records = manifest.to_dict("records")
    for row in tqdm(records, desc=f"tokenize {tokenizer.name}", disable=progress_disabled()):
        ids, reason = encode_piece(tokenizer, layout.root / row["path"])
        if ids is None:
            log.warning("tokenize: skipped %s (%s)", row["id"], reason)
            failed.append({"id": row["id"], "reason": str(reason)})
            continue
        keep = ("id", "source_id", "dataset", "split", "augmented", "n_notes", "duration_s")
        rows.append({**{k: row[k] for k in keep}, "n_tokens": len(ids), "ids": ids})
    seconds = time.perf_counter() - start

    test_paths = [
        layout.root / r["path"] for r in records if r["split"] == "test" and not r["augmented"]
    ]
    roundtrip = roundtrip_f1(tokenizer, test_paths)
    stats = _stats(tokenizer, rows, failed, roundtrip)
    stats["speed"] = {
        "files": len(records),
        "seconds": round(seconds, 3),
        "encode_files_per_s": round(len(records) / seconds, 2) if seconds > 0 else None,
    }

    with atomic_dir(out_dir) as tmp:
        tokenizer.save(tmp / "tokenizer.json")
        write_sequences(tmp / "sequences.parquet", rows, tokenizer.name, tokenizer.vocab_size)
        write_json_atomic(tmp / "stats.json", stats)
    log.info(
        "tokenize %s: %d sequences, %d tokens, %d failed, round-trip F1 %s",
        tokenizer.name,
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
        "tokenizer": tokenizer.name,
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
