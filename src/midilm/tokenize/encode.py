"""Encoding many files on a pool of processes: each file -> its sequences (BOS + tokens + EOS;
one per piece, or one per segment for an encoding that cuts pieces at long silences), or the
reason it failed. The result is the same, in file order, for any number of workers."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.parallel import Bounds, map_chunks, worker_state


def encode_ids(tokenizer: MusicTokenizer, score: symusic.Score) -> np.ndarray:
    """Token ids of `score` (no BOS/EOS) as int64; uses `encode_array` where a family has it."""
    fast = getattr(tokenizer, "encode_array", None)
    ids = fast(score) if fast is not None else tokenizer.encode(score)
    return np.asarray(ids, dtype=np.int64)


def framed(tokenizer: MusicTokenizer, ids: np.ndarray) -> np.ndarray:
    """BOS + ids + EOS as int32 (a BOS or EOS already at either end is not doubled)."""
    if ids.size and ids[0] == tokenizer.bos_id:
        ids = ids[1:]
    if ids.size and ids[-1] == tokenizer.eos_id:
        ids = ids[:-1]
    out = np.empty(ids.size + 2, dtype=np.int32)
    out[0], out[1:-1], out[-1] = tokenizer.bos_id, ids, tokenizer.eos_id
    return out


def piece_sequences(
    tokenizer: MusicTokenizer, score: symusic.Score, segments: bool
) -> list[np.ndarray]:
    """The framed sequences of one piece: the whole piece, or each of its segments."""
    if segments:
        parts = [np.asarray(s, dtype=np.int64) for s in tokenizer.encode_segments(score)]  # type: ignore[attr-defined]
    else:
        parts = [encode_ids(tokenizer, score)]
    return [framed(tokenizer, p) for p in parts if p.size]


def encode_piece(
    tokenizer: MusicTokenizer, path: Path | str, segments: bool = False
) -> tuple[list[np.ndarray], str]:
    """(sequences, "") or ([], reason): a bad file is reported, never raised."""
    try:
        score = symusic.Score(str(path))
    except Exception as exc:  # reported, never raised
        return [], f"load_error: {type(exc).__name__}: {exc}"
    try:
        sequences = piece_sequences(tokenizer, score, segments)
    except Exception as exc:  # reported, never raised
        return [], f"encode_error: {type(exc).__name__}: {exc}"
    if not sequences or all(s.size <= 2 for s in sequences):
        return [], "empty: no tokens (no note inside the tokenizer's pitch range?)"
    return sequences, ""


@dataclass(frozen=True)
class EncodedFiles:
    """The sequences of consecutive files laid end to end in `values`: sequence i has
    `lengths[i]` ids and belongs to file `files[i]` (its `segments[i]`-th segment); plus
    (file index, reason) for each file that failed."""

    files: np.ndarray  # int64
    segments: np.ndarray  # int32
    lengths: np.ndarray  # int64
    values: np.ndarray  # int32
    failures: tuple[tuple[int, str], ...]

    @staticmethod
    def concat(parts: Sequence[EncodedFiles]) -> EncodedFiles:
        if not parts:
            empty = np.zeros(0, np.int64)
            return EncodedFiles(empty, np.zeros(0, np.int32), empty, np.zeros(0, np.int32), ())
        return EncodedFiles(
            np.concatenate([p.files for p in parts]),
            np.concatenate([p.segments for p in parts]),
            np.concatenate([p.lengths for p in parts]),
            np.concatenate([p.values for p in parts]),
            tuple(f for p in parts for f in p.failures),
        )


def _encode_chunk(bounds: Bounds, by_segment: bool) -> EncodedFiles:
    """Pool job: read and encode files start..stop-1 of the worker's path list."""
    tokenizer, paths = worker_state()
    files, segments, lengths, arrays = [], [], [], []
    failures: list[tuple[int, str]] = []
    for k in range(*bounds):
        sequences, reason = encode_piece(tokenizer, paths[k], by_segment)
        if not sequences:
            failures.append((k, reason))
        for index, ids in enumerate(sequences):
            files.append(k)
            segments.append(index)
            lengths.append(ids.size)
            arrays.append(ids)
    return EncodedFiles(
        np.asarray(files, dtype=np.int64),
        np.asarray(segments, dtype=np.int32),
        np.asarray(lengths, dtype=np.int64),
        np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32),
        tuple(failures),
    )


def encode_files(
    tokenizer: MusicTokenizer,
    paths: Sequence[Path | str],
    workers: int,
    segments: bool = False,
    desc: str = "tokenize",
) -> EncodedFiles:
    """Encode `paths` on `workers` processes: the same result, in path order, for any count."""
    job = functools.partial(_encode_chunk, by_segment=segments)
    return EncodedFiles.concat(map_chunks(tokenizer, job, paths, workers, desc))
