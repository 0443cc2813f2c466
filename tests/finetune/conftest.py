"""Tiny randomly initialised Llama and Mistral bases saved to a temp dir, with a real BPE
tokenizer trained on Simplified MIDI text of the Bach chorales (no hub access)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import symusic
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.finetune.data import Header
from midilm.finetune.standin import train_offline_tokenizer
from midilm.finetune.train import finetune_job
from midilm.specs import ModelSpec, model_spec
from midilm.tokenize.factory import build_tokenizer
from midilm.tokenize.simplified_midi import SimplifiedMidiTokenizer
from midilm.train.run import run_job
from tests.conftest import REPO_ROOT, write_split_and_tokens

CONTEXT = 256
# Wider than the default 0.02: after the final RMSNorm a 32-wide model's logits could otherwise
# move by well under 1 nat, so no adapter could fit anything (a pretrained model is not so flat).
INIT_RANGE = 0.2
ARCHITECTURES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one thread: the test machine's cores are shared, and tiny models gain nothing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def chorale_texts(chorale_midis: list[Path]) -> list[str]:
    """Simplified MIDI text of the twelve chorales (the tokenizer's text form)."""
    tokenizer = SimplifiedMidiTokenizer()
    return [tokenizer.to_text(tokenizer.encode(symusic.Score(str(p)))) for p in chorale_midis]


@pytest.fixture(scope="session")
def texts_train(chorale_texts: list[str]) -> list[str]:
    return chorale_texts[:8]


@pytest.fixture(scope="session")
def texts_valid(chorale_texts: list[str]) -> list[str]:
    return chorale_texts[8:10]


def save_tiny_base(kind: str, texts: list[str], out: Path) -> Path:
    """A 2-layer random `kind` (llama or mistral) and its BPE tokenizer (save_pretrained)."""
    tokenizer = train_offline_tokenizer(texts, 1024, [Header().system])
    config_cls, model_cls = ARCHITECTURES[kind]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=INIT_RANGE,
    )
    torch.manual_seed(0)
    model_cls(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session", params=sorted(ARCHITECTURES))
def tiny_base(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, texts_train: list[str]
) -> Path:
    """A tiny random Llama, then a tiny random Mistral (each test using it runs on both)."""
    return save_tiny_base(request.param, texts_train, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, texts_train: list[str]) -> Path:
    return save_tiny_base("llama", texts_train, tmp_path_factory.mktemp("llama_only"))


SMOKE_SIZE: dict[str, Any] = {
    "context": CONTEXT,
    "lora_r": 4,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "quantize": "none",
    "dtype": "float32",
    "rope_scaling": None,
    "rope_factor": None,
    "gradient_checkpointing": False,
    "offline_base": {
        "n_layer": 2,
        "hidden": 32,
        "heads": 2,
        "kv_heads": 2,
        "intermediate": 64,
        "vocab_size": 1024,
        "context": 64,
        "pretrain": {"steps": 4, "batch_size": 4, "eval_batches": 0, "checkpoint_interval": 0},
    },
}
TRAIN = {
    "steps": 6,
    "batch_size": 4,
    "grad_accum": 2,
    "lr": 1e-2,
    "min_lr": 1e-3,
    "warmup_steps": 1,
    "eval_interval": 3,
    "eval_batches": 1,
    "checkpoint_interval": 0,
    "device": "cpu",
    "threads": 1,
    "dvclive": False,
}


def finetune_params(
    base_model: str | None, train: dict[str, Any] | None = None, **size: Any
) -> dict[str, Any]:
    """The committed params with one model, `finetune`, small enough for a test: its smoke size
    replaced (`size` on top of SMOKE_SIZE; base_model None: the offline stand-in), the global
    train group with TRAIN (and `train`) on top."""
    params = to_plain(load_params(REPO_ROOT / "params.yaml"))
    entry = dict(params["models"]["finetune"])
    entry["sizes"] = {"smoke": {**SMOKE_SIZE, "base_model": base_model, **size}}
    entry.update(size="smoke", train={})
    params["models"] = {"finetune": entry}
    params["train"].update({**TRAIN, **(train or {})})
    params["train"]["wandb"]["mode"] = "disabled"
    return params


def finetune_spec(
    base_model: str | None, train: dict[str, Any] | None = None, **size: Any
) -> ModelSpec:
    """The model spec of `finetune_params`, resolved as the stage resolves it."""
    return model_spec(finetune_params(base_model, train, **size), "finetune")


def fine_tune(
    spec: ModelSpec, texts_train: list[str], texts_valid: list[str], out_dir: Path, seed: int
) -> dict[str, Any]:
    """train@finetune's work on given texts: the job through `run_job`; metrics.json's content."""
    with finetune_job(spec, seed, texts_train, texts_valid, out_dir / "checkpoints") as job:
        return run_job(job, out_dir, trackers=False)


@pytest.fixture(scope="session")
def stand_in_runs(
    tmp_path_factory: pytest.TempPathFactory, texts_train: list[str], texts_valid: list[str]
) -> tuple[Path, Path, dict[str, Any]]:
    """The offline stand-in (base_model null) fine-tuned twice with the same seed."""
    root = tmp_path_factory.mktemp("runs")
    spec = finetune_spec(None)
    metrics = fine_tune(spec, texts_train, texts_valid, root / "a" / "finetune", 7)
    fine_tune(spec, texts_train, texts_valid, root / "b" / "finetune", 7)
    return root / "a" / "finetune", root / "b" / "finetune", metrics


SPLITS = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2  # as tests/conftest.py's corpus


def build_simplified_repo(midis: list[Path], root: Path, tokenizer_cfg: dict[str, Any]) -> Layout:
    """A temp repo with the chorales' split manifest and Simplified MIDI tokens (the tokenize
    stage's outputs), ready for `run_pack`."""
    return write_split_and_tokens(midis, root, build_tokenizer(tokenizer_cfg))[0]


@pytest.fixture()
def simplified_repo(
    chorale_midis: list[Path], tmp_path: Path, repo_root: Path
) -> tuple[Layout, dict[str, Any]]:
    """(layout, the simplified_midi tokenizer group): a fresh temp repo with tokens written."""
    import yaml

    conf = repo_root / "conf" / "tokenizer" / "simplified_midi.yaml"
    tokenizer_cfg = yaml.safe_load(conf.read_text())
    return build_simplified_repo(chorale_midis, tmp_path / "repo", tokenizer_cfg), tokenizer_cfg
