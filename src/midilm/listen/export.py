"""Export a test's ratings as CSV (one row per rating, unblinded: condition and item added)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from midilm.common.io import write_text_atomic
from midilm.listen.protocol import RATINGS_COLUMNS
from midilm.listen.store import DB_FILE, RatingStore
from midilm.listen.testdir import load_test


def ratings_csv(test_dir: Path) -> tuple[str, int]:
    """(CSV text with RATINGS_COLUMNS, number of ratings) of the test in `test_dir`."""
    test_dir = Path(test_dir)
    test = load_test(test_dir)
    if not (test_dir / DB_FILE).is_file():
        raise FileNotFoundError(
            f"{test_dir / DB_FILE}: no ratings yet; run `midilm listen serve --dir {test_dir}`."
        )
    rows = RatingStore(test_dir / DB_FILE).ratings()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RATINGS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        stimulus = test.stimuli[row["stimulus"]]
        writer.writerow(
            {
                **{k: row[k] for k in RATINGS_COLUMNS if k in row},
                "test": test.name,
                "condition": stimulus.condition,
                "item": stimulus.item,
                "played_seconds": f"{row['played_seconds']:.3f}",
            }
        )
    return buffer.getvalue(), len(rows)


def export_ratings(test_dir: Path, out: Path) -> int:
    """Write the ratings of the test in `test_dir` to `out` atomically; returns the row count."""
    text, count = ratings_csv(test_dir)
    write_text_atomic(out, text)
    return count
