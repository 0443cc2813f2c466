"""A tiny real corpus (the twelve chorales: 8 train, 2 valid, 2 test), tokenized with the REMI
params of params.yaml and packed to binidx, in a temp repo; plus tiny model/train params.

Same helper as tests/generate/conftest.py (kept per folder; tests/ has no package)."""

from __future__ import annotations

import shutil
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
from midilm.store.binidx import BinIdxWriter, dtype_for_vocab
from midilm.tokenize.base import build_tokenizer
from midilm.tokenize.stage import write_sequences

SPLITS = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2


def build_packed_corpus(midis: list[Path], root: Path, params: dict[str, Any]) -> Layout:
    """Split manifest, tokens (tokenizer.json, sequences.parquet, stats.json) and packed binidx."""
    layout = Layout(root)
    tokenizer = build_tokenizer(params["tokenizer"])
    name = tokenizer.name
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

    tokens_dir, packed = layout.tokens_dir(name), layout.packed_dir(name)
    tokens_dir.mkdir(parents=True, exist_ok=True)
    packed.mkdir(parents=True, exist_ok=True)
    tokenizer.save(tokens_dir / "tokenizer.json")
    write_sequences(tokens_dir / "sequences.parquet", rows, name, tokenizer.vocab_size)
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


def tiny_params(repo_root: Path, steps: int = 30) -> dict[str, Any]:
    """params.yaml with a model and training run small enough for a test (seconds on 2 cores)."""
    plain = to_plain(load_params(repo_root / "params.yaml"))
    plain["model"].update(name="tiny", context=64, n_layer=2, n_embd=32, n_head=2, dropout=0.1)
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
    )
    plain["generate"].update(num_samples=3, prompt_tokens=16, max_new_tokens=80)
    return plain


@pytest.fixture(scope="session")
def packed_corpus(chorale_midis: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """The chorale corpus, tokenized and packed once per session (read-only for tests)."""
    root = tmp_path_factory.mktemp("corpus")
    return build_packed_corpus(chorale_midis, root, tiny_params(Path(__file__).parents[2]))


@pytest.fixture(scope="session")
def tiny() -> Callable[..., dict[str, Any]]:
    """`tiny(steps=30)`: the tiny params (a fresh dict each call)."""
    return lambda steps=30: tiny_params(Path(__file__).parents[2], steps)


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
