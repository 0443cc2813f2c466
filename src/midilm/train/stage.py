"""Stage `train@KEY`: train model KEY of params `models` on its tokenizer's packed data and write
models/KEY/{weights/, metrics.json, speed.json, train_log.csv, live/}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midilm.common.paths import Layout
from midilm.specs import model_spec
from midilm.train.lm import lm_job
from midilm.train.run import run_job


def run_train(params: Mapping[str, Any], layout: Layout, key: str | None = None) -> dict:
    """Train model `key` (launched once per process: alone, or by torchrun/srun with strategy
    ddp or deepspeed); returns the metrics written to models/<key>/metrics.json."""
    spec = model_spec(params, key)
    seed = int(params["seed"])
    config = {**params, "model_key": spec.key}
    out_dir = layout.model_dir(spec.key)
    if not spec.is_finetune:
        return run_job(lm_job(spec, seed, layout, config), out_dir)
    from midilm.finetune.train import finetune_job, finetune_texts

    texts_train, texts_valid = finetune_texts(spec, layout)
    with finetune_job(spec, seed, texts_train, texts_valid, out_dir / "checkpoints", config) as job:
        return run_job(job, out_dir)
