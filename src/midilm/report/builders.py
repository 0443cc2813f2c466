"""The thesis tables, one function each, registered by file stem. A new table (T3, T6, ...) is
one more `@table("T<n>_<name>")` function here; the report stage writes every registered table.

Tables named `*_speed` hold measurements (throughput, memory, wall time) and are the only ones
expected to differ between two identical runs; every other table is a pure function of the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.report.tables import Column, Table

TableBuilder = Callable[[dict[str, Any], Layout], Table]
TABLES: dict[str, TableBuilder] = {}

SPLITS = ("train", "valid", "test")
# seed 001, Table 3-3 (piano model): RC, consonance, dissonance, key changes
SEED_001_REPORTED = (0.34, 0.87, 0.13, 0.2)


def table(name: str) -> Callable[[TableBuilder], TableBuilder]:
    """Register a table builder under its output file stem (e.g. "T1_datasets")."""

    def register(builder: TableBuilder) -> TableBuilder:
        if name in TABLES:
            raise ValueError(f"table {name!r} registered twice")
        TABLES[name] = builder
        return builder

    return register


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing input of the report; run `dvc repro {stage}`.")
    return path


def _json(path: Path, stage: str) -> dict[str, Any]:
    return read_json(_need(path, stage))


@table("T1_datasets")
def datasets_table(params: dict[str, Any], layout: Layout) -> Table:
    """Per dataset and split: files, unique pieces, hours, notes, notes/s; quarantined files."""
    manifest = pd.read_parquet(_need(layout.split_manifest, "split"))
    quarantine = pd.read_parquet(_need(layout.quarantine_report, "datasets"))
    quarantined = quarantine.groupby("dataset").size().to_dict() if len(quarantine) else {}
    datasets = sorted(set(manifest["dataset"]) | set(quarantined))

    def row(label: str, split: str, frame: pd.DataFrame, dropped: int | None) -> list[Any]:
        seconds = float(frame["duration_s"].sum())
        notes = int(frame["n_notes"].sum())
        per_second = notes / seconds if seconds > 0 else None
        unique = int(frame["content_hash"].nunique())
        return [label, split, len(frame), unique, seconds / 3600, notes, per_second, dropped]

    rows = []
    for dataset in datasets:
        own = manifest[manifest["dataset"] == dataset]
        for split in SPLITS:
            rows.append(row(dataset, split, own[own["split"] == split], None))
        rows.append(row(dataset, "total", own, int(quarantined.get(dataset, 0))))
    rows.append(row("all", "total", manifest, len(quarantine)))
    return Table(
        "Datasets per split",
        [
            Column("dataset"),
            Column("split"),
            Column("files"),
            Column("unique pieces"),
            Column("hours", 2),
            Column("notes"),
            Column("notes/s", 2),
            Column("quarantined"),
        ],
        rows,
        notes=[
            "Unique pieces count distinct note-content hashes; equal content is always in "
            "one split. Quarantined files (not in any split) are counted per dataset."
        ],
    )


@table("T2_tokenizers")
def tokenizers_table(params: dict[str, Any], layout: Layout) -> Table:
    name = str(params["tokenizer"]["name"])
    stats = _json(layout.tokens_dir(name) / "stats.json", "tokenize")
    roundtrip = stats.get("roundtrip") or {}
    return Table(
        "Tokenizers",
        [
            Column("tokenizer"),
            Column("vocab size"),
            Column("sequences"),
            Column("tokens/note", 2),
            Column("tokens/s", 1),
            Column("seq len p50", 0),
            Column("seq len p95", 0),
            Column("round-trip F1", 3),
        ],
        [
            [
                stats["tokenizer"],
                stats["vocab_size"],
                stats["sequences"],
                stats["tokens_per_note"],
                stats["tokens_per_second"],
                stats["seq_len_p50"],
                stats["seq_len_p95"],
                roundtrip.get("f1"),
            ]
        ],
        notes=["Round-trip F1: notes of decode(encode(test piece)) against the piece's notes."],
    )


@table("T2_tokenizers_speed")
def tokenizers_speed_table(params: dict[str, Any], layout: Layout) -> Table:
    name = str(params["tokenizer"]["name"])
    stats = _json(layout.tokens_dir(name) / "stats.json", "tokenize")
    speed = stats.get("speed") or {}
    return Table(
        "Tokenizer encoding speed (measured)",
        [Column("tokenizer"), Column("files"), Column("encode files/s", 1)],
        [[stats["tokenizer"], speed.get("files"), speed.get("encode_files_per_s")]],
        notes=["Measured on the machine that ran the stage; differs between runs."],
    )


@table("T4_models")
def models_table(params: dict[str, Any], layout: Layout) -> Table:
    m = _json(layout.model_dir(str(params["model"]["name"])) / "metrics.json", "train")
    return Table(
        "Models",
        [
            Column("model"),
            Column("family"),
            Column("parameters"),
            Column("context"),
            Column("steps"),
            Column("tokens seen"),
            Column("train loss", 3),
            Column("val loss", 3),
            Column("val perplexity", 2),
            Column("val bits/note", 3),
        ],
        [
            [
                m["model"],
                m["family"],
                m["parameters"],
                m["context"],
                m["steps"],
                m["tokens_seen"],
                m["train_loss"],
                m["val_loss"],
                m["val_perplexity"],
                m["val_bits_per_note"],
            ]
        ],
    )


@table("T4_models_speed")
def models_speed_table(params: dict[str, Any], layout: Layout) -> Table:
    m = _json(layout.model_dir(str(params["model"]["name"])) / "metrics.json", "train")
    speed = m.get("speed") or {}
    return Table(
        "Training speed (measured)",
        [
            Column("model"),
            Column("device"),
            Column("train tokens/s", 0),
            Column("peak memory MB", 0),
            Column("wall s", 1),
        ],
        [
            [
                m["model"],
                speed.get("device"),
                speed.get("train_tokens_per_s"),
                speed.get("peak_memory_mb"),
                speed.get("wall_s"),
            ]
        ],
        notes=["Measured on the machine that ran the stage; differs between runs."],
    )


@table("T5_music_metrics")
def music_metrics_table(params: dict[str, Any], layout: Layout) -> Table:
    model = str(params["model"]["name"])
    data = _json(layout.metrics_dir(model) / "music_metrics.json", "evaluate")

    def row(label: str, group: dict[str, Any]) -> list[Any]:
        return [
            label,
            group.get("pieces"),
            group.get("rhythm_consistency"),
            group.get("consonance"),
            group.get("dissonance"),
            group.get("key_changes"),
            group.get("melodic_similarity"),
        ]

    rc, consonance, dissonance, keys = SEED_001_REPORTED
    return Table(
        "Music metrics of seed 001 (means over pieces)",
        [
            Column("pieces of"),
            Column("pieces"),
            Column("rhythm consistency", 3),
            Column("consonance", 3),
            Column("dissonance", 3),
            Column("key changes", 2),
            Column("melodic similarity", 3),
        ],
        [
            row(f"generated by {data.get('model', model)}", data["generated"]),
            row("test split (reference)", data["test"]),
            ["seed 001 Table 3-3 (reported)", None, rc, consonance, dissonance, keys, None],
        ],
        notes=[
            "Generated: melodic similarity against the test piece that gave the prompt, "
            "prompt notes skipped. Test split: each piece against the next test piece by id "
            "(a chance baseline).",
            "Key changes: estimated Krumhansl-Schmuckler key per window of "
            f"{params['evaluate']['key_window_measures']} measures; pieces cut at "
            f"{params['evaluate']['max_quarter_length']} quarter notes.",
            "Seed 001 values are as reported for its piano model on its own data; "
            "not measured here.",
        ],
    )
