"""The thesis tables, one function each, registered by file stem. A new table (T3, T6, ...) is
one more `@table("T<n>_<name>")` function here; the report stage writes every registered table.

Tables named `*_speed` and T7_complexity hold measurements (throughput, memory, wall time) and are
the only ones expected to differ between two identical runs (MEASURED_TABLES); every other table
is a pure function of the inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from midilm.common.paths import Layout
from midilm.report.inputs import need, read_input
from midilm.report.listening import t8_listening
from midilm.report.seqgan import seqgan_speed_from_benchmark, seqgan_table
from midilm.report.tables import Column, Table
from midilm.specs import (
    ModelSpec,
    main_model,
    model_keys,
    model_spec,
    sample_set_keys,
    samples_stage,
)
from midilm.specs.tokenizer import tokenizer_keys

TableBuilder = Callable[[dict[str, Any], Layout], Table]
TABLES: dict[str, TableBuilder] = {}
MEASURED_SUFFIXES = ("_speed", "_complexity")


def is_measured(name: str) -> bool:
    """Tables of wall-clock measurements: differ between two runs with the same inputs."""
    return name.endswith(MEASURED_SUFFIXES)


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


def _dedup_rows(layout: Layout, manifest: pd.DataFrame) -> pd.DataFrame:
    """Duplicates dropped before splitting, each in its own official split, else in its kept
    twin's split: they are files of their dataset, not unique pieces."""
    path = layout.raw_dir / "dedup_report.parquet"
    if not path.exists():
        return manifest.iloc[0:0]
    dropped = pd.read_parquet(path)
    twin = manifest.set_index("id")["split"]
    dropped["split"] = dropped["official_split"].where(
        dropped["official_split"].notna(), dropped["duplicate_of"].map(twin)
    )
    return dropped


def _seconds(pieces: pd.DataFrame) -> float:
    """Total duration: the dataset's official duration where it gives one (Groove's info.csv),
    else the sounding time (to the end of the last note)."""
    seconds = pieces["duration_s"]
    if "official_duration_s" in pieces:
        seconds = pieces["official_duration_s"].astype("float64").fillna(seconds)
    return float(seconds.sum())


def _main_model(params: dict[str, Any]) -> ModelSpec:
    """The spec of params `main_model`: its tokenizer is the one T1 and T3 count."""
    return model_spec(params, main_model(params))


