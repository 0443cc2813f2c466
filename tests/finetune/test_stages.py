"""train@finetune and generate@finetune on a temp repo: tokens -> pack (JSONL) -> LoRA -> MIDI,
through the same stage functions as every model."""

from __future__ import annotations

import json
from typing import Any

import symusic

from midilm.common.paths import Layout
from midilm.generate.stage import run_generate
from midilm.store.stage import run_pack
from midilm.train.stage import run_train
from tests.finetune.conftest import finetune_params


def test_finetune_stages_train_then_generate(
    simplified_repo: tuple[Layout, dict[str, Any]],
) -> None:
    layout, tokenizer_cfg = simplified_repo
    params = finetune_params(None)
    params["tokenizers"] = {"simplified_midi": tokenizer_cfg}
    assert run_pack(params, layout, "simplified_midi")["jsonl"]

    params["generate"].update(num_samples=2, batch_size=2, prompt_tokens=32, max_new_tokens=40)
    metrics = run_train(params, layout, "finetune")
    assert metrics["train_examples"] > 8 and metrics["val_loss"] > 0
    assert (layout.model_dir("finetune") / "weights" / "adapter_model.safetensors").is_file()

    result = run_generate(params, layout, "finetune")
    assert result["settings"]["top_p"] == 0.95 and result["settings"]["top_k"] is None
    samples = result["samples"]
    assert len(samples) == 2
    on_disk = json.loads((layout.samples_dir("finetune") / "samples.json").read_text())
    assert on_disk["samples"] == samples
    for sample in samples:
        assert sample["prompt_notes"] == 8  # 32 Simplified MIDI ids = 8 notes
        assert 0 < sample["generated_tokens"] <= 40
        score = symusic.Score(str(layout.root / sample["path"]))
        assert score.note_num() == sample["notes"] >= sample["prompt_notes"]
        assert (layout.root / sample["reference_path"]).is_file()
