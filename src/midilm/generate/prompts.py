"""Prompts of every kind, as ids of the model's music tokenizer (BOS first): the first tokens of
test pieces (the DAG's default), a MIDI file of the user's, text in the tokenizer's text form
(MIDICompact, Simplified MIDI), seed 001's random notes, an audio file transcribed to MIDI, or
nothing but BOS. Each prompt names the piece it came from (the reference the evaluation and the
report put beside the sample)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import symusic

from midilm.common.paths import Layout, relpath
from midilm.common.seeding import derive_seed, seeded_order
from midilm.specs.generate import GenerateSpec, RandomPromptSpec
from midilm.store.sequences import SEQUENCES_FILE
from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.encode import encode_ids
from midilm.tokenize.velocity import dequantize_velocity

RANDOM_TPQ, RANDOM_QPM = 500, 120.0  # 1 tick = 1 ms
WAIT_MS = 8  # seed 001's wait step


@dataclass(frozen=True)
class Prompt:
    ids: list[int]  # BOS + the prompt's tokens
    reference_id: str | None  # the piece it came from (None: random notes, nothing)
    reference_path: str | None  # that piece's MIDI file, relative to the repository root


def test_prompts(
    layout: Layout, tokenizer: str, count: int, prompt_tokens: int, seed: int
) -> list[Prompt]:
    """The first `prompt_tokens` ids (BOS included) of the un-augmented test pieces (the first
    segment of each) in a seeded order of their piece ids, cycling when there are fewer than
    `count`: a seeded sample of the test split, so the samples' set mirrors the split it is
    compared with, and every model (whatever its tokenizer) continues the same pieces."""
    seq_path = layout.tokens_dir(tokenizer) / SEQUENCES_FILE
    for path, stage in ((seq_path, f"tokenize@{tokenizer}"), (layout.split_manifest, "split")):
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run `dvc repro {stage}` first.")
    frame = pd.read_parquet(
        seq_path, columns=["id", "source_id", "split", "augmented", "segment", "ids"]
    )
    test = frame[(frame["split"] == "test") & ~frame["augmented"] & (frame["segment"] == 0)]
    if test.empty:
        raise ValueError(f"{seq_path}: no un-augmented test sequence to prompt from; check split")
    manifest = pd.read_parquet(layout.split_manifest, columns=["id", "path"])
    paths = dict(zip(manifest["id"], manifest["path"], strict=True))
    by_piece = {str(row["source_id"]): row for row in test.to_dict("records")}
    rows = [by_piece[piece] for piece in seeded_order(derive_seed(seed, "prompts"), list(by_piece))]
    prompts = []
    for index in range(count):
        row = rows[index % len(rows)]
        source = str(row["source_id"])
        if source not in paths:
            raise KeyError(f"{layout.split_manifest}: no piece {source!r}; re-run tokenize")
        ids = [int(i) for i in row["ids"][:prompt_tokens]]
        prompts.append(Prompt(ids, source, str(paths[source])))
    return prompts


def midi_prompt(tokenizer: MusicTokenizer, path: Path, prompt_tokens: int, root: Path) -> Prompt:
    """BOS + the first tokens of a MIDI file of the user's."""
    try:
        score = symusic.Score(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a readable MIDI file ({exc}); give a .mid file") from exc
    ids = encode_ids(tokenizer, score).tolist()
    if not ids:
        raise ValueError(f"{path}: no note the tokenizer {tokenizer.name!r} can encode")
    return Prompt([tokenizer.bos_id, *ids][:prompt_tokens], path.stem, relpath(path, root))


def text_prompt(tokenizer: MusicTokenizer, path: Path, prompt_tokens: int, root: Path) -> Prompt:
    """BOS + the tokens of a text in the tokenizer's text form (MIDICompact, Simplified MIDI)."""
    from_text = getattr(tokenizer, "from_text", None)
    if from_text is None:
        raise ValueError(
            f"tokenizer {tokenizer.name!r} has no text form; text prompts need MIDICompact or "
            "Simplified MIDI (set the model's tokenizer in conf/model)"
        )
    text = path.read_text(encoding="utf-8")
    ids = [int(i) for i in from_text(text)]
    if not ids:
        raise ValueError(f"{path}: no token of {tokenizer.name!r} in the text")
    return Prompt([tokenizer.bos_id, *ids][:prompt_tokens], path.stem, None)


def random_notes(spec: RandomPromptSpec, rng: np.random.Generator) -> symusic.Score:
    """Seed 001's random prompt: `notes` notes of pitch in `pitch`, velocity bin in
    `velocity_bin` (MIDICompact's 16 exponential bins) and wait in `wait` steps of 8 ms (each note
    lasts until the next), the whole run played `repeat` times."""
    pitch = rng.integers(spec.pitch[0], spec.pitch[1] + 1, spec.notes)
    bins = rng.integers(spec.velocity_bin[0], spec.velocity_bin[1] + 1, spec.notes)
    waits = rng.integers(spec.wait[0], spec.wait[1] + 1, spec.notes) * WAIT_MS
    velocity = np.clip(dequantize_velocity(bins), 1, 127)
    score = symusic.Score(RANDOM_TPQ)
    score.tempos.append(symusic.Tempo(0, RANDOM_QPM))
    track = symusic.Track("random prompt", 0, False)
    now = 0
    for _ in range(spec.repeat):
        for p, v, w in zip(pitch, velocity, waits, strict=True):
            track.notes.append(symusic.Note(int(now), int(w), int(p), int(v)))
            now += int(w)
    score.tracks.append(track)
    return score


def random_prompt(
    tokenizer: MusicTokenizer, spec: RandomPromptSpec, seed: int, index: int, prompt_tokens: int
) -> Prompt:
    rng = np.random.default_rng(derive_seed(seed, "random prompt", index))
    ids = encode_ids(tokenizer, random_notes(spec, rng)).tolist()
    return Prompt([tokenizer.bos_id, *ids][: max(prompt_tokens, 2)], None, None)


def make_prompts(
    spec: GenerateSpec,
    tokenizer: MusicTokenizer,
    tokenizer_key: str,
    layout: Layout,
    seed: int,
    transcribe: Callable[[Path], Path] | None = None,
) -> list[Prompt]:
    """`spec.num_samples` prompts of kind `spec.prompt` (a file prompt is shared by every
    sample; each sample then differs by its seed). `transcribe` turns an audio file into a MIDI
    file (the audio prompt kind)."""
    kind, count, n = spec.prompt, spec.num_samples, spec.prompt_tokens
    if kind == "test":
        return test_prompts(layout, tokenizer_key, count, n, seed)
    if kind == "random":
        return [random_prompt(tokenizer, spec.random_prompt, seed, i, n) for i in range(count)]
    if kind == "none":
        return [Prompt([tokenizer.bos_id], None, None)] * count
    if not spec.prompt_path:
        raise ValueError(f"generate.prompt={kind!r} needs generate.prompt_path (a file)")
    path = Path(spec.prompt_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the prompt file (generate.prompt_path) does not exist")
    if kind == "midi":
        prompt = midi_prompt(tokenizer, path, n, layout.root)
    elif kind == "text":
        prompt = text_prompt(tokenizer, path, n, layout.root)
    elif kind == "audio":
        if transcribe is None:
            raise ValueError("audio prompts need a transcriber (midilm.audio.transcribe)")
        prompt = midi_prompt(tokenizer, transcribe(path), n, layout.root)
    else:
        raise ValueError(
            f"generate.prompt={kind!r}; use one of test, midi, text, random, audio, none"
        )
    return [prompt] * count
