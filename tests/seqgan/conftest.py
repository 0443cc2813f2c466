"""SeqGAN test helpers: params from the committed conf at tiny sizes, and a split manifest of real
Nottingham tunes (../shared/datasets)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from midilm.common.paths import Layout
from midilm.specs.seqgan import SeqGANSpec, seqgan_spec
from tests.conftest import REPO_ROOT

# Small enough for seconds on one CPU core, large enough to exercise every phase and chunking.
TINY = {
    "mle": {"batch_size": 16, "eval_batches": 2, "checkpoint_interval": 10},
    "checkpoint_units": 2,
    "oracle": {
        "vocab": 40, "length": 8, "train_sequences": 96, "valid_sequences": 32,
        "nll_samples": 256, "curve_samples": 64, "mle_epochs": 4,
        "discriminator": {"kernel_sizes": [1, 2, 4, 8], "kernel_counts": [6, 6, 6, 4],
                          "embedding": 8, "batch_size": 16},
    },
    "music": {
        "eval_samples": 48, "curve_samples": 24, "midi_samples": 3, "mle_epochs": 2,
        "discriminator": {"kernel_sizes": [1, 2, 4, 8, 16, 32], "kernel_counts": [4, 4, 4, 4, 4, 4],
                          "embedding": 8, "batch_size": 16},
    },
}  # fmt: skip
TINY_SCHEDULE = {
    "curve_every_epochs": 2, "d_pretrain_rounds": 2, "d_epochs": 1, "negatives": 32,
    "adversarial_batches": 3, "g_batch_size": 4, "rollouts": 2, "d_rounds": 2,
    "curve_every_batches": 2, "rollout_rows": 24, "score_tokens": 512,
}  # fmt: skip


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def seqgan_params(**schedule: Any) -> dict[str, Any]:
    """params with conf/train/default.yaml and conf/seqgan/default.yaml at the TINY sizes."""
    seqgan = yaml.safe_load((REPO_ROOT / "conf" / "seqgan" / "default.yaml").read_text())
    train = yaml.safe_load((REPO_ROOT / "conf" / "train" / "default.yaml").read_text())
    _merge(seqgan, copy.deepcopy(TINY))
    for task in ("oracle", "music"):
        _merge(seqgan[task]["schedule"], {**TINY_SCHEDULE, **schedule})
    seqgan["music"]["datasets"] = ["nottingham"]
    train["device"] = "cpu"
    return {"seed": 7, "train": train, "seqgan": seqgan}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small networks: one thread is faster, and on a shared machine much faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_spec() -> SeqGANSpec:
    return seqgan_spec(seqgan_params())


def nottingham_layout(root: Path, midi_dir: Path, count: int, broken: Path | None = None) -> Layout:
    """A split manifest in `root` of the first `count` Nottingham tunes (8 train : 1 valid :
    1 test), paths pointing into the shared folder; plus `broken` as a train piece if given."""
    files = sorted(midi_dir.glob("*.mid"))[:count]
    cycle = ["train"] * 8 + ["valid", "test"]
    rows = [
        {"id": f"nottingham/{f.stem}", "dataset": "nottingham", "path": str(f),
         "split": cycle[i % len(cycle)]}
        for i, f in enumerate(files)
    ]  # fmt: skip
    if broken is not None:
        rows.append({"id": "nottingham/zz_broken", "dataset": "nottingham", "path": str(broken),
                     "split": "train"})  # fmt: skip
    rows.append({"id": "bach/x", "dataset": "bach", "path": "none.mid", "split": "test"})
    layout = Layout(root)
    layout.split_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(layout.split_manifest, index=False)
    return layout


@pytest.fixture()
def nottingham_midis(shared_datasets: Path) -> Path:
    return shared_datasets / "nottingham" / "MIDI"