def _chunk_counts(params: dict[str, Any], layout: Layout) -> dict[tuple[str, str], int] | None:
    """Training windows per (dataset, split): sum of ceil(n_tokens / context) over the main
    model's tokenizer's sequences (augmented copies included), `context` the main model's;
    None before tokenizing."""
    main = _main_model(params)
    tokenizer, context = main.tokenizer, main.context
    path = layout.tokens_dir(tokenizer) / "sequences.parquet"
    if not path.exists():
        return None
    seqs = pd.read_parquet(path, columns=["dataset", "split", "n_tokens"])
    seqs["chunks"] = -(-seqs["n_tokens"] // context)
    return {
        (str(d), str(s)): int(n)
        for (d, s), n in seqs.groupby(["dataset", "split"])["chunks"].sum().items()
    }


@table("T1_datasets")
def datasets_table(params: dict[str, Any], layout: Layout) -> Table:
    """Per dataset and split: files, unique pieces, sequences after chunking, hours, notes,
    notes/s; quarantined files."""
    manifest = pd.read_parquet(need(layout.split_manifest, "split"))
    quarantine = pd.read_parquet(need(layout.quarantine_report, "datasets"))
    if "reason" in quarantine:  # pieces left out by a dataset option are not bad files
        quarantine = quarantine[quarantine["reason"] != "excluded"]
    quarantined = quarantine.groupby("dataset").size().to_dict() if len(quarantine) else {}
    dropped = _dedup_rows(layout, manifest)
    chunks = _chunk_counts(params, layout)
    datasets = sorted(set(manifest["dataset"]) | set(quarantined))

    def row(
        label: str, split: str, own: pd.DataFrame, dups: pd.DataFrame, bad: int | None
    ) -> list[Any]:
        seconds = _seconds(own) + _seconds(dups)
        notes = int(own["n_notes"].sum() + dups["n_notes"].sum())
        per_second = notes / seconds if seconds > 0 else None
        unique = int(own["content_hash"].nunique())
        sequences = None
        if chunks is not None:
            names = [label] if label != "all" else datasets
            splits = [split] if split != "total" else list(SPLITS)
            sequences = sum(chunks.get((d, s), 0) for d in names for s in splits)
        return [
            label,
            split,
            len(own) + len(dups),
            unique,
            sequences,
            seconds / 3600,
            notes,
            per_second,
            bad,
        ]

    rows = []
    for dataset in datasets:
        own = manifest[manifest["dataset"] == dataset]
        dups = dropped[dropped["dataset"] == dataset]
        for split in SPLITS:
            rows.append(
                row(dataset, split, own[own["split"] == split], dups[dups["split"] == split], None)
            )
        rows.append(row(dataset, "total", own, dups, int(quarantined.get(dataset, 0))))
    rows.append(row("all", "total", manifest, dropped, len(quarantine)))
    return Table(
        "Datasets per split",
        [
            Column("dataset"),
            Column("split"),
            Column("files"),
            Column("unique pieces"),
            Column("sequences"),
            Column("hours", 2),
            Column("notes"),
            Column("notes/s", 2),
            Column("quarantined"),
        ],
        rows,
        notes=[
            "Files: valid files, duplicates included (in their official split, else their kept "
            "twin's); unique pieces: distinct note-content hashes kept after deduplication; "
            "equal content is always in one split. Sequences: training windows of "
            f"{_main_model(params).context} tokens of the main model's tokenizer "
            f"({_main_model(params).tokenizer}; augmented copies included; blank before "
            "tokenizing). Quarantined files "
            "(not in any split) are counted per dataset.",
            "Hours: the dataset's official durations where it publishes them (Groove, E-GMD: "
            "the CSV's `duration`), else sounding time to the end of the last note.",
        ],
    )


def _token_stats(params: dict[str, Any], layout: Layout) -> list[Any]:
    """`data/tokens/<tok>/stats.json` of every tokenizer (deterministic)."""
    return [
        read_input(layout.tokens_dir(n) / "stats.json", f"tokenize@{n}")
        for n in tokenizer_keys(params)
    ]


@table("T2_tokenizers")
def tokenizers_table(params: dict[str, Any], layout: Layout) -> Table:
    """One row per tokenizer: vocabulary, tokens per note and per second, lengths, and round-trip
    F1 against the piece after the encoding's own documented transformations (like with like),
    what those transformations change, and the F1 on the tokenizer's own grid."""

    def f1(stats: dict[str, Any], key: str) -> Any:
        return (stats.get(key) or {}).get("f1")

    all_stats = _token_stats(params, layout)
    rows = [
        [
            stats["tokenizer"],
            stats["vocab_size"],
            stats["sequences"],
            stats["tokens_per_note"],
            stats["tokens_per_second"],
            stats["seq_len_p50"],
            stats["seq_len_p95"],
            f1(stats, "roundtrip"),
            f1(stats, "transform"),
            f1(stats, "roundtrip_raw"),
            f1(stats, "roundtrip_on_grid"),
        ]
        for stats in all_stats
    ]
    sampled = [s["tokenizer"] for s in all_stats if s.get("max_pieces")]
    notes = [
        "Round-trip F1: notes of decode(encode(test piece)) against the test piece after the "
        "encoding's documented transformations (MIDICompact: sustain pedal applied, volume and "
        "expression in the velocity; Simplified MIDI: leading silence dropped; MidiTok: none); "
        "same pitch, onset within one grid step, duration within 20%.",
        "Transform F1: the transformed piece against the raw one, what those transformations "
        "change by design (docs/midicompact.md, docs/decoding.md). Raw F1: decoded against raw.",
        "F1 on grid: on input already on the tokenizer's grid, g = decode(encode(test piece)), "
        "against decode(encode(g)), exact onsets and durations; 1.000: nothing is lost but what "
        "the grid itself removes.",
        "CPWord and Octuple: each compound token counts as its sub-tokens. MIDICompact: one "
        "sequence per segment (cut at silences over max_silence_s).",
    ]
    if sampled:
        notes.append(
            f"Stats over a seeded sample of pieces (max_pieces) for: {', '.join(sampled)}."
        )
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
            Column("transform F1", 3),
            Column("raw F1", 3),
            Column("F1 on grid", 3),
        ],
        rows,
        notes=notes,
    )


@table("T2_tokenizers_speed")
def tokenizers_speed_table(params: dict[str, Any], layout: Layout) -> Table:
    """Encoding files/s of each tokenize stage run, from `data/tokens/<tok>/speed.json`."""
    speeds = {
        n: read_input(layout.speed_file("tokenize", n), f"tokenize@{n}")
        for n in tokenizer_keys(params)
    }
    rows = [
        [name, speed.get("files"), speed.get("workers"), speed.get("encode_files_per_s")]
        for name, speed in speeds.items()
    ]
    return Table(
        "Tokenizer encoding speed (measured)",
        [Column("tokenizer"), Column("files"), Column("workers"), Column("encode files/s", 1)],
        rows,
        notes=["Measured on the machine that ran the stage; differs between runs."],
    )


AUGMENT_TRANSFORMS = ("transpose", "modulation", "tempo", "velocity_jitter")


