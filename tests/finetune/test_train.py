"""Fine-tuning through the one training loop: the continuation loss falls, only adapters move,
save -> load, published outputs, determinism, the conf's sizes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from midilm.common.params import load_params, to_plain
from midilm.finetune.data import ExampleBatches, Header, build_examples, collate
from midilm.finetune.model import BaseLoading, apply_lora, load_base, load_base_tokenizer
from midilm.models.runtime import deterministic
from midilm.specs import model_spec
from midilm.train.loop import ALONE, evaluate
from midilm.train.run import train_in_process
from tests.finetune.conftest import finetune_spec


def test_training_lowers_the_continuation_loss_and_moves_only_adapters(
    tiny_base: Path, texts_train: list[str], tmp_path: Path
) -> None:
    spec = finetune_spec(str(tiny_base), train={"steps": 20, "lr": 3e-2})
    loading = BaseLoading.of(spec.finetune, spec.context)
    with deterministic(0, threads=1):  # one thread: the test machine's cores are shared
        base = load_base(tiny_base, loading)
        tokenizer = load_base_tokenizer(tiny_base)
        frozen = {n: p.detach().clone() for n, p in base.named_parameters()}
        examples = build_examples(tokenizer, Header(), texts_train[:3], 256)[:8]
        model = apply_lora(base, spec.finetune)
        pad = tokenizer.pad_token_id
        batches = ExampleBatches(examples, examples, 4, spec.train.grad_accum, 0, pad, 2)
        before = evaluate(model, batches.valid_batches(ALONE))
        train_in_process(model, batches, spec.train, seed=0)
        after = evaluate(model, batches.valid_batches(ALONE))

    assert after < before - 1.0, (before, after)
    for name, param in model.get_base_model().named_parameters():
        if "lora_" in name:
            continue
        original = name.replace(".base_layer", "")
        assert torch.equal(param, frozen[original]), name

    # save -> load on a fresh base -> identical logits
    model.save_pretrained(tmp_path / "adapter", save_embedding_layers=False)
    reloaded = PeftModel.from_pretrained(load_base(tiny_base, loading), tmp_path / "adapter")
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
    assert not list((out / "checkpoints").glob(".standin-*"))  # no temporary folder left

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert "speed" not in on_disk and json.loads((out / "speed.json").read_text())["wall_s"] > 0
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
        if name != Path("speed.json"):  # the only measured output
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_finetune_yaml_sizes(repo_root: Path) -> None:
    params = to_plain(load_params(repo_root / "params.yaml"))
    smoke = model_spec(params, "finetune")
    assert smoke.finetune.base_model is None and smoke.finetune.quantize == "none"
    assert smoke.finetune.offline_base.pretrain.steps == 40  # through the one training loop
    params["models"]["finetune"]["size"] = "thesis"
    thesis = model_spec(params, "finetune")
    assert thesis.finetune.base_model == "meta-llama/Llama-2-7b-hf"
    assert thesis.finetune.quantize == "nf4" and thesis.finetune.rope_scaling == "linear"
    train = thesis.train.with_examples(1000)
    assert train.lr == 2e-4 and train.schedule == "cosine" and train.grad_clip == 0.3
    assert train.steps == 3 * 1000 // 16 + 1  # 3 epochs of 1000 examples, 16 a step
    assert train.warmup_steps == 6
