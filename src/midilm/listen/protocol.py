"""The listening test's fixed vocabulary: questions, scale, conditions, the attention-check rule
and the columns of the exported ratings file (read by `midilm.report.listening` for T8)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    key: str
    label: str
    prompt: str


# Overall quality is the MOS question (seed 000); the other three are seed 001's survey
# (Table 4-1: clarity of the generated sound, quality of the generated music, match to the inputs).
QUESTIONS: tuple[Question, ...] = (
    Question("overall", "Overall", "Overall, how good is this music?"),
    Question(
        "clarity",
        "Clarity",
        "How clear is the sound: can you hear each part, none far too loud or too quiet?",
    ),
    Question(
        "quality",
        "Musical quality",
        "How good is the music itself: does it have depth and feeling, or does it sound flat?",
    ),
    Question(
        "match",
        "Match to the input",
        "Each clip starts with a given opening (its input). How well does the rest follow on "
        "from that opening?",
    ),
)
QUESTION_KEYS: tuple[str, ...] = tuple(q.key for q in QUESTIONS)
# ITU-T P.800 absolute category rating labels
SCALE: tuple[tuple[int, str], ...] = (
    (1, "Bad"),
    (2, "Poor"),
    (3, "Fair"),
    (4, "Good"),
    (5, "Excellent"),
)
SCALE_MIN, SCALE_MAX = 1, 5
MAX_COMMENT_CHARS = 2000

REAL = "real"  # a real test piece (the hidden reference)
ANCHOR = "anchor"  # a real piece deliberately degraded (must rate low)
# Attention check: a rater passes when every anchor's overall rating is at most this and their
# mean overall rating of real pieces is above their mean for anchors.
ANCHOR_MAX_RATING = 2

RATINGS_COLUMNS: tuple[str, ...] = (
    "test",
    "participant",
    "position",
    "stimulus",
    "condition",
    "item",
    *QUESTION_KEYS,
    "comment",
    "played_seconds",
    "submitted_at",
)
