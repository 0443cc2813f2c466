"""The tokenize stage: every piece of the augmented manifest -> BOS + tokens + EOS, with stats and
the round-trip F1 of the test originals (`fidelity.roundtrip_fidelity`).

Outputs in `data/tokens/<tok>/`: `tokenizer.json`, `sequences.parquet` and `stats.json`, all
byte-identical across runs with the same inputs (downstream stages depend on them), and
`speed.json`, the wall-clock measurement, which is not.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import symusic
from omegaconf import DictConfig

from midilm.common.io import atomic_dir, atomic_path, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.params import to_plain
from midilm.common.paths import Layout
from midilm.tokenize.base import MusicTokenizer, build_tokenizer
from midilm.tokenize.fidelity import roundtrip_fidelity
from midilm.tokenize.parallel import Bounds, map_chunks, start_method, worker_state

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
MANIFEST_COLUMNS = ("id", "source_id", "dataset", "split", "augmented", "n_notes", "duration_s")
# sequences.parquet carries these so `pack` needs no other input
META_TOKENIZER, META_VOCAB = b"midilm.tokenizer", b"midilm.vocab_size"
STATS_FILE, SPEED_FILE = "stats.json", "speed.json"


# --- encoding -----------------------------------------------------------------------------------


def encode_ids(tokenizer: MusicTokenizer, score: symusic.Score) -> np.ndarray:
    """Token ids of `score` (no BOS/EOS) as int64; uses `encode_array` where a family has it."""
    fast = getattr(tokenizer, "encode_array", None)
    ids = fast(score) if fast is not None else tokenizer.encode(score)
    return np.asarray(ids, dtype=np.int64)


def encode_piece(tokenizer: MusicTokenizer, path: Path | str) -> tuple[np.ndarray | None, str]:
    """(BOS + ids + EOS as int32, "") or (None, reason): a bad file is reported, never raised."""
    try:
        score = symusic.Score(str(path))
    except Exception as exc:  # reported, never raised
        return None, f"load_error: {type(exc).__name__}: {exc}"
    try:
        ids = encode_ids(tokenizer, score)
    except Exception as exc:  # reported, never raised
        return None, f"encode_error: {type(exc).__name__}: {exc}"
    if not ids.size:
        return None, "empty: no tokens (no note inside the tokenizer's pitch range?)"
    out = np.empty(ids.size + 2, dtype=np.int32)
    out[0], out[1:-1], out[-1] = tokenizer.bos_id, ids, tokenizer.eos_id
    return out, ""


@dataclass(frozen=True)
class EncodedFiles:
    """Sequences of consecutive files: `lengths[i]` ids of file i (BOS and EOS included; 0 for
    a failed file) concatenated in `values`, and (file index, reason) for each failure."""

    lengths: np.ndarray  # int64
    values: np.ndarray  # int32
    failures: tuple[tuple[int, str], ...]

    @staticmethod
    def concat(parts: Sequence[EncodedFiles]) -> EncodedFiles:
        if not parts:
            return EncodedFiles(np.zeros(0, np.int64), np.zeros(0, np.int32), ())
        return EncodedFiles(
            np.concatenate([p.lengths for p in parts]),
            np.concatenate([p.values for p in parts]),
            tuple(f for p in parts for f in p.failures),
        )


def _encode_chunk(bounds: Bounds) -> EncodedFiles:
    """Pool job: read and encode files start..stop-1 of the worker's path list."""
    tokenizer, paths = worker_state()
    start, stop = bounds
    lengths = np.zeros(stop - start, dtype=np.int64)
    arrays: list[np.ndarray] = []
    failures: list[tuple[int, str]] = []
    for k in range(start, stop):
        ids, reason = encode_piece(tokenizer, paths[k])
        if ids is None:
            failures.append((k, reason))
            continue
        lengths[k - start] = ids.size
        arrays.append(ids)
    values = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
    return EncodedFiles(lengths, values, tuple(failures))


def encode_files(
    tokenizer: MusicTokenizer, paths: Sequence[Path | str], workers: int, desc: str = "tokenize"
) -> EncodedFiles:
    """Encode `paths` on `workers` processes: the same result, in path order, for any count."""
    return EncodedFiles.concat(map_chunks(tokenizer, _encode_chunk, paths, workers, desc))


