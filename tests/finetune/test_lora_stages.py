"""train@lora and generate@lora on a temp repo: tokens -> pack (JSONL) -> LoRA -> MIDI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import symusic
import yaml

from midilm.common.paths import Layout
from midilm.generate.instruct import run_lora_generate
from midilm.store.stage import run_pack
from midilm.train.instruct import run_lora_stage


def test_lora_stages_train_then_generate(
    simplified_repo: tuple[Layout, dict[str, Any]],
    repo_root: Path,
    params: dict[str, Any],
    model_cfg: Callable[..., dict[str, Any]],
    train_cfg: Callable[..., dict[str, Any]],
) -> None:
    layout, tokenizer_cfg = simplified_repo
    params["tokenizer"] = tokenizer_cfg
    params["tokenizers"] = {"simplified_midi": tokenizer_cfg}
    assert run_pack(params, layout, "simplified_midi")["jsonl"]

    smoke = {k: v for k, v in model_cfg(None).items() if k not in ("name", "family", "size")}
    lora_conf = yaml.safe_load((repo_root / "conf" / "model" / "lora.yaml").read_text())
    entry = {**lora_conf, "sizes": {"smoke": smoke}, "train": {}}
    params["models"] = {"lora": entry}
    params["train"] = train_cfg()
    params["generate"].update(num_samples=2, prompt_tokens=32, max_new_tokens=40, device="cpu")

    metrics = run_lora_stage(params, layout, "lora")
    assert metrics["train_examples"] > 8 and metrics["val_loss"] > 0
    assert (layout.model_dir("lora") / "weights" / "adapter_model.safetensors").is_file()

    result = run_lora_generate(params, layout, "lora")
    assert result["settings"]["top_p"] == 0.95 and result["settings"]["top_k"] is None
    samples = result["samples"]
    assert len(samples) == 2
    on_disk = json.loads((layout.samples_dir("lora") / "samples.json").read_text())
    assert on_disk["samples"] == samples
    for sample in samples:
        assert sample["prompt_notes"] == 8  # 32 Simplified MIDI ids = 8 notes
        assert 0 < sample["generated_tokens"] <= 40
        score = symusic.Score(str(layout.root / sample["path"]))
        assert score.note_num() == sample["notes"] >= sample["prompt_notes"]
        assert (layout.root / sample["reference_path"]).is_file()
