"""T8_listening: the listening test's results, from the ratings file `midilm listen export` wrote
and someone committed (reports/listening/ratings.csv). No file: the table says so. Ratings are
never invented; a file marked `# synthetic: ...` (tests) is labelled synthetic in the title.

Statistics, per condition (real pieces, each model, the degraded anchor):
- MOS = mean overall rating, 95% CI = t-interval over the ratings (mean ± t(0.975, n-1) sd/√n,
  the usual MOS interval, ITU-T P.1401).
- Paired comparison against real pieces: each rater's mean overall rating of the condition
  against the same rater's mean for real pieces, two-sided Wilcoxon signed-rank test. Paired per
  rater because every participant hears every condition (the plan guarantees it) and raters
  differ in how harsh they are; a rank test because ratings are ordinal.
- Raters failing the attention check (`midilm.listen.protocol.ANCHOR_MAX_RATING`) are excluded.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from midilm.common.paths import Layout
from midilm.listen.protocol import (
    ANCHOR,
    ANCHOR_MAX_RATING,
    QUESTION_KEYS,
    REAL,
    SCALE_MAX,
    SCALE_MIN,
)
from midilm.report.tables import Column, Table
from midilm.specs import model_keys

REQUIRED_COLUMNS = ("participant", "stimulus", "condition", *QUESTION_KEYS)
SYNTHETIC_MARK = "# synthetic:"


@dataclass(frozen=True)
class Ratings:
    """A ratings file: one row per rating; `synthetic` is the marker line's reason, if any."""

    path: Path
    frame: pd.DataFrame
    synthetic: str | None


def read_ratings(path: Path) -> Ratings:
    """Read and check an exported ratings CSV; a bad cell raises naming the file, line and fix.

    Leading lines starting with `#` are metadata; `# synthetic: <why>` marks made-up ratings.
    """
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    synthetic, skip = None, 0
    while skip < len(lines) and lines[skip].startswith("#"):
        if lines[skip].lower().startswith(SYNTHETIC_MARK):
            synthetic = lines[skip][len(SYNTHETIC_MARK) :].strip() or "synthetic"
        skip += 1
    reader = csv.DictReader(io.StringIO("".join(lines[skip:])))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected the file `midilm listen export` "
            f"writes (columns {list(REQUIRED_COLUMNS)} at least)."
        )
    records = []
    for number, row in enumerate(reader, start=skip + 2):
        record: dict[str, Any] = {c: (row.get(c) or "").strip() for c in REQUIRED_COLUMNS}
        for key in ("participant", "stimulus", "condition"):
            if not record[key]:
                raise ValueError(f"{path}, line {number}: empty `{key}`; fix or remove the row.")
        for key in QUESTION_KEYS:
            value = record[key]
            if not value.isdigit() or not SCALE_MIN <= int(value) <= SCALE_MAX:
                raise ValueError(
                    f"{path}, line {number}: `{key}` = {value!r} is not a rating "
                    f"{SCALE_MIN}..{SCALE_MAX}; fix or remove the row."
                )
            record[key] = int(value)
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=list(REQUIRED_COLUMNS))
    duplicated = frame.duplicated(["participant", "stimulus"])
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise ValueError(
            f"{path}: participant {first['participant']!r} rated stimulus "
            f"{first['stimulus']!r} twice; keep one row per (participant, stimulus)."
        )
    return Ratings(path, frame, synthetic)


def attention_failures(frame: pd.DataFrame) -> list[str]:
    """Participants who rated an anchor above ANCHOR_MAX_RATING or whose mean overall rating of
    real pieces is not above their anchor mean (raters who heard no anchor pass)."""
    failed = []
    for participant, group in frame.groupby("participant", sort=True):
        anchors = group.loc[group["condition"] == ANCHOR, "overall"]
        reals = group.loc[group["condition"] == REAL, "overall"]
        if anchors.empty:
            continue
        if anchors.max() > ANCHOR_MAX_RATING or (
            not reals.empty and reals.mean() <= anchors.mean()
        ):
            failed.append(str(participant))
    return failed


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the t confidence interval); half-width nan for fewer than 2 values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan
    sem = float(data.std(ddof=1)) / math.sqrt(data.size)
    return mean, float(stats.t.ppf(0.5 + level / 2, data.size - 1)) * sem


def paired_against_real(frame: pd.DataFrame, condition: str) -> tuple[float, int]:
    """(two-sided Wilcoxon signed-rank p, pairs) of per-rater mean overall ratings of
    `condition` against real pieces; p nan when no rater's two means differ."""
    means = frame.groupby(["participant", "condition"])["overall"].mean().unstack()
    if condition not in means or REAL not in means:
        return math.nan, 0
    paired = means[[condition, REAL]].dropna()
    differences = paired[condition] - paired[REAL]
    if not (differences != 0).any():
        return math.nan, len(paired)
    result = stats.wilcoxon(paired[condition], paired[REAL], zero_method="wilcox")
    return float(result.pvalue), len(paired)