@table("T3_augmentation")
def augmentation_table(params: dict[str, Any], layout: Layout) -> Table:
    """Train pieces and tokens (training tokenizer) before and after each transform."""
    manifest = pd.read_parquet(need(layout.augment_manifest, "augment"))
    name = _main_model(params).tokenizer
    path = need(layout.tokens_dir(name) / "sequences.parquet", f"tokenize@{name}")
    tokens = pd.read_parquet(path, columns=["id", "n_tokens"]).groupby("id")["n_tokens"].sum()
    train = manifest[manifest["split"] == "train"]
    originals, copies = train[~train["augmented"]], train[train["augmented"]]
    applied = [json.loads(t) for t in copies["transforms"]]

    def count(ids: pd.Series) -> int:
        return int(tokens.reindex(ids).fillna(0).sum())

    rows = []
    for transform in AUGMENT_TRANSFORMS:
        has = [bool(t.get(transform)) for t in applied]
        chosen = copies[has]
        rows.append(
            [
                transform,
                int(chosen["source_id"].nunique()),
                len(chosen),
                count(chosen["source_id"]),
                count(chosen["id"]),
            ]
        )
    rows.append(
        [
            "all (train split)",
            len(originals),
            len(originals) + len(copies),
            count(originals["id"]),
            count(originals["id"]) + count(copies["id"]),
        ]
    )
    return Table(
        "Augmentation of the train split",
        [
            Column("transform"),
            Column("pieces before"),
            Column("pieces after"),
            Column(f"tokens before ({name})"),
            Column(f"tokens after ({name})"),
        ],
        rows,
        notes=[
            "Per transform: the copies that got it (after) and their source pieces (before; "
            "tokens counted once per copy). Transpose counts non-zero shifts; a copy can have "
            "several transforms. Last row: the whole train split, originals plus copies.",
            f"Multiplicity {params.get('augment', {}).get('multiplicity')}; copies are "
            "seeded per (seed, piece, copy).",
        ],
    )


def _model_metrics(params: dict[str, Any], layout: Layout) -> list[dict[str, Any]]:
    return [
        read_input(layout.model_dir(key) / "metrics.json", f"train@{key}")
        for key in model_keys(params)
    ]


@table("T4_models")
def models_table(params: dict[str, Any], layout: Layout) -> Table:
    return Table(
        "Models",
        [
            Column("model"),
            Column("family"),
            Column("size"),
            Column("tokenizer"),
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
                m.get("size"),
                m.get("tokenizer"),
                m["parameters"],
                m["context"],
                m["steps"],
                m["tokens_seen"],
                m["train_loss"],
                m["val_loss"],
                m["val_perplexity"],
                m.get("val_bits_per_note"),
            ]
            for m in _model_metrics(params, layout)
        ],
        notes=[
            "Losses in nats per token of each model's own tokenizer; bits/note = validation "
            "loss x tokens / notes of the validation split / ln 2, comparable across tokenizers.",
            "finetune: trainable (adapter) parameters; loss on the continuation only "
            "(see T4_models_speed for throughput and memory).",
        ],
    )


@table("T4_models_speed")
def models_speed_table(params: dict[str, Any], layout: Layout) -> Table:
    rows = []
    for key in model_keys(params):
        speed = read_input(layout.model_dir(key) / "speed.json", f"train@{key}")
        rows.append(
            [
                key,
                speed.get("device"),
                speed.get("train_tokens_per_s"),
                speed.get("peak_memory_mb"),
                speed.get("wall_s"),
            ]
        )
    return Table(
        "Training speed (measured)",
        [
            Column("model"),
            Column("device"),
            Column("train tokens/s", 0),
            Column("peak memory MB", 0),
            Column("wall s", 1),
        ],
        rows,
        notes=["Measured on the machine that ran the stage; differs between runs."],
    )


@table("T7_complexity")
def complexity_table(params: dict[str, Any], layout: Layout) -> Table:
    data = read_input(layout.complexity_file, "complexity")
    return Table(
        "Decoding cost against context length (measured)",
        [
            Column("model"),
            Column("family"),
            Column("context"),
            Column("ms per token", 3),
            Column("cache MB", 3),
        ],
        [
            [
                row["model"],
                row["family"],
                row["context"],
                row["ms_per_token"],
                row["cache_bytes"] / 2**20,
            ]
            for row in data["rows"]
        ],
        notes=[
            f"Measured on {data['device']} ({data.get('threads')} threads), randomly initialised "
            "models at their configured sizes; median of "
            f"{params['complexity']['repeats']} decode steps after a cache of `context` tokens.",
            "Seed 001's complexity table, measured: attention with a KV cache grows with the "
            "context in time and memory, Mamba and RWKV-6 carry a constant-size state.",
        ],
    )


