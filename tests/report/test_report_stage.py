"""The report stage on a small hand-built layout: every table, byte-identical on a re-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.report.builders import TABLES
from midilm.report.stage import run_report
from tests.conftest import REPO_ROOT


def report_params() -> dict:
    """The committed params with one model (gpt) and two tokenizers (remi, octuple)."""
    params = to_plain(load_params(REPO_ROOT / "params.yaml"))
    params["models"] = {"gpt": params["models"]["gpt"]}
    params["tokenizers"] = {k: params["tokenizers"][k] for k in ("remi", "octuple")}
    params["augment"]["multiplicity"] = 1
    params["complexity"]["repeats"] = 3
    return params


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


FIXTURES = Path(__file__).parent / "fixtures"


def build_inputs(layout: Layout) -> None:
    for task in ("oracle", "music"):  # the default DAG's SeqGAN metrics (trimmed)
        layout.seqgan_dir(task).mkdir(parents=True)
        source = FIXTURES / f"seqgan_{task}_metrics.json"
        shutil.copyfile(source, layout.seqgan_dir(task) / "metrics.json")
    results = layout.root / "benchmarks" / "results"
    results.mkdir(parents=True)
    bench = REPO_ROOT / "benchmarks" / "results" / "seqgan_cpu.json"
    shutil.copyfile(bench, results / "seqgan_cpu.json")
    pieces = [  # id, dataset, split, content_hash, duration_s, n_notes
        ("bach/a", "bach", "train", "h1", 60.0, 120),
        ("bach/b", "bach", "train", "h1", 60.0, 120),  # a duplicate of a
        ("bach/c", "bach", "test", "h2", 120.0, 300),
        ("folk/d", "folk", "valid", "h3", 30.0, 45),
    ]
    manifest = pd.DataFrame(
        [
            {
                "id": i,
                "dataset": d,
                "source": f"music21:{i}",
                "path": f"data/raw/midi/{i}.mid",
                "content_hash": h,
                "duration_s": s,
                "n_notes": n,
                "n_tracks": 1,
                "license": "PD",
                "split": split,
            }
            for i, d, split, h, s, n in pieces
        ]
    )
    layout.raw_dir.mkdir(parents=True)
    layout.split_dir.mkdir(parents=True)
    manifest.drop(columns="split").to_parquet(layout.raw_manifest, index=False)
    manifest.to_parquet(layout.split_manifest, index=False)
    pd.DataFrame(
        [
            {"dataset": "folk", "source": "abc:x", "reason": "parse_error", "detail": "bad"},
            {"dataset": "jazz", "source": "jazz/y", "reason": "empty", "detail": "no notes"},
        ]
    ).to_parquet(layout.quarantine_report, index=False)
    augmented = pd.DataFrame(
        [  # id, source_id, split, augmented, transforms
            ("bach/a", "bach/a", "train", False, "{}"),
            ("bach/a__aug1", "bach/a", "train", True, '{"tempo": 1.05, "transpose": 2}'),
            ("bach/b", "bach/b", "train", False, "{}"),
            ("bach/b__aug1", "bach/b", "train", True, '{"transpose": 0, "velocity_jitter": 12}'),
            ("bach/c", "bach/c", "test", False, "{}"),
        ],
        columns=["id", "source_id", "split", "augmented", "transforms"],
    )
    layout.augment_dir.mkdir(parents=True)
    augmented.to_parquet(layout.augment_manifest, index=False)
    layout.tokens_dir("remi").mkdir(parents=True)
    sequences = augmented[["id", "split"]].assign(
        dataset="bach", n_tokens=[100, 110, 200, 190, 400]
    )
    sequences.to_parquet(layout.tokens_dir("remi") / "sequences.parquet", index=False)
    for name, vocab in (("octuple", 581), ("remi", 282)):
        write_json(
            layout.tokens_dir(name) / "stats.json",
            {
                "tokenizer": name,
                "vocab_size": vocab,
                "sequences": 4,
                "tokens": 2000,
                "notes": 585,
                "duration_s": 270.0,
                "tokens_per_note": 3.4188,
                "tokens_per_second": 7.407,
                "seq_len_p50": 480.0,
                "seq_len_p95": 900.5,
                "failed": [],
                "per_split": {},
                "roundtrip": {"pieces": 1, "precision": 1.0, "recall": 0.98, "f1": 0.9899},
                "roundtrip_on_grid": {"pieces": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0},
            },
        )
        write_json(
            layout.speed_file("tokenize", name),
            {
                "tokenizer": name,
                "files": 4,
                "workers": 2,
                "seconds": 0.5,
                "encode_files_per_s": 8.0 if name == "remi" else 4321.5,
            },
        )
    write_json(
        layout.model_dir("gpt") / "metrics.json",
        {
            "model": "gpt",
            "family": "gpt2",
            "parameters": 850000,
            "context": 256,
            "steps": 500,
            "tokens_seen": 2048000,
            "train_loss": 1.5,
            "val_loss": 1.75,
            "val_perplexity": 5.75,
            "val_bits_per_note": 8.6,
        },
    )
    write_json(
        layout.model_dir("gpt") / "speed.json",
        {"device": "cpu", "train_tokens_per_s": 12345.6, "peak_memory_mb": 512.0, "wall_s": 166.0},
    )
    metrics = [
        "rhythm_consistency",
        "consonance",
        "dissonance",
        "key_changes",
        "melodic_similarity",
    ]
    group = dict(zip(metrics, [0.61, 0.55, 0.45, 1.5, 0.2], strict=True))
    for folder, row, pieces in (
        (layout.metrics_dir("gpt"), "generated by gpt", 8),
        (layout.metrics_dir("seqgan"), "generated by seqgan", 8),
        (layout.reference_metrics_dir, "test split (reference)", 40),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            [
                {"row": row, "variant": v, "pieces": pieces, "failed": 0, **group}
                for v in ("midilm", "thesis")
            ]
        ).to_csv(folder / "t5.csv", index=False)
        pd.DataFrame(
            [
                {
                    "row": row,
                    "feature": f,
                    "oa": oa,
                    "kl": 0.1,
                    "fd": fd,
                    "n_generated": pieces,
                    "n_reference": 40,
                }
                for f, oa, fd in (
                    ("pitch_class_entropy", 0.7, float("nan")),
                    ("fd_features", float("nan"), 2.5),
                    ("mean_oa_headline", 0.7, float("nan")),
                )
            ]
        ).to_csv(folder / "t5b.csv", index=False)
    write_json(
        layout.complexity_file,
        {
            "device": "cpu (x86_64)",
            "threads": 2,
            "rows": [
                {
                    "model": "gpt",
                    "family": "gpt2",
                    "context": c,
                    "ms_per_token": 0.5 * c / 256,
                    "cache_bytes": 4096 * c,
                    "device": "cpu",
                }
                for c in (256, 512)
            ],
        },
    )


def read_all(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_run_report_writes_every_table_identically_twice(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    build_inputs(layout)
    params = report_params()
    written = run_report(params, layout)
    first = read_all(layout.tables_dir)
    assert len(written) == 3 * len(TABLES)
    assert set(first) == {f"{name}.{ext}" for name in TABLES for ext in ("md", "csv", "tex")}
    assert {
        "T1_datasets",
        "T2_tokenizers",
        "T3_augmentation",
        "T4_models",
        "T5_music_metrics",
        "T6_seqgan",
        "T6_seqgan_speed",
        "T7_complexity",
    } <= set(TABLES)

    run_report(params, layout)
    assert read_all(layout.tables_dir) == first

    t1 = pd.read_csv(
        layout.tables_dir / "T1_datasets.csv", comment="#", dtype=str, keep_default_na=False
    )
    bach = t1[(t1["dataset"] == "bach") & (t1["split"] == "total")].iloc[0]
    assert (bach["files"], bach["unique pieces"], bach["notes"]) == ("3", "2", "540")
    assert (bach["hours"], bach["notes/s"], bach["quarantined"]) == ("0.07", "2.25", "0")
    jazz = t1[(t1["dataset"] == "jazz") & (t1["split"] == "total")].iloc[0]
    assert (jazz["files"], jazz["notes/s"], jazz["quarantined"]) == ("0", "", "1")
    assert t1.iloc[-1]["dataset"] == "all" and t1.iloc[-1]["quarantined"] == "2"
    assert t1[t1["split"] == "train"]["quarantined"].tolist() == ["", "", ""]
    assert bach["sequences"] == "6"  # windows of 256 tokens (gpt's context): 1 + 1 + 1 + 1 + 2

    t5 = (layout.tables_dir / "T5_music_metrics.md").read_text()
    assert (
        "| seed 001 Table 3-3 (reported) | thesis |  |  | 0.340 | 0.870 | 0.130 | 0.20 |  |" in t5
    )
    assert "| generated by gpt | midilm | 8 | 0 | 0.610 | 0.550 | 0.450 | 1.50 | 0.200 |" in t5
    t5b = pd.read_csv(layout.tables_dir / "T5b_distribution.csv", comment="#", dtype=str)
    assert t5b["pieces of"].tolist() == [
        *["generated by gpt"] * 3,
        *["generated by seqgan"] * 3,  # SeqGAN's melodies after the models
        *["test split (reference)"] * 3,
    ]
    assert t5b["FD"].tolist()[1] == "2.500" and t5b["overlap area"].tolist()[0] == "0.700"
    assert t5.splitlines()[-1].startswith("Provenance: git no-git, params ")
    assert "12345.6" not in (layout.tables_dir / "T4_models.csv").read_text()
    assert "12346" in (layout.tables_dir / "T4_models_speed.csv").read_text()

    t7 = pd.read_csv(layout.tables_dir / "T7_complexity.csv", comment="#", dtype=str)
    assert t7["context"].tolist() == ["256", "512"] and t7["cache MB"].tolist() == [
        "1.000",
        "2.000",
    ]

    t6 = pd.read_csv(layout.tables_dir / "T6_seqgan.csv", comment="#", dtype=str)
    assert t6["generator"].tolist()[:3] == [
        "random (untrained generator) (this run)",
        "MLE (this run)",
        "SeqGAN (this run)",
    ]
    assert t6["NLL-oracle"].tolist()[:3] == ["11.152", "9.737", "9.616"]
    assert t6.iloc[-1].tolist() == ["SeqGAN, Yu et al. 2017 (reported)", "8.736", "0.9406", "20.62"]
    t6_speed = pd.read_csv(layout.tables_dir / "T6_seqgan_speed.csv", comment="#", dtype=str)
    assert t6_speed["length"].tolist() == ["32", "64", "128", "256", "512"]

    t2 = pd.read_csv(layout.tables_dir / "T2_tokenizers.csv", comment="#", dtype=str)
    assert t2["tokenizer"].tolist() == ["remi", "octuple"]
    assert t2["vocab size"].tolist() == ["282", "581"]
    assert t2["round-trip F1"].tolist() == ["0.990", "0.990"]
    assert t2["F1 on grid"].tolist() == ["1.000", "1.000"]
    t2_speed = pd.read_csv(layout.tables_dir / "T2_tokenizers_speed.csv", comment="#", dtype=str)
    assert t2_speed["encode files/s"].tolist() == ["8.0", "4321.5"]
    assert "4321.5" not in (layout.tables_dir / "T2_tokenizers.csv").read_text()
    t3 = pd.read_csv(layout.tables_dir / "T3_augmentation.csv", comment="#", dtype=str)
    rows = {r["transform"]: list(r)[1:] for _, r in t3.iterrows()}
    assert rows["transpose"] == ["1", "1", "100", "110"]  # a 0-semitone shift is not a transpose
    assert rows["tempo"] == ["1", "1", "100", "110"]
    assert rows["velocity_jitter"] == ["1", "1", "200", "190"]
    assert rows["modulation"] == ["0", "0", "0", "0"]
    assert rows["all (train split)"] == ["2", "4", "300", "600"]
