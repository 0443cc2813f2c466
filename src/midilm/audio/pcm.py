"""Audio arrays in and out: reading any WAV/FLAC/MP3/OGG, loudness, fades, loops, and encoding
to FLAC/MP3/WAV with soundfile (its bundled libsndfile; no ffmpeg).

Arrays are float32 `(frames, 2)` in [-1, 1]. Encoding quantizes to 16 bit once; the MP3 encoder is
fed that 16-bit signal as float, because libsndfile 1.2.2 encodes an int16 array to MP3 as noise
(peak 1.26 for a 0.10 input) that differs between processes, while float input is exact and
byte-identical across runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile

from midilm.common.io import atomic_path

LOUDNESS_MEASURE = "ITU-R BS.1770-4 integrated loudness, LUFS (pyloudnorm)"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff")
_FORMATS = {
    ".flac": ("FLAC", "PCM_16"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".wav": ("WAV", "PCM_16"),
}


class AudioReadError(ValueError):
    """An audio file that cannot be decoded; the message names the file and the fix."""


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """`path` as float32 stereo at `sample_rate` (mono is doubled, more channels are downmixed)."""
    path = Path(path)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioReadError(
            f"{path}: cannot decode audio ({exc}); use WAV, FLAC, MP3 or OGG"
        ) from None
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: the audio file holds no samples")
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    elif data.shape[1] > 2:
        data = np.repeat(data.mean(axis=1, keepdims=True), 2, axis=1)
    if rate != sample_rate:
        import soxr  # librosa's resampler; deterministic

        data = soxr.resample(data, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(data, dtype=np.float32)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Round to 16-bit PCM, clipping at full scale."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def write_audio(
    path: str | Path, audio: np.ndarray, sample_rate: int, mp3_quality: float | None = None
) -> None:
    """Encode by suffix (.flac, .mp3 at VBR `mp3_quality`, .wav), 16-bit, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"{path}: write .flac, .mp3 or .wav")
    if suffix == ".mp3" and mp3_quality is None:
        raise ValueError(f"{path}: an MP3 needs mp3_quality (audio.mp3_quality)")
    fmt, subtype = _FORMATS[suffix]
    pcm = to_int16(audio)
    with atomic_path(path) as tmp:
        if suffix == ".mp3":
            soundfile.write(
                str(tmp), pcm.astype(np.float32) / 32768.0, sample_rate, subtype, format=fmt,
                compression_level=mp3_quality, bitrate_mode="VARIABLE",
            )  # fmt: skip
        else:
            soundfile.write(str(tmp), pcm, sample_rate, subtype, format=fmt)


def seconds_of(audio: np.ndarray, sample_rate: int) -> float:
    return round(audio.shape[0] / sample_rate, 3)


def loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness; -inf for silence. Audio under one 400 ms gating block is measured
    looped up to a block (its periodic extension)."""
    block = math.ceil(0.4 * sample_rate) + 1
    if audio.shape[0] == 0:
        return -math.inf
    if audio.shape[0] < block:
        audio = np.tile(audio, (math.ceil(block / audio.shape[0]), 1))
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.astype(np.float64)))


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def normalize_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling_dbfs: float
) -> tuple[np.ndarray, dict[str, float | None]]:
    """Gain `audio` to `target_lufs`, stopping short where the peak would pass `ceiling_dbfs`.

    Returns the audio and what was done (measured and reached loudness, gain, peak)."""
    measured = loudness_lufs(audio, sample_rate)
    peak = peak_dbfs(audio)
    if not math.isfinite(measured) or not math.isfinite(peak):
        return audio, {"lufs_in": None, "gain_db": 0.0, "lufs": None, "peak_dbfs": None}
    gain = min(target_lufs - measured, ceiling_dbfs - peak)
    out = (audio * 10 ** (gain / 20)).astype(np.float32)
    return out, {
        "lufs_in": round(measured, 2),
        "gain_db": round(gain, 2),
        "lufs": round(measured + gain, 2),
        "peak_dbfs": round(peak + gain, 2),
    }


def apply_gain_db(audio: np.ndarray, gain_db: float) -> np.ndarray:
    return (audio * 10 ** (gain_db / 20)).astype(np.float32)


def fade_out(audio: np.ndarray, frames: int) -> np.ndarray:
    """Linear fade to silence over the last `frames` frames."""
    frames = min(frames, audio.shape[0])
    if frames <= 0:
        return audio
    out = audio.copy()
    out[-frames:] *= np.linspace(1.0, 0.0, frames, dtype=np.float32)[:, None]
    return out


def loop_to(audio: np.ndarray, frames: int, period: int | None = None) -> np.ndarray:
    """`audio` repeated every `period` frames (default: its length) to exactly `frames` frames.

    A loop longer than its period (a drum hit's release past the bar) overlaps the next repeat."""
    period = period or audio.shape[0]
    if period <= 0 or audio.shape[0] == 0:
        return np.zeros((frames, 2), dtype=np.float32)
    out = np.zeros((frames + audio.shape[0], 2), dtype=np.float32)
    for start in range(0, frames, period):
        out[start : start + audio.shape[0]] += audio
    return out[:frames]


def fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    """Cut or pad with silence to exactly `frames`."""
    if audio.shape[0] >= frames:
        return audio[:frames]
    pad = np.zeros((frames - audio.shape[0], audio.shape[1]), dtype=np.float32)
    return np.concatenate([audio, pad])