def listening_table(ratings: Path | None, models: Sequence[str]) -> Table:
    """T8 from the ratings file at `ratings` (None or absent: a table saying there are none)."""
    columns = [
        Column("stimuli of"),
        Column("stimuli"),
        Column("raters"),
        Column("ratings"),
        Column("MOS", 2),
        Column("95% CI ±", 2),
        Column("clarity", 2),
        Column("quality", 2),
        Column("match", 2),
        Column("p vs real (Wilcoxon)", 3),
        Column("rater pairs"),
        Column("ratings from"),
    ]
    method = [
        "Ratings 1-5 (1 bad ... 5 excellent, ITU-T P.800 labels). MOS: mean overall rating; "
        "95% CI: t-interval over the ratings. clarity, quality, match: mean ratings of seed "
        "001's questions (clarity of the sound, quality of the music, match to the input = "
        "how well the clip follows on from its opening).",
        "p vs real: two-sided Wilcoxon signed-rank test of each rater's mean overall rating "
        "of the condition against the same rater's mean for real pieces (paired per rater; "
        "zero differences dropped; blank where no rater's means differ).",
    ]
    if ratings is None or not ratings.is_file():
        where = ratings.as_posix() if ratings is not None else "reports/listening/ratings.csv"
        return Table(
            "Listening test: no ratings yet",
            columns,
            [[label, 0, 0, 0, *[None] * 7, "none"] for label in _labels(models, [])],
            notes=[
                f"No ratings file at {where}: no listening test has been run and committed, "
                "and no ratings are invented. Run `midilm listen plan`, `midilm listen serve` "
                "and `midilm listen export` (docs/listening.md), then commit the CSV.",
                *method,
            ],
        )
    data = read_ratings(ratings)
    frame = data.frame
    failed = attention_failures(frame)
    kept = frame[~frame["participant"].isin(failed)]
    conditions = [c for c in _conditions(models, frame)]
    rows = []
    for condition in conditions:
        group = kept[kept["condition"] == condition]
        mos, half = mean_ci(group["overall"].to_numpy())
        p_value, pairs = (
            (math.nan, None) if condition == REAL else paired_against_real(kept, condition)
        )
        rows.append(
            [
                _label(condition),
                group["stimulus"].nunique(),
                group["participant"].nunique(),
                len(group),
                mos,
                half,
                *(group[q].mean() if len(group) else math.nan for q in QUESTION_KEYS[1:]),
                p_value,
                pairs,
                "SYNTHETIC" if data.synthetic is not None else "listening panel",
            ]
        )
    raters = frame["participant"].nunique()
    notes = [
        f"Ratings: {ratings.name}, {len(frame)} ratings by {raters} raters; "
        f"{len(failed)} of {raters} raters excluded by the attention check (an anchor rated "
        f"above {ANCHOR_MAX_RATING}, or real pieces not rated above the anchors)"
        + (f": {', '.join(failed)}." if failed else "."),
        *method,
    ]
    smallest = min((r[-2] for r in rows if r[-2]), default=None)
    if smallest is not None and smallest < 6:
        notes.append(
            f"With {smallest} rater pairs the exact two-sided p cannot fall below "
            f"{2 / 2**smallest:.3f}: too few raters to show a difference at 0.05."
        )
    title = "Listening test"
    if data.synthetic is not None:
        title += " (SYNTHETIC ratings, not a listening panel)"
        notes.insert(0, f"SYNTHETIC: {data.synthetic}")
    return Table(title, columns, rows, notes=notes)


def t8_listening(params: Mapping[str, Any], layout: Layout) -> Table:
    """T8 from the committed ratings file: models in params order."""
    return listening_table(layout.ratings_file, model_keys(params))


def _conditions(models: Sequence[str], frame: pd.DataFrame) -> list[str]:
    present = set(frame["condition"])
    extra = sorted(present - set(models) - {REAL, ANCHOR})
    return [REAL, *models, *extra, ANCHOR]


def _labels(models: Sequence[str], extra: Sequence[str]) -> list[str]:
    return [_label(c) for c in (REAL, *models, *extra, ANCHOR)]


def _label(condition: str) -> str:
    if condition == REAL:
        return "real pieces (hidden reference)"
    if condition == ANCHOR:
        return "degraded anchor (attention check)"
    return f"generated by {condition}"
