"""The audio parameters (conf/audio/default.yaml) as frozen dataclasses, read once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from midilm.common.spec import ConfigError, from_mapping, section

CONF_FILE = "conf/audio/default.yaml"
DEFAULT_CONF = Path(__file__).resolve().parents[3] / CONF_FILE


@dataclass(frozen=True)
class LayerGains:
    """Gain of each lo-fi layer in dB, applied after every layer is brought to `layer_lufs`."""

    piano: float
    drums: float
    vinyl: float


@dataclass(frozen=True)
class DrumPatternSpec:
    """The plain boom-bap pattern: steps of a loop, and which steps each drum plays."""

    steps_per_beat: int
    steps: int
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    kick_note: int
    snare_note: int
    hat_note: int
    velocities: tuple[int, int, int]
    swing: float


@dataclass(frozen=True)
class VinylSpec:
    """The synthesized vinyl layer: surface hiss, rumble, crackle and once-per-turn pops."""

    revolutions: int
    hiss_db: float
    rumble_db: float
    crackle_per_second: float
    crackle_db: float
    pops_per_revolution: float
    pop_db: float


@dataclass(frozen=True)
class LofiSpec:
    seconds: float
    mixes: int
    piano_model: str | None  # whose samples are the piano (null: params `main_model`)
    drum_model: str | None  # a model trained on drums (e.g. dataset=groove); null: the pattern
    loops_dir: str | None  # a folder of the user's own vinyl/sfx loops; null: synthesized
    tempo_bpm: tuple[float, float]
    tempo_step: float
    piano_program: int | None
    layer_lufs: float
    gains_db: LayerGains
    fade_seconds: float
    loudness_lufs: float
    peak_dbfs: float
    drums: DrumPatternSpec
    vinyl: VinylSpec

    def tempi(self) -> list[float]:
        """The tempos a mix draws from: tempo_bpm[0], + tempo_step, ... up to tempo_bpm[1]."""
        low, high = self.tempo_bpm
        if low <= 0 or high < low or self.tempo_step <= 0:
            raise ConfigError(
                f"{CONF_FILE}: lofi.tempo_bpm {list(self.tempo_bpm)} / tempo_step "
                f"{self.tempo_step}: need 0 < low <= high and a positive step"
            )
        count = int((high - low) // self.tempo_step) + 1
        return [low + i * self.tempo_step for i in range(count)]


@dataclass(frozen=True)
class TranscribeSpec:
    """basic-pitch's note-creation thresholds (its `predict` arguments)."""

    onset_threshold: float
    frame_threshold: float
    minimum_note_ms: float
    minimum_hz: float | None
    maximum_hz: float | None
    melodia_trick: bool
    midi_tempo: float


@dataclass(frozen=True)
class MusicgenSpec:
    model: str
    device: str
    prompt_seconds: float
    guidance_scale: float
    top_k: int
    temperature: float


@dataclass(frozen=True)
class AudioSpec:
    soundfont: str
    sample_rate: int
    gain: float
    loudness_lufs: float | None
    peak_dbfs: float
    reference_seconds: float
    mp3_quality: float
    lofi: LofiSpec
    transcribe: TranscribeSpec
    musicgen: MusicgenSpec

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 192000:
            raise ConfigError(f"{CONF_FILE}: sample_rate {self.sample_rate} outside 8000..192000")
        if not 0.0 <= self.mp3_quality <= 1.0:
            raise ConfigError(f"{CONF_FILE}: mp3_quality {self.mp3_quality} outside 0..1")
        if self.reference_seconds <= 0:
            raise ConfigError(f"{CONF_FILE}: reference_seconds must be positive")


def audio_spec(params: Mapping[str, Any]) -> AudioSpec:
    """The `audio` group of params.yaml."""
    return from_mapping(AudioSpec, section(params, "audio", where=CONF_FILE), CONF_FILE)


def load_audio_spec(path: str | Path = DEFAULT_CONF) -> AudioSpec:
    """The spec straight from a conf file (the library's callers outside the DAG)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no audio conf file; pass an AudioSpec or a conf path")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{path}: expected a mapping of audio parameters")
    return from_mapping(AudioSpec, cfg, str(path))
