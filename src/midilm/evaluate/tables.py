"""Table-ready results: the test split analysed once into a cached reference file, each model's
samples compared with it, and plain rows for T5_music_metrics, T5b_distribution and DVC.

Flow (what the evaluate stage calls):
1. `write_reference(items, path, spec)` once: per-piece rows of the test split, to parquet;
2. per model: `analyze_files(sample_items, spec)` then `compare_to_reference(samples, path,
   spec, model)` (reads the cached file, never re-analyses the test split);
3. once: `data_row(train_items_or_frame, path, spec)` for the ceiling row of T5b.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from midilm.common.hashing import stable_json_hash
from midilm.common.io import atomic_path
from midilm.common.spec import as_dict
from midilm.evaluate import seed001
from midilm.evaluate.analysis import (
    SCALAR_COLUMNS,
    MetricsSpec,
    PieceItem,
    analyze_files,
    defined_mean,
)
from midilm.evaluate.distribution import (
    ReferenceStats,
    compare_sets,
    data_against_data,
    draw_pieces,
)
from midilm.evaluate.features import FEATURES

SPEC_KEY = b"midilm.metrics_spec_hash"
T5_METRICS = (*seed001.METRICS, "melodic_similarity")


def spec_hash(spec: MetricsSpec) -> str:
    """What the cached per-piece values depend on (not the worker count)."""
    plain = as_dict(spec)
    plain.pop("workers")
    plain.pop("distribution")  # set-level settings do not change per-piece rows
    return stable_json_hash(plain)


def write_reference(
    items: Sequence[PieceItem], path: str | Path, spec: MetricsSpec, description: str = "test split"
) -> pd.DataFrame:
    """Analyse the reference pieces (the test split) once and cache the rows in `path`
    (parquet, written atomically, tagged with the spec it was computed with)."""
    frame = analyze_files(items, spec, description)
    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(frame.drop(columns=["seconds"]), preserve_index=False)
    metadata = {**(table.schema.metadata or {}), SPEC_KEY: spec_hash(spec).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    return frame


def read_reference(path: str | Path, spec: MetricsSpec) -> pd.DataFrame:
    """The cached reference rows; refuses a file computed with other metric settings."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: reference metrics missing; run the evaluate stage's "
            "reference step (`write_reference`) first"
        )
    table = pq.read_table(path)
    found = (table.schema.metadata or {}).get(SPEC_KEY, b"").decode()
    if found != spec_hash(spec):
        raise ValueError(
            f"{path}: computed with other evaluate.metrics settings (hash {found or 'none'}, "
            f"now {spec_hash(spec)}); re-run the reference step"
        )
    return table.to_pandas()


def compare_to_reference(
    samples: pd.DataFrame, reference: pd.DataFrame | str | Path, spec: MetricsSpec, row: str
) -> pd.DataFrame:
    """T5b rows of one sample set (a model, or the data row) against the cached reference."""
    if not isinstance(reference, pd.DataFrame):
        reference = read_reference(reference, spec)
    ok_samples = samples[samples["error"].isna()]
    ok_reference = reference[reference["error"].isna()]
    stats = ReferenceStats.of(ok_reference, spec.distribution.fd_features)
    frame = compare_sets(ok_samples, ok_reference, spec.distribution, stats)
    frame.insert(0, "row", row)
    frame["pieces_generated"] = len(samples)
    frame["failed_generated"] = int(samples["error"].notna().sum())
    frame["pieces_reference"] = len(reference)
    return frame


def data_row(
    train: pd.DataFrame | Sequence[PieceItem],
    reference: pd.DataFrame | str | Path,
    spec: MetricsSpec,
    row: str = "data (train vs test)",
) -> pd.DataFrame:
    """The ceiling row of T5b: train pieces (as many as readable test pieces, drawn with the
    seed) against the test pieces. Give train rows, or train items: then only the drawn ones
    are analysed (a drawn file that fails to read leaves the row one piece short)."""
    if not isinstance(reference, pd.DataFrame):
        reference = read_reference(reference, spec)
    ok_reference = reference[reference["error"].isna()]
    if not isinstance(train, pd.DataFrame):
        items = sorted(train, key=lambda i: i.id)
        picked = draw_pieces(len(items), len(ok_reference), spec.distribution.seed)
        train = analyze_files([items[i] for i in picked], spec, "train sample")
    ok_train = train[train["error"].isna()]
    stats = ReferenceStats.of(ok_reference, spec.distribution.fd_features)
    frame = data_against_data(ok_train, ok_reference, spec.distribution, stats)
    frame.insert(0, "row", row)
    frame["pieces_generated"] = min(len(ok_train), len(ok_reference))
    frame["failed_generated"] = int(train["error"].notna().sum())
    frame["pieces_reference"] = len(reference)
    return frame


# --- seed 001's metrics (T5) -----------------------------------------------------------------


