"""Shared fixtures: repo root, ../shared/datasets, real music from music21, a tiny split repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import symusic

from midilm.common.io import write_json_atomic
from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.specs.tokenizer import tokenizer_spec
from midilm.specs.train import TrainSpec, train_spec
from midilm.store.binidx import BinIdxWriter, dtype_for_vocab
from midilm.store.sequences import write_sequences
from midilm.tokenize.factory import build_tokenizer
from tests import smoke_repo

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(
    os.environ.get("MIDILM_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets")
)

os.environ.setdefault("MIDILM_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """../shared/datasets (present in CI and beside every checkout of this project)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"{SHARED_DATASETS} not found (set MIDILM_SHARED_DATASETS)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def chorale_midis(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve real Bach chorales exported from music21's corpus to MIDI."""
    from music21 import corpus

    out = tmp_path_factory.mktemp("chorales")
    paths: list[Path] = []
    for name in [
        "bwv269",
        "bwv347",
        "bwv153.1",
        "bwv86.6",
        "bwv267",
        "bwv281",
        "bwv17.7",
        "bwv40.3",
        "bwv18.5-lz",
        "bwv187.7",
        "bwv10.7",
        "bwv38.6",
    ]:
        score = corpus.parse(f"bach/{name}")
        path = out / f"{name}.mid"
        score.write("midi", fp=str(path))
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def slurm_cluster(repo_root: Path) -> None:
    """Start (or reuse) the local cluster: root only (writes /etc/slurm, starts daemons)."""
    if os.geteuid() != 0:
        pytest.skip("starting a Slurm cluster needs root")
    subprocess.run(["bash", str(repo_root / "infra" / "slurm" / "start.sh")], check=True)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> smoke_repo.SmokeRun:
    """The smoke profile through `dvc repro`, once per session: the end-to-end tests of the DAG
    and of the Prefect flow compare their runs with its tables (taken before any test changes
    the repo)."""
    repo = smoke_repo.make_smoke_repo(repo_root, tmp_path_factory.mktemp("smoke_a"))
    started = time.monotonic()
    smoke_repo.run(["dvc", "repro"], repo)
    print(f"smoke dvc repro: {time.monotonic() - started:.1f} s")
    return smoke_repo.SmokeRun(repo, smoke_repo.tables_of(repo))


# A tiny real split manifest (the twelve chorales: 8 train, 2 valid, 2 test) in a temp repo.
SPLITS = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2


def build_split_layout(midis: list[Path], root: Path) -> Layout:
    """Copy the MIDIs under `root/data/raw/midi/bach/` and write the split manifest for them."""
    layout = Layout(root)
    rows = []
    for midi, split in zip(midis, SPLITS, strict=True):
        rel = Path("data/raw/midi/bach") / midi.name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(midi, root / rel)
        score = symusic.Score(str(midi))
        rows.append(
            {
                "id": f"bach/{midi.stem}",
                "dataset": "bach",
                "source": f"music21:bach/{midi.stem}",
                "path": rel.as_posix(),
                "content_hash": midi.stem,
                "duration_s": float(score.to("second").end()),
                "n_notes": int(score.note_num()),
                "n_tracks": len(score.tracks),
                "license": "public domain",
                "split": split,
            }
        )
    layout.split_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).sort_values("id").to_parquet(layout.split_manifest, index=False)
    return layout


@pytest.fixture()
def params(repo_root: Path) -> dict[str, Any]:
    """The committed params.yaml with two augmented copies per train piece."""
    plain = to_plain(load_params(repo_root / "params.yaml"))
    plain["augment"]["multiplicity"] = 2
    return plain


@pytest.fixture()
def split_layout(chorale_midis: list[Path], tmp_path: Path) -> Layout:
    return build_split_layout(chorale_midis, tmp_path / "repo")


def write_split_and_tokens(
    midis: list[Path], root: Path, tokenizer: Any
) -> tuple[Layout, list[dict[str, Any]]]:
    """The chorales as a split manifest plus `tokenizer`'s tokenizer.json and sequences.parquet
    (what the split and tokenize stages write); returns the layout and the sequence rows."""
    layout = Layout(root)
    manifest, rows = [], []
    for midi, split in zip(midis, SPLITS, strict=True):
        rel = Path("data/raw/midi/bach") / midi.name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(midi, root / rel)
        score = symusic.Score(str(midi))
        piece = {"id": f"bach/{midi.stem}", "dataset": "bach", "split": split}
        manifest.append({**piece, "path": rel.as_posix()})
        ids = [tokenizer.bos_id, *tokenizer.encode(score), tokenizer.eos_id]
        rows.append(
            {
                **piece,
                "source_id": piece["id"],
                "augmented": False,
                "n_notes": int(score.note_num()),
                "duration_s": float(score.to("second").end()),
                "n_tokens": len(ids),
                "ids": ids,
            }
        )
    rows.sort(key=lambda r: r["id"])
    layout.split_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(manifest).sort_values("id").to_parquet(layout.split_manifest, index=False)
    tokens_dir = layout.tokens_dir(tokenizer.name)
    tokens_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(tokens_dir / "tokenizer.json")
    write_sequences(tokens_dir / "sequences.parquet", rows, tokenizer.name, tokenizer.vocab_size)
    return layout, rows


