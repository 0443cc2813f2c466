"""MIDI -> audio with the FluidSynth CLI and a General MIDI soundfont, and the renders of one
generate stage's samples (each sample and the reference piece it continued) to FLAC and MP3.

FluidSynth runs with reverb and chorus off and writes 32-bit float, which is byte-identical from
run to run; loudness normalization and one 16-bit quantization follow (midilm.audio.pcm).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import symusic
from tqdm.auto import tqdm

from midilm.audio.pcm import normalize_loudness, seconds_of, write_audio
from midilm.audio.soundfont import (
    AudioToolMissing,
    Soundfont,
    fluidsynth_binary,
    resolve_soundfont,
)
from midilm.common.io import atomic_dir, read_json, write_json_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.paths import relpath
from midilm.specs.audio import AudioSpec

log = get_logger(__name__)

MAX_RENDER_SECONDS = 1800.0  # as the datasets' max_duration_s; longer is a corrupt end time


class MidiRenderError(ValueError):
    """A MIDI file that cannot be rendered; the message names the file and why."""


def load_score(path: str | Path) -> symusic.Score:
    """Parse `path` with symusic; unreadable, note-less or absurdly long files raise
    MidiRenderError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MidiRenderError(f"{path}: no such MIDI file")
    try:
        score = symusic.Score(str(path))
    except Exception as exc:  # symusic raises RuntimeError/ValueError with its parser's message
        raise MidiRenderError(f"{path}: not a readable MIDI file ({exc})") from None
    check_renderable(score, path)
    return score


def check_renderable(score: symusic.Score, where: str | Path) -> None:
    if score.note_num() == 0:
        raise MidiRenderError(f"{where}: the MIDI file has no notes; nothing to render")
    seconds = float(score.to("second").end())
    if seconds > MAX_RENDER_SECONDS:
        raise MidiRenderError(
            f"{where}: lasts {seconds:.0f} s, over the {MAX_RENDER_SECONDS:.0f} s render limit "
            "(a corrupt end time?); cut it first"
        )


