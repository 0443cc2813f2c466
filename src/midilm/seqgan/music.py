"""The music task (SeqGAN paper, "Music generation"): solo melodies as pitch samples, taken from
the DAG's own train/valid/test split.

Coding (the paper: "88 numbers for 88 pitches ... pitch sampled every 0.4 s ... sequences of
length 32"; how rests are coded is not stated): token k < 88 is piano key k (MIDI pitch
`lowest_pitch` + k, A0..C8), token 88 is a rest. A piece's melody is sampled at t0, t0 + 0.4 s,
... (t0 its first melody onset) up to its last note's end; each sample is the highest melody
pitch sounding then (start <= t < end), or a rest. Pitches outside the 88 keys move by octaves
into them. The melody sequence is cut into windows of `length` samples every `stride` samples
(the last partial window dropped); windows of rests only are dropped.

Melody extraction, for a possibly polyphonic piece: the melody track is the non-drum track with
the highest mean pitch (ties: more notes, then the first); its top line is what the sampling
keeps (the highest sounding pitch). Nottingham's MIDI files have a melody track above a chord
track; the embedded corpus's O'Neill and Essen tunes are single melodies.

Decoding a generated sequence to MIDI: one step is one quarter note at 150 bpm (0.4 s); a run of
equal key tokens is one note, a rest token is silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import symusic
import torch

from midilm.common.io import atomic_dir, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import SAMPLES_FILE, Layout, relpath
from midilm.common.spec import as_dict
from midilm.generate.codec import seconds_of
from midilm.seqgan.algorithm import Task, Trained, device_generator
from midilm.seqgan.experiment import run_experiment
from midilm.seqgan.lstm import SeqLSTM
from midilm.seqgan.metrics import corpus_bleu_shared_references, nearest_pitch, nearest_pitch_mse
from midilm.specs.seqgan import MusicSpec, SeqGANSpec

log = get_logger(__name__)

SPLITS = ("train", "valid", "test")
TICKS_PER_STEP = 480  # one step = one quarter note
VELOCITY = 80


@dataclass
class Melodies:
    """The task's sequences per split, where they came from, and what was left out."""

    sequences: dict[str, np.ndarray]  # split -> [N, length] token ids
    origins: dict[str, list[tuple[str, str]]]  # split -> (piece id, path) of each sequence
    pieces: dict[str, int]  # split -> pieces that gave at least one sequence
    skipped: list[dict[str, str]] = field(default_factory=list)  # {id, path, reason}

    def tensor(self, split: str) -> torch.Tensor:
        return torch.as_tensor(self.sequences[split], dtype=torch.long)


def melody_track(score: symusic.Score) -> Any | None:
    """The non-drum track with the highest mean pitch (ties: more notes, then the first)."""
    best, best_key = None, None
    for index, track in enumerate(score.tracks):
        if track.is_drum or track.note_num() == 0:
            continue
        pitches = track.notes.numpy()["pitch"].astype(np.float64)
        key = (float(pitches.mean()), len(pitches), -index)
        if best_key is None or key > best_key:
            best, best_key = track, key
    return best


def fold_into_keys(pitch: np.ndarray, spec: MusicSpec) -> np.ndarray:
    """MIDI pitches moved by octaves into the keys' range."""
    low, high = spec.lowest_pitch, spec.lowest_pitch + spec.keys - 1
    pitch = pitch.astype(np.int64)
    below = pitch < low
    pitch[below] += 12 * np.ceil((low - pitch[below]) / 12).astype(np.int64)
    above = pitch > high
    pitch[above] -= 12 * np.ceil((pitch[above] - high) / 12).astype(np.int64)
    return pitch


def melody_tokens(score: symusic.Score, spec: MusicSpec) -> np.ndarray:
    """The melody of `score` sampled every `step_seconds` as token ids (empty: no melody)."""
    seconds = score if score.ttype == symusic.TimeUnit.second else score.to("second")
    track = melody_track(seconds)
    if track is None:
        return np.empty(0, dtype=np.int64)
    notes = track.notes.numpy()
    start = notes["time"].astype(np.float64)
    end = start + notes["duration"].astype(np.float64)
    keep = end > start
    start, end, pitch = start[keep], end[keep], fold_into_keys(notes["pitch"][keep], spec)
    if len(start) == 0:
        return np.empty(0, dtype=np.int64)
    t0, step, eps = start.min(), spec.step_seconds, 1e-3  # steps; absorbs float32 seconds
    count = int(np.ceil((end.max() - t0) / step - eps))
    top = np.full(count, -1, dtype=np.int64)
    first = np.ceil((start - t0) / step - eps).astype(np.int64)  # first sample at or after start
    stop = np.ceil((end - t0) / step - eps).astype(np.int64)  # samples before the end
    for a, b, p in zip(first, stop, pitch, strict=True):
        if b > a:
            np.maximum(top[a:b], p, out=top[a:b])
    return np.where(top < 0, spec.rest, top - spec.lowest_pitch)