def build_packed_corpus(
    midis: list[Path], root: Path, params: dict[str, Any], tokenizer_key: str = "remi"
) -> Layout:
    """Split manifest, tokens (tokenizer.json, sequences.parquet, stats.json) and packed binidx."""
    tokenizer = build_tokenizer(tokenizer_spec(params, tokenizer_key).build_cfg)
    name = tokenizer.name
    layout, rows = write_split_and_tokens(midis, root, tokenizer)

    tokens_dir, packed = layout.tokens_dir(name), layout.packed_dir(name)
    packed.mkdir(parents=True, exist_ok=True)
    per_split = {
        s: {
            "sequences": sum(r["split"] == s for r in rows),
            "tokens": sum(r["n_tokens"] for r in rows if r["split"] == s),
            "notes": sum(r["n_notes"] for r in rows if r["split"] == s),
        }
        for s in ("train", "valid", "test")
    }
    write_json_atomic(
        tokens_dir / "stats.json", {"vocab_size": tokenizer.vocab_size, "per_split": per_split}
    )
    dtype = dtype_for_vocab(tokenizer.vocab_size)
    for split in ("train", "valid", "test"):
        with BinIdxWriter(packed / split, dtype) as writer:
            for row in rows:
                if row["split"] == split:
                    writer.add_document(np.asarray(row["ids"]))
    splits = {s: {"documents": v["sequences"], "tokens": v["tokens"]} for s, v in per_split.items()}
    stats = {"vocab_size": tokenizer.vocab_size, "dtype": dtype.name, "splits": splits}
    write_json_atomic(packed / "stats.json", stats)
    return layout


def train_spec_for(**overrides: Any) -> TrainSpec:
    """The committed params' train group with `overrides` on top, as a TrainSpec."""
    plain = to_plain(load_params(REPO_ROOT / "params.yaml"))
    return train_spec(plain["train"], overrides)


def tiny_params(repo_root: Path, steps: int = 30, tokenizer: str = "remi") -> dict[str, Any]:
    """params.yaml with a model and training run small enough for a test (seconds on 2 cores)."""
    plain = to_plain(load_params(repo_root / "params.yaml"))
    gpt = plain["models"]["gpt"]
    gpt.update(size="tiny", dropout=0.1, tokenizer=tokenizer, train={}, generate={})
    gpt["sizes"] = {"tiny": {"context": 64, "n_layer": 2, "n_embd": 32, "n_head": 2}}
    plain["models"] = {"tiny": {**gpt, "name": "tiny"}}
    plain["train"].update(
        steps=steps,
        batch_size=8,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=5,
        eval_interval=10,
        eval_batches=2,
        device="cpu",
        threads=1,
        wandb={**plain["train"]["wandb"], "mode": "disabled"},
        dvclive=False,
    )
    plain["generate"].update(num_samples=3, prompt_tokens=16, max_new_tokens=80)
    return plain


@pytest.fixture(scope="session")
def packed_corpus(chorale_midis: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """The chorale corpus, tokenized and packed once per session (read-only for tests)."""
    root = tmp_path_factory.mktemp("corpus")
    return build_packed_corpus(chorale_midis, root, tiny_params(REPO_ROOT))


@pytest.fixture(scope="session")
def tiny() -> Callable[..., dict[str, Any]]:
    """`tiny(steps=30, tokenizer="remi")`: the tiny params (a fresh dict each call)."""
    return lambda steps=30, tokenizer="remi": tiny_params(REPO_ROOT, steps, tokenizer)


@pytest.fixture(scope="session")
def fresh_layout(
    packed_corpus: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], Layout]:
    """`fresh_layout()`: a copy of the packed corpus's repo, so each run writes its own outputs."""

    def copy() -> Layout:
        root = tmp_path_factory.mktemp("repo") / "repo"
        shutil.copytree(packed_corpus.root, root)
        return Layout(root)

    return copy