# --- params -------------------------------------------------------------------------------------


def tokenizer_entry(plain: Mapping[str, Any], key: str | None) -> tuple[str, dict[str, Any]]:
    """(output name, config) of tokenizer `key` in params.tokenizers. Without a key: the
    `tokenizer` group's name if params have one, else the only entry of `tokenizers`."""
    single = plain.get("tokenizer")
    entries = dict(plain.get("tokenizers") or ({single["name"]: single} if single else {}))
    if key is None:
        if single:
            key = str(single["name"])
        elif len(entries) == 1:
            key = next(iter(entries))
        else:
            raise KeyError(
                f"params.yaml: name the tokenizer to run, one of {', '.join(entries) or 'none'} "
                "(`python -m stages.tokenize <key>`)"
            )
    key = str(key)
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


# --- the stage ----------------------------------------------------------------------------------


def run_tokenize(
    params: Mapping[str, Any] | DictConfig,
    layout: Layout | None = None,
    key: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the stage for tokenizer `key` of params.tokenizers (see `tokenizer_entry`); returns
    the stats written to `tokens_dir(key)/stats.json` (the timing goes to `speed.json`)."""
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
    chosen = seeded_sample(list(manifest["id"]), cfg.get("max_pieces"), seed)
    pieces = manifest[manifest["id"].isin(chosen)].reset_index(drop=True)

    trained = None
    if cfg.get("train"):
        train_ids = list(pieces.loc[pieces["split"] == "train", "id"])
        sample = seeded_sample(train_ids, cfg["train"].get("max_files"), seed)
        paths = [layout.root / p for p in pieces.loc[pieces["id"].isin(sample), "path"]]
        trained = train_tokenizer(tokenizer, cfg["train"], paths)

    start = time.perf_counter()
    encoded = encode_files(
        tokenizer, [layout.root / p for p in pieces["path"]], workers, f"tokenize {name}"
    )
    seconds = time.perf_counter() - start
    failed = [{"id": str(pieces["id"][i]), "reason": reason} for i, reason in encoded.failures]
    for f in failed:
        log.warning("tokenize %s: skipped %s (%s)", name, f["id"], f["reason"])

    originals = manifest[(manifest["split"] == "test") & ~manifest["augmented"].astype(bool)]
    fidelity = roundtrip_fidelity(tokenizer, [layout.root / p for p in originals["path"]], workers)

    kept = encoded.lengths > 0
    table = sequences_table(pieces[kept], encoded, name, tokenizer.vocab_size)
    stats = _stats(name, tokenizer, pieces[kept], encoded.lengths[kept], failed)
    stats.update(
        **fidelity,
        family=str(cfg.get("family") or cfg["name"]),
        max_pieces=cfg.get("max_pieces"),
        trained=trained,
    )
    speed = {
        "tokenizer": name,
        "files": len(pieces),
        "workers": workers,
        "start_method": start_method() if workers > 1 else None,
        "seconds": round(seconds, 3),
        "encode_files_per_s": round(len(pieces) / seconds, 2) if seconds > 0 else None,
    }
    with atomic_dir(layout.tokens_dir(name)) as tmp:
        tokenizer.save(tmp / "tokenizer.json")
        write_table(tmp / "sequences.parquet", table)
        write_json_atomic(tmp / STATS_FILE, stats)
        write_json_atomic(tmp / SPEED_FILE, speed)
    log.info(
        "tokenize %s: %d sequences, %d tokens, %d failed, round-trip F1 %s (on grid %s), "
        "%s files/s",
        name,
        stats["sequences"],
        stats["tokens"],
        len(failed),
        fidelity["roundtrip"]["f1"],
        fidelity["roundtrip_on_grid"]["f1"],
        speed["encode_files_per_s"],
    )
    return stats


# --- sequences.parquet --------------------------------------------------------------------------


def ids_column(
    lengths: np.ndarray, values: np.ndarray, max_chunk_ids: int = 2**31 - 1
) -> pa.ChunkedArray:
    """list<int32> column of the sequences laid end to end in `values`, `lengths` ids each: one
    Arrow chunk, or several of at most `max_chunk_ids` ids (int32 offsets end at 2**31 - 1)."""
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    chunks, start = [], 0
    while start < len(lengths):
        last = int(np.searchsorted(offsets, offsets[start] + max_chunk_ids, side="right")) - 1
        stop = max(last, start + 1)
        if offsets[stop] - offsets[start] > max_chunk_ids:
            raise ValueError(f"a sequence of {lengths[start]} ids is over {max_chunk_ids} ids")
        local = (offsets[start : stop + 1] - offsets[start]).astype(np.int32)
        chunk = values[offsets[start] : offsets[stop]].astype(np.int32, copy=False)
        chunks.append(pa.ListArray.from_arrays(pa.array(local), pa.array(chunk)))
        start = stop
    return pa.chunked_array(chunks, pa.list_(pa.int32()))


def sequences_table(
    pieces: pd.DataFrame, encoded: EncodedFiles, name: str, vocab_size: int
) -> pa.Table:
    """The sequences.parquet table: `pieces` (manifest rows of the kept files, in order) with
    `n_tokens` and `ids` from `encoded`; the tokenizer name and vocab size in its metadata."""
    lengths = encoded.lengths[encoded.lengths > 0]
    if len(lengths) != len(pieces):
        raise ValueError(f"{len(pieces)} pieces but {len(lengths)} encoded sequences")
    columns: dict[str, Any] = {
        c: pa.array(pieces[c].tolist(), type=SEQUENCES_SCHEMA.field(c).type)
        for c in MANIFEST_COLUMNS
    }
    columns["n_tokens"] = pa.array(lengths, type=pa.int64())
    columns["ids"] = ids_column(lengths, encoded.values)
    meta = {META_TOKENIZER: name.encode(), META_VOCAB: str(vocab_size).encode()}
    return pa.table(columns, schema=SEQUENCES_SCHEMA.with_metadata(meta))


def write_table(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_sequences(path: Path, rows: list[dict[str, Any]], name: str, vocab_size: int) -> None:
    """sequences.parquet from row dicts (MANIFEST_COLUMNS + `ids`), e.g. for test fixtures."""
    lengths = np.asarray([len(r["ids"]) for r in rows], dtype=np.int64)
    values = np.asarray([i for r in rows for i in r["ids"]], dtype=np.int32)
    pieces = pd.DataFrame([{c: r[c] for c in MANIFEST_COLUMNS} for r in rows])
    pieces = pieces if rows else pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    table = sequences_table(pieces, EncodedFiles(lengths, values, ()), name, vocab_size)
    write_table(path, table)


# --- stats.json ---------------------------------------------------------------------------------


def _stats(
    name: str,
    tokenizer: MusicTokenizer,
    pieces: pd.DataFrame,
    lengths: np.ndarray,
    failed: list[dict[str, str]],
) -> dict[str, Any]:
    """Counts and length percentiles of the kept sequences (deterministic: no timings)."""
    tokens = int(lengths.sum())
    n_notes = pieces["n_notes"].to_numpy(dtype=np.int64)
    notes = int(n_notes.sum())
    duration = math.fsum(pieces["duration_s"].astype(float))
    split = pieces["split"].to_numpy()
    per_split = {
        s: {
            "sequences": int((split == s).sum()),
            "tokens": int(lengths[split == s].sum()),
            "notes": int(n_notes[split == s].sum()),
        }
        for s in SPLITS
    }
    return {
        "tokenizer": name,
        "vocab_size": int(tokenizer.vocab_size),
        "sequences": len(lengths),
        "tokens": tokens,
        "notes": notes,
        "duration_s": _r(duration),
        "tokens_per_note": _r(tokens / notes) if notes else None,
        "tokens_per_second": _r(tokens / duration) if duration else None,
        "seq_len_p50": _r(float(np.percentile(lengths, 50))) if lengths.size else None,
        "seq_len_p95": _r(float(np.percentile(lengths, 95))) if lengths.size else None,
        "failed": sorted(failed, key=lambda f: f["id"]),
        "per_split": per_split,
    }


def _r(value: float) -> float:
    return round(float(value), 6)