def windows(tokens: np.ndarray, spec: MusicSpec) -> np.ndarray:
    """[K, length] windows every `stride` samples; all-rest windows dropped."""
    starts = range(0, len(tokens) - spec.length + 1, spec.stride)
    found = [tokens[s : s + spec.length] for s in starts]
    found = [w for w in found if (w != spec.rest).any()]
    return np.stack(found) if found else np.empty((0, spec.length), dtype=np.int64)


def load_melodies(spec: MusicSpec, layout: Layout) -> Melodies:
    """The task's sequences from the split manifest's pieces of `spec.datasets` (those the split
    holds; none of them: every dataset's pieces, with a warning); a file that cannot be read is
    skipped with its reason, never stopping the run."""
    if not layout.split_manifest.exists():
        raise FileNotFoundError(
            f"{layout.split_manifest}: no split manifest; run `dvc repro split` first"
        )
    manifest = pd.read_parquet(layout.split_manifest, columns=["id", "dataset", "path", "split"])
    held = sorted(manifest["dataset"].unique())
    names = [name for name in spec.datasets if name in held] or held
    if list(spec.datasets) != names:
        log.warning(
            "seqgan music: the split holds %s of seqgan.music.datasets %s; melodies from %s",
            [n for n in spec.datasets if n in held],
            list(spec.datasets),
            names,
        )
    chosen = manifest[manifest["dataset"].isin(names)].sort_values("id", kind="stable")
    per_split: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    origins: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    pieces = dict.fromkeys(SPLITS, 0)
    skipped: list[dict[str, str]] = []
    for row in chosen.itertuples(index=False):
        path = layout.root / str(row.path)
        if row.split not in per_split:
            skipped.append({"id": row.id, "path": str(row.path),
                            "reason": f"unknown split {row.split!r}"})  # fmt: skip
            continue
        try:
            tokens = melody_tokens(symusic.Score(str(path)), spec)
        except Exception as exc:  # a broken or unreadable file: skipped, with its reason
            skipped.append({"id": row.id, "path": str(row.path), "reason": f"unreadable: {exc}"})
            continue
        found = windows(tokens, spec)
        if len(found) == 0:
            reason = "no melody" if len(tokens) == 0 else f"melody shorter than {spec.length} steps"
            skipped.append({"id": row.id, "path": str(row.path), "reason": reason})
            continue
        per_split[row.split].append(found)
        origins[row.split] += [(str(row.id), str(row.path))] * len(found)
        pieces[row.split] += 1
    sequences = {
        split: np.concatenate(found) if found else np.empty((0, spec.length), dtype=np.int64)
        for split, found in per_split.items()
    }
    for split in ("train", "test"):
        if len(sequences[split]) == 0:
            raise ValueError(
                f"{layout.split_manifest}: datasets {names}: the {split} split has no melody of "
                f"{spec.length} steps of {spec.step_seconds} s (drums only, or too little data); "
                "name melodic datasets in seqgan.music.datasets (conf/seqgan) or add data"
            )
    log.info("seqgan music: %s sequences from %s pieces (%d skipped)",
             {k: len(v) for k, v in sequences.items()}, pieces, len(skipped))  # fmt: skip
    return Melodies(sequences, origins, pieces, skipped)


def decode(tokens: np.ndarray, spec: MusicSpec) -> symusic.Score:
    """A generated sequence as a one-track piano MIDI score (see the module docstring)."""
    score = symusic.Score(TICKS_PER_STEP)
    score.tempos.append(symusic.Tempo(0, 60.0 / spec.step_seconds))
    track = symusic.Track("SeqGAN melody", 0, False)
    tokens = [int(t) for t in tokens]
    start = 0
    for i in range(1, len(tokens) + 1):
        if i == len(tokens) or tokens[i] != tokens[start]:
            if tokens[start] != spec.rest:
                pitch = spec.lowest_pitch + tokens[start]
                duration = (i - start) * TICKS_PER_STEP
                track.notes.append(symusic.Note(start * TICKS_PER_STEP, duration, pitch, VELOCITY))
            start = i
    score.tracks.append(track)
    return score


def write_music_samples(
    sequences: np.ndarray,
    references: list[tuple[str, str]],
    spec: MusicSpec,
    out_dir: Path,
    root: Path,
    settings: dict[str, Any],
    model_key: str = "seqgan",
) -> dict[str, Any]:
    """sample_NNN.mid per sequence and samples.json in the format of
    `midilm.generate.samples.write_samples`. Generation is unconditional (no prompt); each
    sample's reference is the test piece holding its nearest test melody (`references`, the
    (id, path) per sequence), which the evaluation compares it with."""
    samples = []
    with atomic_dir(out_dir) as tmp:
        for index, (tokens, (ref_id, ref_path)) in enumerate(
            zip(sequences, references, strict=True)
        ):
            score = decode(tokens, spec)
            name = f"sample_{index:03d}.mid"
            score.dump_midi(str(tmp / name))
            samples.append(
                {
                    "file": name,
                    "path": relpath(out_dir / name, root),
                    "reference_id": ref_id,
                    "reference_path": ref_path,
                    "prompt_tokens": 0,
                    "prompt_notes": 0,
                    "generated_tokens": len(tokens),
                    "notes": int(score.note_num()),
                    "seconds": round(seconds_of(score), 3),
                    "dropped_tokens": 0,
                    "eos": False,
                }
            )
        result = {"model": model_key, "settings": settings, "samples": samples}
        write_json_atomic(tmp / SAMPLES_FILE, result)
    return result


