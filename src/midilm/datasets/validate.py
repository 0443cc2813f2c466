"""Validation of one MIDI file: load with symusic, apply the dataset filters, say why it fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from symusic import Score
from symusic.core import ScoreTick

# Quarantine reason codes (docs/architecture.md, "Quarantine report").
REASONS = (
    "parse_error",
    "export_error",
    "empty",
    "too_few_notes",
    "too_long",
    "too_many_tracks",
    "timeout",
    "excluded",  # left out by a dataset option (e.g. DadaGP's artist list), not a bad file
)


@dataclass(frozen=True)
class Filters:
    """`params.dataset.filters`: the bounds a kept piece must satisfy."""

    min_notes: int = 8
    max_duration_s: float = 1800.0
    max_tracks: int = 64

    @classmethod
    def from_params(cls, filters: Mapping[str, Any]) -> Filters:
        return cls(
            min_notes=int(filters.get("min_notes", cls.min_notes)),
            max_duration_s=float(filters.get("max_duration_s", cls.max_duration_s)),
            max_tracks=int(filters.get("max_tracks", cls.max_tracks)),
        )


@dataclass(frozen=True)
class ScoreStats:
    duration_s: float
    n_notes: int
    n_tracks: int


class Rejected(Exception):
    """A file that fails validation; `reason` is its quarantine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def load_midi(data: bytes) -> ScoreTick:
    """Parse MIDI bytes with symusic; unreadable bytes are `parse_error`."""
    try:
        return Score.from_midi(data)
    except Exception as error:
        raise Rejected("parse_error", f"{type(error).__name__}: {error}") from error


def notes_end_s(score: ScoreTick) -> float:
    """When the last note ends, in seconds (tempo map applied). Not `Score.end()`, which also
    counts controller and meta events: a Groove file with a stray event 276 s after its last
    note would otherwise be 3.6 times too long."""
    seconds = score.to("second")
    ends = [
        float((n["time"] + n["duration"]).max())
        for n in (t.notes.numpy() for t in seconds.tracks)
        if len(n["time"])
    ]
    return max(ends, default=0.0)


def score_stats(score: ScoreTick) -> ScoreStats:
    """Length in seconds (end of the last note), notes, and tracks that hold notes."""
    return ScoreStats(
        duration_s=notes_end_s(score),
        n_notes=int(score.note_num()),
        n_tracks=sum(1 for track in score.tracks if track.note_num() > 0),
    )


def check_filters(stats: ScoreStats, filters: Filters) -> None:
    """Raise `Rejected` with the first filter the piece fails (empty, notes, tracks, length)."""
    if stats.n_notes == 0:
        raise Rejected("empty", "no notes")
    if stats.n_notes < filters.min_notes:
        raise Rejected(
            "too_few_notes",
            f"{stats.n_notes} notes < dataset.filters.min_notes={filters.min_notes}",
        )
    if stats.n_tracks > filters.max_tracks:
        raise Rejected(
            "too_many_tracks",
            f"{stats.n_tracks} tracks > dataset.filters.max_tracks={filters.max_tracks}",
        )
    if stats.duration_s > filters.max_duration_s:
        raise Rejected(
            "too_long",
            f"{stats.duration_s:.1f} s > dataset.filters.max_duration_s={filters.max_duration_s}",
        )
