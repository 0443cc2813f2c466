"""The note-content hash: equal music, equal hash, whatever the file bytes or resolution."""

from __future__ import annotations

import hashlib

import numpy as np
from symusic.core import ScoreTick

HASH_TPQ = 480  # every score is resampled to this ticks-per-quarter before hashing


def note_content_hash(score: ScoreTick, transpose_to_lowest: bool = False) -> str:
    """sha256 hex of the sorted (is_drum, pitch, onset, duration) rows of all notes at 480 tpq.

    Velocity, program, channel, tempo and track order are left out on purpose: they do not make
    two pieces different music for the split rule. Onsets and durations are in ticks at
    `HASH_TPQ`, so the same notes written at 96 or 10080 ticks per quarter hash the same.
    With `transpose_to_lowest`, pitched notes are shifted so the lowest is 0 (drums keep theirs),
    so a piece and its transpositions hash the same.
    """
    resampled = score.resample(HASH_TPQ, min_dur=0)
    rows: list[np.ndarray] = []
    for track in resampled.tracks:
        notes = track.notes.numpy()
        if len(notes["pitch"]) == 0:
            continue
        drum = np.full(len(notes["pitch"]), int(track.is_drum), dtype="<i8")
        rows.append(
            np.stack(
                [
                    drum,
                    notes["pitch"].astype("<i8"),
                    notes["time"].astype("<i8"),
                    notes["duration"].astype("<i8"),
                ],
                axis=1,
            )
        )
    table = np.concatenate(rows) if rows else np.zeros((0, 4), dtype="<i8")
    pitched = table[:, 0] == 0
    if transpose_to_lowest and pitched.any():
        table[pitched, 1] -= table[pitched, 1].min()
    table = table[np.lexsort(table.T[::-1])]  # sort by is_drum, then pitch, onset, duration
    return hashlib.sha256(np.ascontiguousarray(table, dtype="<i8").tobytes()).hexdigest()


def transposition_hash(score: ScoreTick) -> str:
    """The note-content hash of the piece shifted so its lowest pitched note is 0: the
    transposition-invariant dedup key (`dataset.dedup.mode: transposition`)."""
    return note_content_hash(score, transpose_to_lowest=True)
