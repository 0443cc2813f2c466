"""Generation with a LoRA fine-tuned model (seed 004): the training header, then nucleus sampling.

`load_finetuned` rebuilds the base model exactly as training loaded it (hub id, local folder or
the offline stand-in in models/<key>/weights/base/; RoPE scaling; quantization) and puts the
adapter of models/<key>/weights/ on it. `generate_sample` writes the prompt notes into the same
Llama-2 chat header, samples the continuation (top_p 0.95, temperature 1: the report's settings)
until EOS or `max_new_tokens`, and parses the Simplified MIDI text back to a score, dropping and
counting the words that do not parse. `run_lora_generate` is the generate@<key> stage for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import symusic
import torch
from omegaconf import DictConfig
from peft import PeftModel
from transformers import AutoTokenizer

from midilm.common.io import atomic_dir, read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.params import model_entry, to_plain
from midilm.common.paths import Layout, relpath
from midilm.generate.sampling import generate_ids
from midilm.generate.stage import sample_seed, test_prompts
from midilm.models.lora import load_base
from midilm.models.runtime import deterministic, quiet_transformers, resolve_device
from midilm.tokenize.base import load_tokenizer
from midilm.tokenize.simplified_midi import SimplifiedMidiConfig, SimplifiedMidiTokenizer
from midilm.train.instruct import INSTRUCT, WEIGHTS
from midilm.train.instruct_data import Header, prompt_ids

log = get_logger(__name__)

TOP_P, TEMPERATURE = 0.95, 1.0  # seed 004 §6.2


@dataclass
class FineTuned:
    """A base model with its adapter, its tokenizer and the training header."""

    model: torch.nn.Module
    tokenizer: Any
    header: Header
    bend: bool
    context: int


@dataclass
class InstructSample:
    prompt_text: str  # the prompt notes (Simplified MIDI words)
    text: str  # the generated continuation as decoded
    new_ids: list[int]
    stopped: bool  # EOS drawn before max_new_tokens
    score: symusic.Score  # prompt notes then continuation notes
    prompt_notes: int
    notes: int  # in `score`
    dropped_words: int  # continuation words that do not parse


def load_finetuned(
    out_dir: Path, device: torch.device | str = "cpu", quantize: str | None = None
) -> FineTuned:
    """The model trained into `out_dir` (models/<key>); `quantize` overrides the training one
    (e.g. `none` to sample on CPU from a QLoRA adapter, in the base's full precision)."""
    out_dir = Path(out_dir)
    weights = out_dir / WEIGHTS
    for name in (INSTRUCT, "adapter_config.json", "adapter_model.safetensors"):
        if not (weights / name).exists():
            raise FileNotFoundError(
                f"{weights / name}: missing; run `dvc repro train@{out_dir.name}` first."
            )
    spec = read_json(weights / INSTRUCT)
    cfg = dict(spec)
    if quantize is not None:
        cfg["quantize"] = quantize
    base = weights / spec["base_dir"] if spec.get("base_dir") else spec["base_model"]
    if spec.get("base_dir") and not Path(base).is_dir():
        raise FileNotFoundError(f"{base}: the offline base is missing; re-run train@{out_dir.name}")
    model, _ = load_base(base, cfg, device)
    model = PeftModel.from_pretrained(model, weights).eval()
    model.config.use_cache = True
    tokenizer = AutoTokenizer.from_pretrained(weights)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    header = Header(**spec["header"])
    return FineTuned(model, tokenizer, header, bool(spec["bend"]), int(spec["context"]))


def prompt_from_text(text: str, n_notes: int) -> str:
    """The first `n_notes` note words of a Simplified MIDI text."""
    return " ".join(text.split()[:n_notes])


def text_to_score(text: str, bend: bool = False) -> tuple[symusic.Score, int]:
    """(score, dropped words) of Simplified MIDI text: words that do not parse or hold values out
    of range are dropped and counted (the tokenizer's tolerant text decoding)."""
    tokenizer = SimplifiedMidiTokenizer(SimplifiedMidiConfig(bend=bend))
    ids, dropped = tokenizer.from_text_with_report(text)
    score, dropped_ids = tokenizer.decode_with_report(ids)
    return score, dropped + dropped_ids


def generate_sample(
    finetuned: FineTuned,
    prompt_text: str,
    max_new_tokens: int,
    generator: torch.Generator,
    temperature: float = TEMPERATURE,
    top_p: float | None = TOP_P,
    top_k: int | None = None,
) -> InstructSample:
    """Continue `prompt_text` (note words) after the training header; new tokens stop at EOS,
    `max_new_tokens` or the context (the header must stay in view, so no chunked continuation)."""
    tokenizer = finetuned.tokenizer
    prompt = prompt_ids(tokenizer, finetuned.header, prompt_text)
    room = finetuned.context - len(prompt)
    if room <= 0:
        raise ValueError(
            f"the prompt ({len(prompt)} tokens with the header) fills the context "
            f"{finetuned.context}; give fewer prompt notes"
        )
    if max_new_tokens > room:
        log.info("max_new_tokens %d -> %d (context %d)", max_new_tokens, room, finetuned.context)
    new = generate_ids(
        finetuned.model,
        prompt,
        min(max_new_tokens, room),
        int(tokenizer.eos_token_id),
        generator,
        temperature,
        top_k,
        top_p,
        context=finetuned.context,
    )
    stopped = bool(new) and new[-1] == tokenizer.eos_token_id
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    prompt_score, _ = text_to_score(prompt_text, finetuned.bend)
    score, dropped = text_to_score(f"{prompt_text} {text}", finetuned.bend)
    return InstructSample(
        prompt_text=prompt_text,
        text=text,
        new_ids=new,
        stopped=stopped,
        score=score,
        prompt_notes=int(prompt_score.note_num()),
        notes=int(score.note_num()),
        dropped_words=dropped,
    )


def run_lora_generate(
    params: Mapping[str, Any] | DictConfig, layout: Layout | None = None, key: str | None = None
) -> dict:
    """The stage generate@<key> for a model of family `lora`: continue the first notes of test
    pieces, write outputs/samples/<key>/sample_NNN.mid and samples.json (as `run_generate`).

    Prompts are the same test sequences `run_generate` uses; `prompt_tokens` Simplified MIDI ids
    are `prompt_tokens // 4` notes (p v d t per note). The entry's own `generate` block (seed 004:
    top_p 0.95, temperature 1, no top-k) goes over the global group; `max_new_tokens` counts
    tokens of the LLM's own tokenizer.
    """
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    key, entry = model_entry(plain, key)
    tok_name = str(entry.get("tokenizer") or plain["tokenizer"]["name"]).lower()
    cfg = {**plain["generate"], **dict(entry.get("generate") or {})}
    seed = int(plain["seed"])
    quiet_transformers()
    music_tokenizer = load_tokenizer(layout.tokens_dir(tok_name))
    if not callable(getattr(music_tokenizer, "to_text", None)):
        raise ValueError(
            f"model {key!r}: tokenizer {tok_name!r} has no text form; use simplified_midi"
        )
    device = resolve_device(str(cfg.get("device", "cpu")))
    finetuned = load_finetuned(layout.model_dir(key), device, cfg.get("quantize"))
    prompts = test_prompts(layout, tok_name, int(cfg["num_samples"]), int(cfg["prompt_tokens"]))

    out_dir = layout.samples_dir(key)
    samples = []
    with atomic_dir(out_dir) as tmp, deterministic(seed):
        for index, (reference_id, reference_path, ids) in enumerate(prompts):
            specials = {music_tokenizer.bos_id, music_tokenizer.eos_id, music_tokenizer.pad_id}
            text = music_tokenizer.to_text([i for i in ids if i not in specials])
            generator = torch.Generator().manual_seed(sample_seed(seed, index))
            sample = generate_sample(
                finetuned,
                prompt_from_text(text, max(1, int(cfg["prompt_tokens"]) // 4)),
                int(cfg["max_new_tokens"]),
                generator,
                float(cfg.get("temperature", TEMPERATURE)),
                float(cfg["top_p"]) if cfg.get("top_p") else None,
                int(cfg["top_k"]) if cfg.get("top_k") else None,
            )
            name = f"sample_{index:03d}.mid"
            sample.score.dump_midi(str(tmp / name))
            samples.append(
                {
                    "file": name,
                    "path": relpath(out_dir / name, layout.root),
                    "reference_id": reference_id,
                    "reference_path": reference_path,
                    "prompt_tokens": len(ids),
                    "prompt_notes": sample.prompt_notes,
                    "generated_tokens": len(sample.new_ids),
                    "notes": sample.notes,
                    "dropped_tokens": sample.dropped_words,  # words that did not parse
                    "eos": sample.stopped,
                }
            )
            log.info("generate %s: %d tokens, %d notes", name, len(sample.new_ids), sample.notes)
        result = {"model": key, "settings": {**cfg, "seed": seed}, "samples": samples}
        write_json_atomic(tmp / "samples.json", result)
    return result
