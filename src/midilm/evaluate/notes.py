"""A MIDI file as flat note arrays (symusic, ticks): what every metric of this package reads.

One load per file, no music21: onsets, durations, pitches and velocities of all tracks in one set
of arrays, with the track index and a drum flag per note, plus the time signatures, tempos and
key-signature events the metrics need.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import symusic

DEFAULT_MSPQ = 500_000  # 120 quarter notes per minute when a file has no tempo event


@dataclass(frozen=True)
class PieceNotes:
    """Every note of a piece, sorted by track then onset (file order within a tick)."""

    tpq: int  # ticks per quarter note
    onset: np.ndarray  # int64 ticks
    duration: np.ndarray  # int64 ticks, >= 0
    pitch: np.ndarray  # int64, 0..127
    velocity: np.ndarray  # int64
    track: np.ndarray  # int64 index into `track_is_drum`
    drum: np.ndarray  # bool per note (the track is on MIDI channel 10)
    track_is_drum: tuple[bool, ...]  # per track, in file order, empty tracks included
    time_signatures: np.ndarray  # (n, 3) int64 rows (tick, numerator, denominator), sorted
    tempos: np.ndarray  # (n, 2) int64 rows (tick, microseconds per quarter), sorted
    key_signature_ticks: np.ndarray  # int64 tick of each key-signature event

    @property
    def n_notes(self) -> int:
        return int(self.onset.size)

    @property
    def end(self) -> int:
        """Tick at which the last note ends (0 for an empty piece)."""
        return int((self.onset + self.duration).max()) if self.n_notes else 0

    def seconds(self, ticks: np.ndarray | int) -> np.ndarray:
        """Ticks to seconds through the tempo map (120 BPM before the first tempo event)."""
        times = np.asarray(ticks, dtype=np.float64)
        starts, mspq = _tempo_segments(self.tempos)
        index = np.searchsorted(starts, times, side="right") - 1
        seconds_at_start = np.concatenate(
            [[0.0], np.cumsum(np.diff(starts) * mspq[:-1] / 1e6 / self.tpq)]
        )
        return seconds_at_start[index] + (times - starts[index]) * mspq[index] / 1e6 / self.tpq


def _tempo_segments(tempos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment starts (ticks, first at 0) and the microseconds per quarter in each segment."""
    if tempos.size == 0 or tempos[0, 0] > 0:
        tempos = np.vstack([[[0, DEFAULT_MSPQ]], tempos.reshape(-1, 2)])
    # a later event at the same tick wins, as when a player reads the file in order
    _, last = np.unique(tempos[::-1, 0], return_index=True)
    kept = tempos[::-1][last]
    return kept[:, 0].astype(np.float64), kept[:, 1].astype(np.float64)


def load_piece(path: str | Path) -> PieceNotes:
    """Read a MIDI file with symusic; raises ValueError naming the file when it cannot."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file ({exc})") from None
    return piece_from_bytes(data, path)


def piece_from_bytes(data: bytes, name: str | Path = "<bytes>") -> PieceNotes:
    """Parse MIDI bytes with symusic; raises ValueError naming `name` when they are not MIDI."""
    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError / ValueError on bad bytes
        raise ValueError(
            f"{name}: not a readable MIDI file ({type(exc).__name__}: {exc}); "
            "check that the file is complete, or remove it from the set"
        ) from None
    return piece_from_score(score)


def piece_from_score(score: symusic.core.ScoreTick) -> PieceNotes:
    """Note arrays of a symusic Score in ticks (a Score in seconds or quarters is refused)."""
    if score.ttype != symusic.TimeUnit.tick:
        raise ValueError(f"expected a Score in ticks, got {score.ttype}; use score.to('tick')")
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("time", "duration", "pitch", "velocity")
    }
    tracks: list[np.ndarray] = []
    drums: list[bool] = []
    for index, track in enumerate(score.tracks):
        drums.append(bool(track.is_drum))
        notes = track.notes.numpy()
        order = np.argsort(notes["time"], kind="stable")  # file order within a tick
        for key in columns:
            columns[key].append(notes[key][order].astype(np.int64))
        tracks.append(np.full(order.size, index, dtype=np.int64))
    arrays = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in columns.items()}
    track = np.concatenate(tracks) if tracks else np.zeros(0, np.int64)
    drum_flags = np.array(drums, dtype=bool)
    ts = score.time_signatures.numpy()
    tempo = score.tempos.numpy()
    return PieceNotes(
        tpq=int(score.ticks_per_quarter),
        onset=arrays["time"],
        duration=np.maximum(arrays["duration"], 0),
        pitch=arrays["pitch"],
        velocity=arrays["velocity"],
        track=track,
        drum=drum_flags[track] if track.size else np.zeros(0, bool),
        track_is_drum=tuple(drums),
        time_signatures=_rows(ts["time"], ts["numerator"], ts["denominator"]),
        tempos=_rows(tempo["time"], tempo["mspq"]),
        key_signature_ticks=np.sort(score.key_signatures.numpy()["time"].astype(np.int64)),
    )


def _rows(*columns: np.ndarray) -> np.ndarray:
    table = np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1)
    return table[np.argsort(table[:, 0], kind="stable")]


def bar_quarters(piece: PieceNotes, low: float, high: float, fallback: float) -> float:
    """Bar length in quarter notes from the time signature at tick 0, when it lies within
    [low, high]; else `fallback`. A corpus declaring 1/4 everywhere gets `fallback` bars."""
    ts = piece.time_signatures
    if ts.size and ts[0, 0] == 0 and ts[0, 2] > 0:
        quarters = 4.0 * ts[0, 1] / ts[0, 2]
        if low <= quarters <= high:
            return quarters
    return fallback


def without_first_notes(piece: PieceNotes, count: int) -> PieceNotes:
    """The piece without its first `count` notes in onset order (all tracks; at one onset, in
    track order): a generated sample without the prompt it continues."""
    if count <= 0:
        return piece
    order = np.lexsort((piece.track, piece.onset))
    keep = np.ones(piece.n_notes, dtype=bool)
    keep[order[:count]] = False
    return replace(
        piece,
        onset=piece.onset[keep],
        duration=piece.duration[keep],
        pitch=piece.pitch[keep],
        velocity=piece.velocity[keep],
        track=piece.track[keep],
        drum=piece.drum[keep],
    )
