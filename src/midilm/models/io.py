"""Loading a trained model directory (config.json + model.safetensors) of any family."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForCausalLM, PreTrainedModel

import midilm.models.mamba
import midilm.models.rwkv6  # noqa: F401  (registers model_type "midilm_rwkv6" with the Auto classes)

WEIGHT_FILES = ("config.json", "model.safetensors")


def load_model(model_dir: str | Path, model_name: str | None = None) -> PreTrainedModel:
    """The model saved by `save_pretrained` in `model_dir` (models/<key>/weights).

    `model_name` (default: the parent folder's name) only words the error for a missing file.
    """
    model_dir = Path(model_dir)
    key = model_name or model_dir.parent.name
    for name in WEIGHT_FILES:
        if not (model_dir / name).exists():
            raise FileNotFoundError(
                f"{model_dir / name}: missing; run `dvc repro train@{key}` first."
            )
    return AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