def fluidsynth_render(
    midi_path: str | Path,
    soundfont: Soundfont,
    sample_rate: int,
    gain: float,
    timeout_s: float = 60.0 + MAX_RENDER_SECONDS,
) -> np.ndarray:
    """FluidSynth's render of a MIDI file: float32 stereo, reverb and chorus off."""
    with tempfile.TemporaryDirectory(prefix="midilm-render-") as tmp:
        wav = Path(tmp) / "render.wav"
        command = [
            fluidsynth_binary(), "-n", "-i", "-q", "-R", "0", "-C", "0",
            "-g", f"{gain:g}", "-r", str(sample_rate), "-T", "wav", "-O", "float",
            "-F", str(wav), str(soundfont.path), str(midi_path),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise MidiRenderError(f"{midi_path}: FluidSynth took over {timeout_s:.0f} s") from None
        if done.returncode != 0 or not wav.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise MidiRenderError(
                f"{midi_path}: FluidSynth failed (exit {done.returncode}): "
                f"{detail[-1] if detail else 'no output'}"
            )
        audio, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise MidiRenderError(f"{midi_path}: FluidSynth wrote {rate} Hz, not {sample_rate}")
    return audio


def render_score(
    score: symusic.Score, soundfont: Soundfont, sample_rate: int, gain: float
) -> np.ndarray:
    """Render a symusic score (written to a temporary MIDI file first); FluidSynth gets a
    minute plus the piece's length in wall time (it renders ~50x faster than real time)."""
    check_renderable(score, "score")
    timeout = 60.0 + float(score.to("second").end())
    with tempfile.TemporaryDirectory(prefix="midilm-score-") as tmp:
        midi = Path(tmp) / "score.mid"
        score.dump_midi(str(midi))
        return fluidsynth_render(midi, soundfont, sample_rate, gain, timeout)


def clip_seconds(score: symusic.Score, seconds: float) -> symusic.Score:
    """The first `seconds` of a score (notes still sounding at the cut end there)."""
    if float(score.to("second").end()) <= seconds:
        return score
    return score.to("second").clip(0.0, seconds, clip_end=True).to("tick")


@functools.cache
def fluidsynth_version() -> str:
    done = subprocess.run(
        [fluidsynth_binary(), "--version"], capture_output=True, text=True, check=False
    )
    first = (done.stdout or "").strip().splitlines()
    return first[0] if first else "unknown"


def encode(audio: np.ndarray, stem: Path, spec: AudioSpec) -> dict[str, Any]:
    """Normalize `audio` as the spec says and write `stem`.flac and `stem`.mp3."""
    loudness: dict[str, Any] = {}
    if spec.loudness_lufs is not None:
        audio, loudness = normalize_loudness(
            audio, spec.sample_rate, spec.loudness_lufs, spec.peak_dbfs
        )
    for suffix in (".flac", ".mp3"):
        write_audio(stem.with_suffix(suffix), audio, spec.sample_rate, spec.mp3_quality)
    return {"seconds": seconds_of(audio, spec.sample_rate), "lufs": loudness.get("lufs")}


def render_midi(
    midi_path: str | Path, out_stem: str | Path, spec: AudioSpec, seconds: float | None = None
) -> dict[str, Any]:
    """Render one MIDI file (its first `seconds` when given) to `out_stem`.flac and .mp3."""
    soundfont = resolve_soundfont(spec.soundfont)
    score = load_score(midi_path)
    if seconds is not None:
        score = clip_seconds(score, seconds)
    audio = render_score(score, soundfont, spec.sample_rate, spec.gain)
    return encode(audio, Path(out_stem), spec)


def render_samples(
    samples_json: str | Path, out_dir: str | Path, spec: AudioSpec, root: str | Path = "."
) -> dict[str, Any]:
    """Render every sample of a generate stage's samples.json, and the first
    `spec.reference_seconds` of the piece each continued, into `out_dir` (written whole or not
    at all) with an audio.json. A bad MIDI gets an `error` entry; the set goes on."""
    samples_json, out_dir, root = Path(samples_json), Path(out_dir), Path(root)
    listing = read_samples(samples_json)
    soundfont = resolve_soundfont(spec.soundfont)
    with atomic_dir(out_dir) as tmp:
        items = _render_items(listing["samples"], samples_json, tmp, out_dir, soundfont, spec, root)
        result = {
            "model": listing.get("model"),
            "soundfont": {"name": soundfont.name, "sha256": soundfont.sha256()},
            "sample_rate": spec.sample_rate,
            "settings": {
                "synthesizer": fluidsynth_version(),
                "gain": spec.gain,
                "reverb": False,
                "chorus": False,
                "loudness_lufs": spec.loudness_lufs,
                "peak_dbfs": spec.peak_dbfs,
                "reference_seconds": spec.reference_seconds,
                "mp3_quality": spec.mp3_quality,
            },
            "errors": sum("error" in i["sample"] or "error" in i["reference"] for i in items),
            "items": items,
        }
        write_json_atomic(tmp / "audio.json", result)
    if result["errors"]:
        log.warning("render %s: %d item(s) with errors", out_dir, result["errors"])
    return result


RENDER_THREADS = 2  # FluidSynth runs as a subprocess and libsndfile encodes without the GIL


def _render_items(
    samples: list[dict[str, Any]],
    samples_json: Path,
    tmp: Path,
    out_dir: Path,
    soundfont: Soundfont,
    spec: AudioSpec,
    root: Path,
) -> list[dict[str, Any]]:
    """audio.json's items: each sample and the piece it continued (a piece several samples
    continued is rendered once and copied), rendered on `RENDER_THREADS` threads."""
    jobs: dict[str, tuple[Path | None, float | None, str]] = {}  # key -> (midi, seconds, stem)
    plan = []
    for index, sample in enumerate(samples):
        sample_id, reference_id = f"sample_{index:03d}", f"reference_{index:03d}"
        jobs[sample_id] = (sample_midi_path(sample, samples_json, root), None, sample_id)
        reference = _reference_midi(sample, root)
        reference_key = f"reference:{reference}"
        jobs.setdefault(reference_key, (reference, spec.reference_seconds, reference_id))
        plan.append((sample_id, reference_id, reference_key, sample.get("reference_id")))

    def render(job: tuple[Path | None, float | None, str]) -> dict[str, Any]:
        midi, seconds, stem = job
        return _render_one(midi, seconds, tmp / stem, out_dir / stem, soundfont, spec, root)

    with ThreadPoolExecutor(RENDER_THREADS) as pool:
        rendered = dict(
            zip(
                jobs,
                tqdm(
                    pool.map(render, jobs.values()),
                    total=len(jobs),
                    desc="render",
                    unit="file",
                    disable=progress_disabled(),
                ),
                strict=True,
            )
        )
    items = []
    for sample_id, reference_id, reference_key, piece_id in plan:
        entry = rendered[reference_key]
        first_stem = jobs[reference_key][2]
        if first_stem != reference_id and "error" not in entry:  # a copy of the first render
            for suffix in (".flac", ".mp3"):
                shutil.copyfile(
                    (tmp / first_stem).with_suffix(suffix),
                    (tmp / reference_id).with_suffix(suffix),
                )
            entry = {**entry, **_paths(out_dir / reference_id, root)}
        reference = {"id": piece_id, **entry}
        items.append({"id": sample_id, "sample": rendered[sample_id], "reference": reference})
    return items


def read_samples(samples_json: Path) -> dict[str, Any]:
    """A generate stage's samples.json, checked for its shape."""
    if not samples_json.is_file():
        raise FileNotFoundError(f"{samples_json}: missing; run the generate stage first")
    listing = read_json(samples_json)
    if not isinstance(listing, dict) or not isinstance(listing.get("samples"), list):
        raise ValueError(f"{samples_json}: expected {{'model': ..., 'samples': [...]}}")
    return listing


def _render_one(
    midi: Path | None,
    seconds: float | None,
    tmp_stem: Path,
    final_stem: Path,
    soundfont: Soundfont,
    spec: AudioSpec,
    root: Path,
) -> dict[str, Any]:
    """One side of an item: its audio files, or the error that stopped it."""
    entry: dict[str, Any] = {"midi": relpath(midi, root) if midi is not None else None}
    if midi is None:
        return {**entry, "error": "samples.json names no MIDI file for it"}
    try:
        score = load_score(midi)
        if seconds is not None:
            score = clip_seconds(score, seconds)
        audio = render_score(score, soundfont, spec.sample_rate, spec.gain)
        info = encode(audio, tmp_stem, spec)
    except AudioToolMissing:
        raise  # the machine, not this file: stop
    except MidiRenderError as exc:
        log.warning("render: %s", exc)
        return {**entry, "error": str(exc)}
    except (ValueError, RuntimeError) as exc:  # symusic or libsndfile on a hostile file
        log.warning("render: %s: %s", midi, exc)
        return {**entry, "error": f"{midi}: {type(exc).__name__}: {exc}"}
    return {**entry, **_paths(final_stem, root), **info}


def _paths(stem: Path, root: Path) -> dict[str, str]:
    return {s[1:]: relpath(stem.with_suffix(s), root) for s in (".flac", ".mp3")}


def sample_midi_path(sample: dict[str, Any], samples_json: Path, root: Path) -> Path | None:
    """A samples.json entry's MIDI: its `path` (relative to the repo root), else `file` beside
    the json."""
    if sample.get("path"):
        path = Path(sample["path"])
        return path if path.is_absolute() else root / path
    if sample.get("file"):
        return samples_json.parent / str(sample["file"])
    return None


def _reference_midi(sample: dict[str, Any], root: Path) -> Path | None:
    if not sample.get("reference_path"):
        return None
    path = Path(sample["reference_path"])
    return path if path.is_absolute() else root / path
