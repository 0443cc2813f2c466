"""A hand-made ratings file (SYNTHETIC: no listening panel produced it) with known statistics.

Raters r1..r5 pass the attention check; r6 rates the anchor 4 and is excluded.
real overall: 4 5 4 5 3          -> MOS 4.2, sd sqrt(0.7)
gpt overall:  3 3 1 1 (1, 2)     -> MOS 11/6; per-rater differences to real -1 -2 -3 -4 -1.5
              (all negative, all distinct: exact two-sided Wilcoxon p = 2/2**5 = 0.0625)
mamba overall: r1 4, r2 5        -> equal to their real ratings: no difference, p blank
anchor overall: 1 for r1..r5
"""

from __future__ import annotations

HEADER = (
    "test,participant,position,stimulus,condition,item,overall,clarity,quality,match,comment,"
    "played_seconds,submitted_at"
)
# participant, stimulus, condition, overall, clarity, quality, match, comment
ROWS = [
    ("r1", "sA", "real", 4, 4, 5, 4, ""),
    ("r2", "sA", "real", 5, 5, 5, 4, 'lovely, "warm" tone'),
    ("r3", "sB", "real", 4, 3, 4, 4, ""),
    ("r4", "sB", "real", 5, 4, 4, 5, ""),
    ("r5", "sC", "real", 3, 4, 3, 3, "a bit flat"),
    ("r1", "sG1", "gpt", 3, 3, 3, 2, ""),
    ("r2", "sG1", "gpt", 3, 3, 2, 2, ""),
    ("r3", "sG2", "gpt", 1, 2, 1, 1, "random notes,\nno tune"),
    ("r4", "sG2", "gpt", 1, 2, 1, 1, ""),
    ("r5", "sG1", "gpt", 1, 2, 2, 1, ""),
    ("r5", "sG2", "gpt", 2, 2, 2, 2, ""),
    ("r1", "sM1", "mamba", 4, 4, 4, 4, ""),
    ("r2", "sM1", "mamba", 5, 4, 4, 4, ""),
    ("r1", "sX", "anchor", 1, 1, 1, 1, ""),
    ("r2", "sX", "anchor", 1, 1, 1, 1, ""),
    ("r3", "sX", "anchor", 1, 2, 1, 1, ""),
    ("r4", "sX", "anchor", 1, 1, 1, 1, ""),
    ("r5", "sX", "anchor", 1, 1, 1, 1, ""),
    ("r6", "sA", "real", 1, 1, 1, 1, ""),
    ("r6", "sG1", "gpt", 5, 5, 5, 5, ""),
    ("r6", "sX", "anchor", 4, 4, 4, 4, ""),
]


def synthetic_ratings_csv(reason: str = "hand-made ratings for the tests") -> str:
    import csv
    import io

    buffer = io.StringIO()
    buffer.write(f"# synthetic: {reason}\n")
    buffer.write(HEADER + "\n")
    writer = csv.writer(buffer, lineterminator="\n")
    positions: dict[str, int] = {}
    for participant, stimulus, condition, *answers, comment in ROWS:
        position = positions.get(participant, 0)
        positions[participant] = position + 1
        writer.writerow(
            [
                "synthetic",
                participant,
                position,
                stimulus,
                condition,
                stimulus,
                *answers,
                comment,
                "2.000",
                "2026-01-01T00:00:00+00:00",
            ]
        )
    return buffer.getvalue()
