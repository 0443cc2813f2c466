"""The generate stage: continue the first tokens of test pieces, decode to MIDI, list them in
samples.json (evaluate reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig

from midilm.common.io import atomic_dir, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.params import model_entry, to_plain
from midilm.common.paths import Layout, relpath
from midilm.generate.sampling import generate_ids
from midilm.models.io import load_model
from midilm.models.runtime import deterministic, quiet_transformers, resolve_device
from midilm.tokenize.base import MusicTokenizer, load_tokenizer

log = get_logger(__name__)


def run_generate(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, key: str | None = None
) -> dict:
    """Run the stage for model `key`; returns the object written to outputs/samples/<key>."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    model_name, entry = model_entry(plain, key)
    if str(entry.get("family", "")).lower() == "lora":
        from midilm.generate.instruct import run_lora_generate

        return run_lora_generate(plain, layout, model_name)
    tok_name = str(entry.get("tokenizer") or plain["tokenizer"]["name"]).lower()
    cfg, seed = {**plain["generate"], **dict(entry.get("generate") or {})}, int(plain["seed"])
    quiet_transformers()
    tokenizer = load_tokenizer(layout.tokens_dir(tok_name))
    device = resolve_device(str(cfg.get("device", "cpu")))
    model = load_model(layout.weights_dir(model_name), model_name).to(device).eval()
    prompts = test_prompts(layout, tok_name, int(cfg["num_samples"]), int(cfg["prompt_tokens"]))

    out_dir = layout.samples_dir(model_name)
    samples = []
    with atomic_dir(out_dir) as tmp, deterministic(seed):
        for index, (reference_id, reference_path, prompt) in enumerate(prompts):
            generator = torch.Generator().manual_seed(sample_seed(seed, index))
            new = generate_ids(
                model,
                prompt,
                int(cfg["max_new_tokens"]),
                tokenizer.eos_id,
                generator,
                float(cfg["temperature"]),
                int(cfg["top_k"]) if cfg.get("top_k") else None,
                float(cfg["top_p"]) if cfg.get("top_p") else None,
            )
            score = tokenizer.decode(prompt + new)
            name = f"sample_{index:03d}.mid"
            score.dump_midi(str(tmp / name))
            samples.append(
                {
                    "file": name,
                    "path": relpath(out_dir / name, layout.root),
                    "reference_id": reference_id,
                    "reference_path": reference_path,
                    "prompt_tokens": len(prompt),
                    "prompt_notes": int(tokenizer.decode(prompt).note_num()),
                    "generated_tokens": len(new),
                    "notes": int(score.note_num()),
                    "dropped_tokens": dropped_tokens(tokenizer, new),
                }
            )
            log.info("generate %s: %d tokens, %d notes", name, len(new), samples[-1]["notes"])
        result = {"model": model_name, "settings": {**cfg, "seed": seed}, "samples": samples}
        write_json_atomic(tmp / "samples.json", result)
    return result


def test_prompts(
    layout: Layout, tok_name: str, count: int, prompt_tokens: int
) -> list[tuple[str, str, list[int]]]:
    """(reference id, reference MIDI path, prompt ids) for `count` samples: the first tokens of
    the un-augmented test sequences sorted by id, cycling when there are fewer."""
    seq_path = layout.tokens_dir(tok_name) / "sequences.parquet"
    for path, stage in ((seq_path, "tokenize"), (layout.split_manifest, "split")):
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run `dvc repro {stage}` first.")
    frame = pd.read_parquet(seq_path, columns=["id", "source_id", "split", "augmented", "ids"])
    test = frame[(frame["split"] == "test") & ~frame["augmented"]].sort_values("id")
    if test.empty:
        raise ValueError(f"{seq_path}: no un-augmented test sequence to prompt from; check split")
    manifest = pd.read_parquet(layout.split_manifest, columns=["id", "path"])
    paths = dict(zip(manifest["id"], manifest["path"], strict=True))
    rows = test.to_dict("records")
    prompts = []
    for index in range(count):
        row = rows[index % len(rows)]
        source = str(row["source_id"])
        if source not in paths:
            raise KeyError(f"{layout.split_manifest}: no piece {source!r}; re-run tokenize")
        prompts.append((source, str(paths[source]), [int(i) for i in row["ids"][:prompt_tokens]]))
    return prompts


def sample_seed(seed: int, index: int) -> int:
    """The generator seed of sample `index`: distinct per sample, fixed by params.seed."""
    return seed * 100_003 + index


def dropped_tokens(tokenizer: MusicTokenizer, ids: list[int]) -> int:
    """Generated ids that decoding ignores: specials (PAD, BOS, EOS) and ids outside the vocab."""
    specials = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
    return sum(1 for i in ids if i in specials or not 0 <= i < tokenizer.vocab_size)
