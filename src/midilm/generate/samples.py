"""A sample set: prompts continued by a model through the one sampling loop, decoded to MIDI and
listed in samples.json (what evaluation, audio rendering and the report read)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import symusic
import torch
from tqdm import tqdm

from midilm.common.io import atomic_dir, write_json_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.paths import SAMPLES_FILE, relpath
from midilm.common.seeding import derive_seed
from midilm.generate.codec import Codec, Decoded, Prepared, seconds_of
from midilm.generate.prompts import Prompt
from midilm.generate.sampling import Sampling, generate
from midilm.specs.generate import GenerateSpec
from midilm.tokenize.base import DecodeError

log = get_logger(__name__)


def sampling_of(spec: GenerateSpec) -> Sampling:
    return Sampling(
        spec.temperature,
        spec.top_k,
        spec.top_p,
        spec.presence_penalty,
        spec.frequency_penalty,
        spec.alpha_decay,
    )


def sample_seed(seed: int, index: int) -> int:
    """The generator seed of sample `index`: distinct per sample, fixed by params.seed."""
    return derive_seed(seed, "sample", index)


def continue_prompts(
    model: torch.nn.Module,
    codec: Codec,
    prompts: Sequence[Prompt],
    spec: GenerateSpec,
    seed: int,
) -> list[tuple[Prepared, list[int]]]:
    """Each prompt continued (sample i seeded by `sample_seed(seed, i)`), `spec.batch_size`
    sequences at a time; until `spec.target_seconds` of music when that is set."""
    prepared = [codec.prepare(p) for p in prompts]
    context = codec.context
    cap = spec.max_new_tokens
    if context is not None:  # no chunked continuation (a fine-tuned LLM's header must stay)
        cap = min(cap, context - max(len(p.ids) for p in prepared))
        if cap <= 0:
            raise ValueError(f"the prompts fill the context {context}; give fewer prompt tokens")
    out: list[tuple[Prepared, list[int]]] = []
    bar = tqdm(total=len(prepared), desc="generate", disable=progress_disabled())
    for start in range(0, len(prepared), spec.batch_size):
        chunk = prepared[start : start + spec.batch_size]
        generators = [
            torch.Generator().manual_seed(sample_seed(seed, start + i)) for i in range(len(chunk))
        ]
        done = None if not spec.target_seconds else _long_enough(codec, chunk, spec.target_seconds)
        news = generate(
            model,
            [p.ids for p in chunk],
            generators,
            cap,
            sampling_of(spec),
            codec.end_id,
            context,
            done,
        )
        out += list(zip(chunk, news, strict=True))
        bar.update(len(chunk))
    bar.close()
    return out


def decode_or_report(
    codec: Codec, prepared: Prepared, new: Sequence[int]
) -> tuple[Decoded, str | None]:
    """The decoded sample, or an empty score and the reason when the ids do not decode (a model
    can write anything: `midilm.tokenize.base.DecodeError` names the token)."""
    try:
        return codec.decode(prepared, new), None
    except DecodeError as exc:
        log.warning("a sample does not decode: %s", exc)
        return Decoded(symusic.Score(), 0, len(new)), f"DecodeError: {exc}"


def _long_enough(
    codec: Codec, chunk: Sequence[Prepared], seconds: float
) -> Callable[[int, list[int]], bool]:
    """Row `row` is done once prompt plus continuation last `seconds` of music."""

    def done(row: int, new: list[int]) -> bool:
        return seconds_of(decode_or_report(codec, chunk[row], new)[0].score) >= seconds

    return done


def write_samples(
    out_dir: Path,
    root: Path,
    model_key: str,
    codec: Codec,
    results: Sequence[tuple[Prepared, list[int]]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """sample_NNN.mid per result and samples.json, as one folder swapped into place."""
    samples = []
    with atomic_dir(out_dir) as tmp:
        for index, (prepared, new) in enumerate(results):
            decoded, error = decode_or_report(codec, prepared, new)
            name = f"sample_{index:03d}.mid"
            decoded.score.dump_midi(str(tmp / name))
            samples.append(
                {
                    "file": name,
                    "path": relpath(out_dir / name, root),
                    "reference_id": prepared.prompt.reference_id,
                    "reference_path": prepared.prompt.reference_path,
                    "prompt_tokens": len(prepared.ids),
                    "prompt_notes": decoded.prompt_notes,
                    "generated_tokens": len(new),
                    "notes": int(decoded.score.note_num()),
                    "seconds": round(seconds_of(decoded.score), 3),
                    "dropped_tokens": decoded.dropped,
                    "eos": bool(new) and codec.end_id is not None and new[-1] == codec.end_id,
                    "error": error,
                }
            )
            log.info("generate %s: %d tokens, %d notes", name, len(new), samples[-1]["notes"])
        result = {"model": model_key, "settings": settings, "samples": samples}
        write_json_atomic(tmp / SAMPLES_FILE, result)
    return result