def sample_melodic_similarity(
    samples: pd.DataFrame,
    reference: pd.DataFrame,
    reference_ids: Sequence[str],
    prompt_notes: Sequence[int],
) -> pd.DataFrame:
    """Both variants of melodic similarity of each sample with its reference piece: `midilm`
    compares top lines after dropping the prompt's notes from both; `thesis`, as the author's
    code, compares the sample's continuation (prompt dropped) with the whole reference melody."""
    by_id = reference.set_index("id")
    out = []
    for (_, sample), ref_id, skip in zip(
        samples.iterrows(), reference_ids, prompt_notes, strict=True
    ):
        values = {"midilm_melodic_similarity": math.nan, "thesis_melodic_similarity": math.nan}
        if ref_id in by_id.index and _ok(sample) and _ok(by_id.loc[ref_id]):
            ref = by_id.loc[ref_id]
            values["midilm_melodic_similarity"] = seed001.melody_similarity(
                seed001.top_line(_events(sample), skip), seed001.top_line(_events(ref), skip)
            )
            values["thesis_melodic_similarity"] = seed001.melody_similarity(
                list(sample["thesis_continuation"]), list(ref["thesis_melody"])
            )
        out.append(values)
    return pd.DataFrame(out, index=samples.index)


def chance_melodic_similarity(reference: pd.DataFrame) -> pd.DataFrame:
    """Each reference piece against the next one by id (the last with the first): the
    similarity of two unrelated pieces of the corpus, both variants (nan with one piece)."""
    frame = reference.sort_values("id", kind="stable")
    rows = list(frame.itertuples(index=False))
    out = []
    for index, row in enumerate(rows):
        other = rows[(index + 1) % len(rows)]
        values = {"midilm_melodic_similarity": math.nan, "thesis_melodic_similarity": math.nan}
        if len(rows) > 1 and _ok(row._asdict()) and _ok(other._asdict()):
            values["midilm_melodic_similarity"] = seed001.melody_similarity(
                seed001.top_line(_events(row._asdict())), seed001.top_line(_events(other._asdict()))
            )
            values["thesis_melodic_similarity"] = seed001.melody_similarity(
                list(row.thesis_melody), list(other.thesis_melody)
            )
        out.append(values)
    return pd.DataFrame(out, index=frame.index).reindex(reference.index)


def _ok(row: Mapping[str, Any] | pd.Series) -> bool:
    return not isinstance(row["error"], str)


def _events(row: Mapping[str, Any] | pd.Series) -> np.ndarray:
    onsets, pitches = np.asarray(row["events_onset"]), np.asarray(row["events_pitch"])
    return (
        np.stack([onsets, pitches], axis=1).astype(np.int64)
        if onsets.size
        else np.zeros((0, 2), np.int64)
    )


def t5_rows(groups: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """T5_music_metrics: per group (a model's samples, the test split) and variant, the pieces,
    the failed ones, and the mean of each metric over the pieces where it is defined (with
    `<metric>_n` the count). Give frames with the melodic similarity columns added. Compare
    seed 001's Table 3-3 with the `thesis` rows only."""
    rows = []
    for name, frame in groups.items():
        ok = frame[frame["error"].isna()]
        for variant in seed001.VARIANTS:
            row: dict[str, Any] = {
                "row": name,
                "variant": variant,
                "pieces": len(frame),
                "failed": int(frame["error"].notna().sum()),
            }
            for metric in T5_METRICS:
                column = f"{variant}_{metric}"
                values = ok[column] if column in ok.columns else pd.Series(dtype=float)
                row[metric] = defined_mean(values)
                row[f"{metric}_n"] = int(values.notna().sum())
            rows.append(row)
    return pd.DataFrame(rows)


# --- DVC metrics and plots ---------------------------------------------------------------------


def summary_record(frame: pd.DataFrame, digits: int = 6) -> dict[str, Any]:
    """DVC metrics for one set: pieces, failures, and per metric the mean and the number of
    pieces where it is undefined (JSON-ready, nan as null, stable rounding)."""
    ok = frame[frame["error"].isna()]
    record: dict[str, Any] = {"pieces": len(frame), "failed": int(frame["error"].notna().sum())}
    for column in [
        c for c in SCALAR_COLUMNS if c in ok.columns and not c.startswith("pitch_class_histogram_")
    ]:
        mean = defined_mean(ok[column])
        record[column] = {
            "mean": None if math.isnan(mean) else round(mean, digits),
            "undefined": int(ok[column].isna().sum()),
        }
    return record


def per_piece_records(frame: pd.DataFrame, digits: int = 6) -> list[dict[str, Any]]:
    """One JSON-ready record per piece: id, error and every scalar metric (null if undefined)."""
    columns = [c for c in SCALAR_COLUMNS if c in frame.columns]
    records = []
    for row in frame.sort_values("id", kind="stable").itertuples(index=False):
        values = row._asdict()
        record = {"id": values["id"], "error": None if _ok(values) else values["error"]}
        for column in columns:
            value = float(values[column])
            record[column] = None if math.isnan(value) else round(value, digits)
        records.append(record)
    return records


def oa_plot_rows(t5b: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for a DVC bar plot of OA per feature and row (model or data): {row, feature, oa}."""
    features = t5b[t5b["feature"].isin(FEATURES) | (t5b["feature"] == "pitch_class_histogram")]
    return [
        {
            "row": r.row,
            "feature": r.feature,
            "oa": None if math.isnan(r.oa) else round(float(r.oa), 6),
        }
        for r in features.itertuples(index=False)
    ]


def dumps(records: Any) -> str:
    """Stable JSON text for DVC (sorted keys, trailing newline)."""
    return json.dumps(records, indent=2, sort_keys=True) + "\n"
