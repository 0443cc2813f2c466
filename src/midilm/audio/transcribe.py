"""Audio (WAV, FLAC, MP3, OGG) -> MIDI with Spotify's basic-pitch, on the ONNX model that ships
inside its wheel: installed with `pip install --no-deps basic-pitch` (scripts/setup.sh), so
TensorFlow is never pulled in. Deterministic on CPU."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile

from midilm.audio.pcm import AudioReadError
from midilm.common.io import atomic_path
from midilm.common.logging import get_logger
from midilm.specs.audio import TranscribeSpec

log = get_logger(__name__)

MODEL_NAME = "basic-pitch ICASSP 2022 (nmp.onnx, onnxruntime CPU)"


class TranscriptionUnavailable(RuntimeError):
    """basic-pitch or onnxruntime is not installed; the message says how to install them."""


@dataclass(frozen=True)
class TranscribedNote:
    start: float  # seconds
    end: float
    pitch: int  # MIDI note number
    amplitude: float  # 0..1, basic-pitch's note confidence (the MIDI velocity / 127)


@contextlib.contextmanager
def _quiet_root_warnings() -> Iterator[None]:
    """basic-pitch logs a warning per missing backend (TensorFlow, CoreML, TFLite) on import."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


@functools.cache
def _basic_pitch() -> tuple[Any, Any]:
    """(the loaded ONNX model, basic_pitch.inference.predict), loaded once per process."""
    try:
        with _quiet_root_warnings():
            import onnxruntime  # noqa: F401  (basic-pitch picks ONNX only when this imports)
            from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
            from basic_pitch.inference import Model, predict
    except ImportError as exc:
        raise TranscriptionUnavailable(
            f"basic-pitch cannot be imported ({exc}); run `bash scripts/setup.sh`, which installs "
            "it with `pip install --no-deps basic-pitch==0.4.0` beside onnxruntime and librosa"
        ) from None
    path = build_icassp_2022_model_path(FilenameSuffix.onnx)
    if not Path(path).is_file():
        raise TranscriptionUnavailable(f"{path}: basic-pitch's ONNX model is missing; reinstall it")
    return Model(path), predict


def _check_audio(path: Path) -> float:
    """Seconds of audio in `path`; unreadable or empty files raise AudioReadError."""
    if not path.is_file():
        raise AudioReadError(f"{path}: no such audio file")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise AudioReadError(
            f"{path}: cannot decode audio ({exc}); give a WAV, FLAC, MP3 or OGG file"
        ) from None
    if info.frames <= 0:
        raise AudioReadError(f"{path}: the audio file holds no samples")
    return info.frames / info.samplerate


def transcribe_audio(
    audio_path: str | Path, spec: TranscribeSpec
) -> tuple[list[TranscribedNote], Any]:
    """basic-pitch's notes (sorted by onset, pitch) and its pretty_midi.PrettyMIDI."""
    path = Path(audio_path)
    _check_audio(path)
    model, predict = _basic_pitch()
    with contextlib.redirect_stdout(io.StringIO()), _quiet_root_warnings():  # it prints a line
        _, midi, events = predict(
            str(path),
            model,
            onset_threshold=spec.onset_threshold,
            frame_threshold=spec.frame_threshold,
            minimum_note_length=spec.minimum_note_ms,
            minimum_frequency=spec.minimum_hz,
            maximum_frequency=spec.maximum_hz,
            melodia_trick=spec.melodia_trick,
            midi_tempo=spec.midi_tempo,
        )
    notes = sorted(
        (TranscribedNote(float(s), float(e), int(p), float(a)) for s, e, p, a, _ in events),
        key=lambda n: (n.start, n.pitch),
    )
    return notes, midi


def transcribe(
    audio_path: str | Path, out_midi: str | Path, spec: TranscribeSpec
) -> dict[str, Any]:
    """Transcribe `audio_path` to the MIDI file `out_midi` (written atomically); returns what
    was done. Audio in which nothing is heard gives a MIDI file with no notes and `notes: 0`."""
    seconds = _check_audio(Path(audio_path))
    notes, midi = transcribe_audio(audio_path, spec)
    with atomic_path(out_midi) as tmp:
        midi.write(str(tmp))
    if not notes:
        log.warning("%s: basic-pitch heard no notes (thresholds %s/%s)", audio_path,
                    spec.onset_threshold, spec.frame_threshold)  # fmt: skip
    return {
        "audio": Path(audio_path).as_posix(),
        "midi": Path(out_midi).as_posix(),
        "model": MODEL_NAME,
        "audio_seconds": round(seconds, 3),
        "notes": len(notes),
        "pitches": sorted({n.pitch for n in notes}),
    }
