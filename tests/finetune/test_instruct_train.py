"""LoRA training: the continuation loss falls, only adapters move, save -> load, determinism."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from midilm.models.lora import apply_lora, load_base
from midilm.models.registry import resolve_model_cfg
from midilm.models.runtime import deterministic
from midilm.train.instruct import (
    evaluate_examples,
    lora_train_cfg,
    train_adapter,
)
from midilm.train.instruct_data import Header, build_examples, collate


def test_training_lowers_the_continuation_loss_and_moves_only_adapters(
    tiny_base: Path,
    texts_train: list[str],
    model_cfg: Callable[..., dict[str, Any]],
    train_cfg: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    with deterministic(0, threads=1):  # one thread: the test machine's cores are shared
        _train_and_check(tiny_base, texts_train, model_cfg(str(tiny_base)), train_cfg, tmp_path)


def _train_and_check(
    tiny_base: Path,
    texts_train: list[str],
    cfg: dict[str, Any],
    train_cfg: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    base, tokenizer = load_base(tiny_base, cfg)
    frozen = {n: p.detach().clone() for n, p in base.named_parameters()}
    examples = build_examples(tokenizer, Header(), texts_train[:3], 256)[:8]
    model = apply_lora(base, cfg)
    pad = tokenizer.pad_token_id
    before, count = evaluate_examples(model, examples, 4, pad)
    train_adapter(model, examples, [], train_cfg(steps=20, lr=3e-2), pad, seed=0)
    after, _ = evaluate_examples(model, examples, 4, pad)

    assert count > 100
    assert after < before - 1.0, (before, after)
    for name, param in model.get_base_model().named_parameters():
        if "lora_" in name:
            continue
        original = name.replace(".base_layer", "")
        assert torch.equal(param, frozen[original]), name

    # save -> load on a fresh base -> identical logits
    model.save_pretrained(tmp_path / "adapter", save_embedding_layers=False)
    reloaded = PeftModel.from_pretrained(load_base(tiny_base, cfg)[0], tmp_path / "adapter")
    batch = collate(examples[:2], pad)
    model.eval()
    with torch.no_grad():
        want = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        got = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(want, got)


def test_run_publishes_adapter_tokenizer_metrics_and_log(
    stand_in_runs: tuple[Path, Path, dict[str, Any]],
) -> None:
    out, _, metrics = stand_in_runs
    weights = out / "weights"
    for name in ("adapter_model.safetensors", "adapter_config.json", "instruct.json"):
        assert (weights / name).is_file(), name
    assert (weights / "tokenizer.json").is_file() and (weights / "tokenizer_config.json").is_file()
    assert (weights / "base" / "model.safetensors").is_file()  # the stand-in ships with it
    adapter = json.loads((weights / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    assert adapter["base_model_name_or_path"] == "base"
    assert not list(out.parent.glob(".lora.*"))  # no temporary folder left behind

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert 0 < metrics["parameters"] < metrics["parameters_total"]
    assert metrics["steps"] == 6 and metrics["tokens_seen"] > 0
    assert metrics["val_loss"] > 0 and metrics["val_perplexity"] > 1
    assert metrics["val_bits_per_note"] > 0 and metrics["val_loss_base"] > 0
    with open(out / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert [r["val_loss"] != "" for r in rows] == [False, False, True, False, False, True]


def test_same_seed_gives_identical_bytes(stand_in_runs: tuple[Path, Path, dict[str, Any]]) -> None:
    first, second, _ = stand_in_runs
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert Path("weights/adapter_model.safetensors") in files
    assert Path("weights/base/model.safetensors") in files
    assert Path("weights/README.md") not in files  # peft's card names the temporary folder
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        if name != Path("metrics.json"):
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (first, second)]
    for m in metrics:
        m.pop("speed")
    assert metrics[0] == metrics[1]


def test_lora_yaml_profiles(repo_root: Path) -> None:
    import yaml

    entry = yaml.safe_load((repo_root / "conf" / "model" / "lora.yaml").read_text())
    smoke = resolve_model_cfg(entry)
    assert smoke["base_model"] is None and smoke["quantize"] == "none"
    thesis = resolve_model_cfg({**entry, "size": "thesis"})
    assert thesis["base_model"] == "meta-llama/Llama-2-7b-hf"
    assert thesis["quantize"] == "nf4" and thesis["rope_scaling"] == "linear"
    train = lora_train_cfg({**entry["train"], "betas": [0.9, 0.99]}, thesis, n_examples=1000)
    assert train["lr"] == 2e-4 and train["schedule"] == "cosine"
    assert train["steps"] == 3 * 1000 // 16 + 1  # 3 epochs of 1000 examples, 16 a step
    assert train["warmup_steps"] == 6
