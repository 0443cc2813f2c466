"""The vinyl layer of a lo-fi mix: synthesized from a seed (no vinyl-noise sample ships in any
package) or a loop chosen from the user's folder.

The synthesized loop lasts a whole number of turntable revolutions (33 1/3 rpm) and is filtered
circularly (in the frequency domain, with scipy's Butterworth responses), so it repeats without a
seam; its scratches ("pops") recur once per revolution as on a real record.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import signal

from midilm.audio.pcm import AUDIO_SUFFIXES, read_audio
from midilm.specs.audio import VinylSpec

REVOLUTION_SECONDS = 60.0 / (100.0 / 3.0)  # 1.8 s at 33 1/3 rpm


def synthesize_vinyl(spec: VinylSpec, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A seamless stereo loop of surface hiss, rumble, crackle and pops (float32, frames x 2)."""
    if spec.revolutions < 1:
        raise ValueError(f"vinyl.revolutions={spec.revolutions}: need at least one revolution")
    frames = round(spec.revolutions * REVOLUTION_SECONDS * sample_rate)
    hiss = _circular_filter(
        rng.standard_normal((frames, 2)), sample_rate, ("bandpass", (300.0, 6000.0))
    )
    rumble = _circular_filter(rng.standard_normal((frames, 1)), sample_rate, ("lowpass", 60.0))
    crackle = _circular_filter(
        _clicks(rng, frames, sample_rate, spec.crackle_per_second * frames / sample_rate,
                spec.crackle_db, (0.0002, 0.0012)),
        sample_rate, ("highpass", 1000.0),
    )  # fmt: skip
    pops = _pops(rng, frames, sample_rate, spec)
    loop = (
        _at_rms(hiss, spec.hiss_db)
        + _at_rms(np.repeat(rumble, 2, axis=1), spec.rumble_db)
        + crackle
        + pops
    )
    return loop.astype(np.float32)


def choose_loop(
    loops_dir: str | Path, sample_rate: int, rng: np.random.Generator
) -> tuple[Path, np.ndarray]:
    """One audio file of `loops_dir` (searched recursively, in sorted order) chosen by `rng`."""
    folder = Path(loops_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such loops folder")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(
            f"{folder}: no audio loops ({', '.join(AUDIO_SUFFIXES)}); add some or drop loops_dir "
            "to synthesize the vinyl layer"
        )
    chosen = files[int(rng.integers(len(files)))]
    return chosen, read_audio(chosen, sample_rate)


def _circular_filter(noise: np.ndarray, sample_rate: int, band: tuple[str, object]) -> np.ndarray:
    """Zero-phase Butterworth filtering of a periodic signal (4th order, magnitude response)."""
    kind, cutoff = band
    sos = signal.butter(4, cutoff, btype=kind, fs=sample_rate, output="sos")
    frequencies = np.fft.rfftfreq(noise.shape[0], d=1.0 / sample_rate)
    _, response = signal.sosfreqz(sos, worN=frequencies, fs=sample_rate)
    spectrum = np.fft.rfft(noise, axis=0) * np.abs(response)[:, None]
    return np.fft.irfft(spectrum, n=noise.shape[0], axis=0)


def _at_rms(audio: np.ndarray, db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio**2)))
    return audio * (10 ** (db / 20) / rms) if rms > 0 else audio


def _clicks(
    rng: np.random.Generator,
    frames: int,
    sample_rate: int,
    expected: float,
    median_db: float,
    length_s: tuple[float, float],
) -> np.ndarray:
    """Poisson-timed decaying noise bursts, log-normal peaks around `median_db`, panned at
    random; wrapped around the loop's end."""
    out = np.zeros((frames, 2))
    for _ in range(int(rng.poisson(expected))):
        start = int(rng.integers(frames))
        length = max(4, int(rng.uniform(*length_s) * sample_rate))
        t = np.arange(length)
        burst = rng.standard_normal(length) * np.exp(-t / (length / 4))
        burst *= 10 ** ((median_db + rng.normal(0.0, 5.0)) / 20) / max(np.abs(burst).max(), 1e-9)
        angle = rng.uniform(math.pi / 8, 3 * math.pi / 8)
        index = (start + t) % frames
        out[index, 0] += burst * math.cos(angle)
        out[index, 1] += burst * math.sin(angle)
    return out


def _pops(rng: np.random.Generator, frames: int, sample_rate: int, spec: VinylSpec) -> np.ndarray:
    """Scratches: damped low thumps at fixed points of the record, heard once per revolution."""
    out = np.zeros((frames, 2))
    per_turn = round(REVOLUTION_SECONDS * sample_rate)
    for _ in range(int(rng.poisson(spec.pops_per_revolution))):
        phase = int(rng.integers(per_turn))
        length = int(rng.uniform(0.003, 0.009) * sample_rate)
        t = np.arange(length) / sample_rate
        tone = np.sin(2 * math.pi * rng.uniform(250.0, 900.0) * t) * np.exp(-t / (t[-1] / 3))
        tone[: max(2, length // 20)] += rng.standard_normal(max(2, length // 20)) * 0.5  # the tick
        tone /= max(np.abs(tone).max(), 1e-9)
        peak = 10 ** ((spec.pop_db + rng.normal(0.0, 3.0)) / 20)
        for turn in range(spec.revolutions):
            index = (turn * per_turn + phase + np.arange(length)) % frames
            scale = peak * rng.uniform(0.7, 1.0)  # a scratch is a little different each pass
            out[index, 0] += tone * scale
            out[index, 1] += tone * scale
    return out
