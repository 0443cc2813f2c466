"""End to end: the smoke profile through the real DVC pipeline in a fresh copy of this repo (the
same DAG as Slurm jobs through the Prefect flow: tests/flows/test_pipeline_flow.py)."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.smoke_repo import SmokeRun, read_table, run

pytestmark = pytest.mark.slow

TABLES = (
    "T1_datasets",
    "T2_tokenizers",
    "T3_augmentation",
    "T4_models",
    "T5_music_metrics",
    "T5b_distribution",
    "T6_seqgan",
    "T7_complexity",
    "T8_listening",
)


@pytest.fixture(scope="module")
def smoke_repo(smoke_run: SmokeRun) -> Path:
    return smoke_run.repo


def test_smoke_dag_writes_every_table_with_real_numbers(smoke_repo: Path) -> None:
    for name in TABLES:
        for suffix in (".md", ".csv", ".tex"):
            text = (smoke_repo / "reports" / "tables" / f"{name}{suffix}").read_text()
            assert "git " in text.splitlines()[-1] and "params " in text, (name, suffix)
        rows = read_table(smoke_repo, name)
        assert rows, name
        for row in rows:
            for key, value in row.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                assert math.isfinite(number), (name, key, value)
    datasets = {row["dataset"] for row in read_table(smoke_repo, "T1_datasets")}
    assert {"bach_chorales", "oneills1850", "essen_folksong"} <= datasets
    tokenizers = list(yaml.safe_load((smoke_repo / "params.yaml").read_text())["tokenizers"])
    assert len(tokenizers) > 1  # every tokenizer in params.tokenizers has a row
    assert [row["tokenizer"] for row in read_table(smoke_repo, "T2_tokenizers")] == tokenizers
    models = list(yaml.safe_load((smoke_repo / "params.yaml").read_text())["models"])
    model = read_table(smoke_repo, "T4_models")
    assert [row["model"] for row in model] == models
    for row in model:
        assert int(row["parameters"]) > 10_000 and float(row["val loss"]) > 0, row
    sample_sets = [*models, "seqgan"]  # SeqGAN's melodies are evaluated as any model's samples
    t5 = read_table(smoke_repo, "T5_music_metrics")
    assert len(t5) == 2 * len(sample_sets) + 3  # 2 variants
    t5b = read_table(smoke_repo, "T5b_distribution")
    assert {row["pieces of"] for row in t5b} >= set(sample_sets) | {"data (train vs test)"}
    for model in models:  # every sample rendered, beside the piece it continued
        audio = json.loads((smoke_repo / "outputs" / "audio" / model / "audio.json").read_text())
        assert audio["items"] and all(
            (smoke_repo / i["sample"]["mp3"]).is_file()
            for i in audio["items"]
            if "mp3" in i["sample"]
        )
    lofi = json.loads((smoke_repo / "outputs" / "lofi" / "lofi.json").read_text())
    assert lofi["mixes"] and (smoke_repo / lofi["mixes"][0]["mp3"]).is_file()
    site = smoke_repo / "reports" / "site"
    assert (site / "index.html").is_file() and (site / "models" / "gpt.html").is_file()
    assert {row["model"] for row in read_table(smoke_repo, "T7_complexity")} == set(
        yaml.safe_load((smoke_repo / "params.yaml").read_text())["complexity"]["families"]
    )
    assert list((smoke_repo / "outputs" / "samples" / "gpt").glob("sample_*.mid"))
    t6 = {row["generator"]: row for row in read_table(smoke_repo, "T6_seqgan")}
    for generator in ("random (untrained generator)", "MLE", "SeqGAN"):
        row = t6[f"{generator} (this run)"]
        assert float(row["NLL-oracle"]) > 0 and 0 <= float(row["BLEU-4"]) <= 1, row
    # SeqGAN's melodies go through the same evaluation and audio as any model's samples
    seqgan_audio = smoke_repo / "outputs" / "audio" / "seqgan" / "audio.json"
    assert json.loads(seqgan_audio.read_text())["items"]
    assert (smoke_repo / "outputs" / "metrics" / "seqgan" / "music_metrics.json").is_file()


def test_rerun_with_nothing_changed_does_nothing(smoke_repo: Path) -> None:
    started = time.monotonic()
    result = run(["dvc", "repro"], smoke_repo)
    assert "Running stage" not in result.stdout
    assert time.monotonic() - started < 60


def test_changing_a_generate_param_reruns_only_what_depends_on_it(
    smoke_repo: Path, tmp_path: Path
) -> None:
    repo = Path(shutil.copytree(smoke_repo, tmp_path / "repo", symlinks=True))  # keep the original
    params = repo / "params.yaml"
    head, tail = params.read_text().split("\ngenerate:\n", 1)  # the top-level group, not a model's
    params.write_text(
        f"{head}\ngenerate:\n" + tail.replace("temperature: 1.0", "temperature: 0.9", 1)
    )
    ran = run(["dvc", "repro"], repo).stdout
    for stage in ("generate@gpt", "evaluate@gpt", "report"):
        assert f"Running stage '{stage}'" in ran
    for stage in ("datasets", "split", "augment", "tokenize@", "pack@", "train@", "complexity"):
        assert f"Running stage '{stage}" not in ran
