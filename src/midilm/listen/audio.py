"""Stimulus audio: every clip decoded, cut to the same maximum length and written as MP3 in the
test folder, so all stimuli share one format and rate (a file's format cannot give its source
away), and the degraded anchor.

The anchor is a real piece made deliberately bad by a fixed, seeded transformation:
1. cut into `segment_seconds` segments, shuffled (melody, harmony and rhythm lose continuity),
   each with 5 ms fades so the joins do not click;
2. low-passed at `lowpass_hz` (4th-order Butterworth, zero phase; MUSHRA's 3.5 kHz anchor);
3. white noise added at `snr_db` dB signal-to-noise ratio;
4. peak-normalized to 0.9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from midilm.common.io import atomic_path

FADE_SECONDS = 0.005
FADE_OUT_SECONDS = 0.5
PEAK = 0.9


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(frames x channels float64, sample rate); a clear error for an unreadable file."""
    try:
        data, rate = soundfile.read(str(path), always_2d=True, dtype="float64")
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path}: not readable audio ({exc}); re-run the render stage") from None
    if len(data) == 0:
        raise ValueError(f"{path}: empty audio; re-run the render stage")
    return data, int(rate)


def clip(data: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """At most `seconds` of `data`; a cut clip ends in a linear fade-out."""
    frames = round(seconds * rate)
    if len(data) <= frames:
        return data
    out = data[:frames].copy()
    fade = min(int(FADE_OUT_SECONDS * rate), frames)
    out[frames - fade :] *= np.linspace(1.0, 0.0, fade)[:, None]
    return out


def degrade(
    data: np.ndarray,
    rate: int,
    seed: int,
    segment_seconds: float,
    lowpass_hz: float,
    snr_db: float,
) -> np.ndarray:
    """The anchor transformation (module docstring) of `data` (frames x channels)."""
    rng = np.random.default_rng(seed)
    shuffled = shuffle_segments(data, rate, segment_seconds, rng)
    noisy = add_noise(lowpass(shuffled, rate, lowpass_hz), snr_db, rng)
    peak = float(np.max(np.abs(noisy)))
    return noisy * (PEAK / peak) if peak > 0 else noisy


def shuffle_segments(
    data: np.ndarray, rate: int, segment_seconds: float, rng: np.random.Generator
) -> np.ndarray:
    """`data` cut into segments of `segment_seconds`, each faded in and out over 5 ms, in a
    random order."""
    size = max(round(segment_seconds * rate), 2)
    segments = [data[i : i + size].copy() for i in range(0, len(data), size)]
    fade = min(int(FADE_SECONDS * rate), size // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)[:, None]
        for segment in segments:
            if len(segment) > 2 * fade:
                segment[:fade] *= ramp
                segment[-fade:] *= ramp[::-1]
    order = rng.permutation(len(segments))
    return np.concatenate([segments[i] for i in order])


def lowpass(data: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """4th-order Butterworth low-pass, zero phase (forward-backward), along time."""
    cutoff = min(cutoff_hz, 0.45 * rate)
    sos = signal.butter(4, cutoff, btype="lowpass", fs=rate, output="sos")
    if len(data) <= 3 * (2 * len(sos) + 1):  # too short for filtfilt's padding
        return data.copy()
    return signal.sosfiltfilt(sos, data, axis=0)


def add_noise(data: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`data` plus white Gaussian noise at `snr_db` dB below the signal's mean power."""
    power = float(np.mean(data**2))
    noise_power = power / (10 ** (snr_db / 10)) if power > 0 else 1e-6
    return data + rng.normal(0.0, np.sqrt(noise_power), data.shape)


def write_mp3(data: np.ndarray, rate: int, path: Path) -> float:
    """Write `data` as MP3 atomically (soundfile's libsndfile; byte-stable); returns seconds."""
    peak = float(np.max(np.abs(data))) if len(data) else 0.0
    if peak > 1.0:
        data = data / peak
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), data, rate, format="MP3")
    return round(len(data) / rate, 3)