# --- the task ---------------------------------------------------------------------------------

PAPER_TABLE_4 = {"mle": {"bleu4": 0.9210, "mse": 22.38}, "seqgan": {"bleu4": 0.9406, "mse": 20.62}}


def music_task(spec: SeqGANSpec, melodies: Melodies) -> Task:
    """The task: train sequences for MLE and as the discriminator's positives, valid for the
    MLE loop's validation loss (train when the valid split has none), test only as BLEU/MSE
    references."""
    m = spec.music
    test = melodies.sequences["test"]
    valid = (
        melodies.tensor("valid") if len(melodies.sequences["valid"]) else melodies.tensor("train")
    )

    def curve(generator: SeqLSTM, point: str) -> dict[str, float]:
        device = generator.embedding.device
        samples = generator.sample(m.curve_samples, device_generator(device, spec.seed, point))
        return score_melodies(samples.cpu().numpy(), test, m)

    return Task(
        name="music",
        vocab=m.vocab,
        length=m.length,
        train=melodies.tensor("train"),
        valid=valid,
        mle_epochs=m.mle_epochs,
        discriminator=m.discriminator,
        schedule=m.schedule,
        curve=curve,
        identity={"music": as_dict(m)},
    )


def score_melodies(generated: np.ndarray, test: np.ndarray, spec: MusicSpec) -> dict[str, float]:
    """BLEU-4 and nearest-melody pitch MSE of `generated` against the whole test set."""
    bleu = corpus_bleu_shared_references(generated.tolist(), test.tolist())
    mse, excluded = nearest_pitch_mse(generated, test, spec.rest, spec.lowest_pitch)
    return {"bleu4": bleu, "mse": mse, "mse_excluded": float(excluded)}


def run_music_task(
    spec: SeqGANSpec,
    layout: Layout,
    out_dir: Path,
    samples_dir: Path | None = None,
    speed_file: Path | None = None,
) -> dict[str, Any]:
    """Train random -> MLE -> SeqGAN on the split's melodies; write out_dir/{metrics.json,
    curve.csv}, the speed (out_dir/speed.json, or `speed_file`) and the SeqGAN generator's
    samples as MIDI with samples.json in `samples_dir` (default outputs/samples/seqgan);
    metrics.json's content. Resumes from out_dir/work; on SIGTERM checkpoints and exits with
    REQUEUE_EXIT_CODE."""
    m = spec.music
    melodies = load_melodies(m, layout)
    validation = "valid split"
    if len(melodies.sequences["valid"]) == 0:  # a tiny corpus: the loop validates on train
        validation = f"train split (the valid split has no melody of {m.length} steps)"
        log.warning("seqgan music: MLE validation loss on the %s", validation)
    samples_dir = samples_dir or layout.samples_dir("seqgan")
    test = melodies.sequences["test"]

    def score(trained: Trained, device: torch.device) -> dict[str, Any]:
        rows: dict[str, dict[str, float]] = {}
        generated: dict[str, np.ndarray] = {}
        for name in ("random", "mle", "seqgan"):
            model = getattr(trained, name)
            seeded = device_generator(device, spec.seed, "final", name)
            generated[name] = model.sample(m.eval_samples, seeded).cpu().numpy()
            rows[name] = score_melodies(generated[name], test, m)
        if len(melodies.sequences["valid"]):
            valid = melodies.sequences["valid"]
            rows["valid split (real melodies)"] = score_melodies(valid, test, m)
        chosen = generated["seqgan"][: m.midi_samples]
        _, nearest = nearest_pitch(chosen, test, m.rest, m.lowest_pitch)
        origins = melodies.origins["test"]
        references = [origins[max(int(i), 0)] for i in nearest]
        settings = {
            "sampling": "softmax of the generator, temperature 1 (unconditional)",
            "length": m.length,
            "step_seconds": m.step_seconds,
            "rollout_policy": trained.rollout_policy,
            "reference": "the test piece holding the nearest test melody (pitch MSE)",
        }
        write_music_samples(chosen, references, m, samples_dir, layout.root, settings)
        return {
            "rows": rows,
            "paper_table_4": PAPER_TABLE_4,
            "eval_samples": m.eval_samples,
            "test_references": len(test),
            "mle_validation": validation,
            "pieces": melodies.pieces,
            "sequences": {k: len(v) for k, v in melodies.sequences.items()},
            "skipped": melodies.skipped,
            "samples_dir": relpath(samples_dir, layout.root),
        }

    return run_experiment(
        spec, lambda device: music_task(spec, melodies), score, out_dir, speed_file
    )
