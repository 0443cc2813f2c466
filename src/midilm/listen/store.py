"""The ratings database (SQLite, `ratings.sqlite` in the test folder).

One row per rating, written in one transaction with every check made inside it (BEGIN
IMMEDIATE), so a refused request changes nothing and two racing requests cannot both pass.
WAL journal with synchronous=FULL: a rating is on disk before its request is answered, so a
killed or restarted server loses nothing already submitted, and a participant resumes where
they stopped (their first unrated position).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from midilm.listen.protocol import QUESTION_KEYS, SCALE_MAX, SCALE_MIN

DB_FILE = "ratings.sqlite"
PLAY_TOLERANCE = 0.97  # the share of a clip a participant must have played (decoders round)

QUESTION_COLUMNS = ", ".join(
    f"{q} INTEGER NOT NULL CHECK ({q} BETWEEN {SCALE_MIN} AND {SCALE_MAX})" for q in QUESTION_KEYS
)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS plays (
    participant TEXT NOT NULL,
    stimulus TEXT NOT NULL,
    played_seconds REAL NOT NULL,
    completed_at TEXT NOT NULL,
    PRIMARY KEY (participant, stimulus)
);
CREATE TABLE IF NOT EXISTS ratings (
    rating_id INTEGER PRIMARY KEY,
    participant TEXT NOT NULL,
    position INTEGER NOT NULL,
    stimulus TEXT NOT NULL,
    {QUESTION_COLUMNS},
    comment TEXT NOT NULL,
    played_seconds REAL NOT NULL,
    submission TEXT NOT NULL UNIQUE,
    submitted_at TEXT NOT NULL,
    UNIQUE (participant, stimulus),
    UNIQUE (participant, position)
);
"""


class Refused(Exception):
    """A request the store will not record; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class RatingInput:
    participant: str
    position: int
    stimulus: str
    answers: Mapping[str, int]
    comment: str
    submission: str


class RatingStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        with self.connect() as db:
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def record_play(
        self, participant: str, stimulus: str, played_seconds: float, seconds: float
    ) -> None:
        """Note that `participant` played `stimulus` through (at least PLAY_TOLERANCE of it)."""
        if played_seconds < PLAY_TOLERANCE * seconds:
            raise Refused(
                409,
                "incomplete_playback",
                f"played {played_seconds:.2f} s of a {seconds:.2f} s clip: listen to the whole "
                "clip before rating it",
            )
        with self.transaction() as db:
            db.execute(
                "INSERT INTO plays VALUES (?, ?, ?, ?) ON CONFLICT (participant, stimulus) DO "
                "UPDATE SET played_seconds = max(played_seconds, excluded.played_seconds)",
                (participant, stimulus, played_seconds, _now()),
            )

    def add_rating(self, rating: RatingInput) -> None:
        """Record `rating` if it answers the participant's next clip (`rating.position` is their
        number of ratings so far; the caller checks the clip sits there), played in full, and
        was not submitted before."""
        with self.transaction() as db:
            seen = db.execute(
                "SELECT participant, stimulus FROM ratings WHERE submission = ?",
                (rating.submission,),
            ).fetchone()
            if seen is not None:
                raise Refused(
                    409,
                    "replayed",
                    f"submission {rating.submission} was already recorded (a replayed "
                    "request); nothing changed",
                )
            if db.execute(
                "SELECT 1 FROM ratings WHERE participant = ? AND stimulus = ?",
                (rating.participant, rating.stimulus),
            ).fetchone():
                raise Refused(
                    409,
                    "duplicate",
                    f"participant {rating.participant} already rated this clip; a clip is "
                    "rated once",
                )
            done = self._count(db, rating.participant)
            if rating.position != done:
                raise Refused(
                    409,
                    "out_of_order",
                    f"clip {rating.position + 1} is not the next one to rate (next: clip "
                    f"{done + 1}); reload the page to continue",
                )
            played = db.execute(
                "SELECT played_seconds FROM plays WHERE participant = ? AND stimulus = ?",
                (rating.participant, rating.stimulus),
            ).fetchone()
            if played is None:
                raise Refused(409, "not_played", "listen to the whole clip before rating it")
            db.execute(
                f"INSERT INTO ratings (participant, position, stimulus, {', '.join(QUESTION_KEYS)},"
                " comment, played_seconds, submission, submitted_at) VALUES "
                f"(?, ?, ?, {', '.join('?' for _ in QUESTION_KEYS)}, ?, ?, ?, ?)",
                (
                    rating.participant,
                    rating.position,
                    rating.stimulus,
                    *(int(rating.answers[q]) for q in QUESTION_KEYS),
                    rating.comment,
                    float(played[0]),
                    rating.submission,
                    _now(),
                ),
            )

    def rated_count(self, participant: str) -> int:
        with self.connect() as db:
            return self._count(db, participant)

    def ratings(self) -> list[dict[str, Any]]:
        """Every rating, by participant then position."""
        with self.connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM ratings ORDER BY participant, position").fetchall()
        return [dict(row) for row in rows]

    @staticmethod
    def _count(db: sqlite3.Connection, participant: str) -> int:
        return int(
            db.execute(
                "SELECT count(*) FROM ratings WHERE participant = ?", (participant,)
            ).fetchone()[0]
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