table("T6_seqgan")(seqgan_table)
table("T6_seqgan_speed")(seqgan_speed_from_benchmark)
table("T8_listening")(t8_listening)


@table("T5_music_metrics")
def music_metrics_table(params: dict[str, Any], layout: Layout) -> Table:
    """Seed 001's four metrics (and melodic similarity) per model and for the test split, in
    both variants: `thesis` (as the author's released code computes them: compare Table 3-3
    with these rows only) and `midilm` (the documented fixes, docs/metrics.md)."""
    frames = [
        _csv(layout.metrics_dir(key) / "t5.csv", samples_stage(key, "evaluate"))
        for key in sample_set_keys(params)
    ]
    frames.append(_csv(layout.reference_metrics_dir / "t5.csv", "reference"))
    rows = [
        [r["row"], r["variant"], r["pieces"], r["failed"]] + [_nan_none(r[m]) for m in T5_COLUMNS]
        for frame in frames
        for r in frame.to_dict("records")
    ]
    rc, consonance, dissonance, keys = SEED_001_REPORTED
    rows.append(
        [
            "seed 001 Table 3-3 (reported)",
            "thesis",
            None,
            None,
            rc,
            consonance,
            dissonance,
            keys,
            None,
        ]
    )
    metrics = params["evaluate"]["metrics"]["seed001"]
    return Table(
        "Music metrics of seed 001 (means over pieces)",
        [
            Column("pieces of"),
            Column("variant"),
            Column("pieces"),
            Column("failed"),
            Column("rhythm consistency", 3),
            Column("consonance", 3),
            Column("dissonance", 3),
            Column("key changes", 2),
            Column("melodic similarity", 3),
        ],
        rows,
        notes=[
            "thesis: as seed 001's released evaluation code computes them (rhythm consistency "
            "= sd of single-note durations; consonance from music21's isConsonant on the MIDI "
            "spelling; key changes = key signatures in the file; melody = every single-note "
            "pitch). midilm: mu/(mu+sd) rhythm consistency as the thesis text defines it, "
            "pitch-class consonance, Krumhansl-Schmuckler key changes in windows of "
            f"{metrics['key_window_beats']} beats, top-line melody (docs/metrics.md).",
            "Generated: melodic similarity against the test piece that gave the prompt, prompt "
            "notes skipped (seqgan: SeqGAN's unconditional melodies of 32 x 0.4 s, against the "
            "test piece holding the nearest test melody). Test split: each piece against the "
            "next test piece by id (chance).",
            "Seed 001 values are as reported for its piano model on its own data; not measured "
            "here; compare them with thesis rows only.",
        ],
    )


@table("T5b_distribution")
def distribution_table(params: dict[str, Any], layout: Layout) -> Table:
    """Yang & Lerch's set-level comparison against the test split, per model and for real
    music (train pieces against test pieces): overlap area and KL per feature, FD-features."""
    frames = [
        _csv(layout.metrics_dir(key) / "t5b.csv", samples_stage(key, "evaluate"))
        for key in sample_set_keys(params)
    ]
    frames.append(_csv(layout.reference_metrics_dir / "t5b.csv", "reference"))
    rows = [
        [
            r["row"],
            r["feature"],
            _nan_none(r["oa"]),
            _nan_none(r["kl"]),
            _nan_none(r.get("fd", float("nan"))),
            r["n_generated"],
            r["n_reference"],
        ]
        for frame in frames
        for r in frame.to_dict("records")
    ]
    headline = params["evaluate"]["metrics"]["distribution"]["headline_features"]
    return Table(
        "Distribution of generated music against the test split (MGEval method)",
        [
            Column("pieces of"),
            Column("feature"),
            Column("overlap area", 3),
            Column("KL", 3),
            Column("FD", 3),
            Column("pieces"),
            Column("test pieces"),
        ],
        rows,
        notes=[
            "Per feature: the distribution of distances between each set's pieces and the test "
            "split's (inter-set) against the test split's own (intra-set), smoothed by one "
            "Gaussian KDE on a common grid; overlap area (1 = indistinguishable) and KL.",
            f"mean_oa_headline: mean overlap area over {', '.join(headline)}. fd_features: "
            "Frechet distance between the two sets' standardized feature vectors (FD; lower is "
            "closer; not FMD, which needs CLaMP weights). Pieces: defined values per side. The "
            "data row (train vs test pieces, same sizes) is what "
            "real music of this corpus scores: the ceiling.",
        ],
    )


def _csv(path: Path, stage: str) -> pd.DataFrame:
    return pd.read_csv(need(path, stage))


def _nan_none(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


T5_COLUMNS = ("rhythm_consistency", "consonance", "dissonance", "key_changes", "melodic_similarity")
