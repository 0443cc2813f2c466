"""Audio fixtures: the conf's spec, the real soundfont (skip only when it is not installed) and
short real MIDI pieces from ../shared/datasets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import symusic

from midilm.audio.render import clip_seconds, load_score, render_midi
from midilm.audio.soundfont import AudioToolMissing, fluidsynth_binary, resolve_soundfont
from midilm.specs.audio import AudioSpec, load_audio_spec


@pytest.fixture(scope="session")
def audio_spec() -> AudioSpec:
    """conf/audio/default.yaml with a short reference cut (tests stay fast)."""
    spec = load_audio_spec()
    try:
        fluidsynth_binary()
        resolve_soundfont(spec.soundfont)
    except AudioToolMissing as exc:
        pytest.skip(f"audio tools not installed here: {exc}")
    return dataclasses.replace(spec, reference_seconds=6.0)


def c_major_chord(path: Path, seconds: float = 2.0) -> Path:
    """C4-E4-G4 held for `seconds` on a piano (program 0) at 120 BPM."""
    score = symusic.Score(480)
    track = symusic.Track("piano", program=0)
    for pitch in (60, 64, 67):
        track.notes.append(symusic.Note(0, round(seconds * 960), pitch, 90))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


@pytest.fixture(scope="session")
def chord_midi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return c_major_chord(tmp_path_factory.mktemp("chord") / "c_major.mid")


@pytest.fixture(scope="session")
def chord_audio(
    chord_midi: Path, audio_spec: AudioSpec, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The chord rendered to chord.flac and chord.mp3 (returns the stem)."""
    stem = tmp_path_factory.mktemp("chord_audio") / "chord"
    render_midi(chord_midi, stem, audio_spec)
    return stem


@pytest.fixture(scope="session")
def piano_piece(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 8 s of a real MAESTRO performance (MidiTok's test files)."""
    source = shared_datasets / "miditok_test_midis/tests/MIDIs_one_track/Maestro_1.mid"
    out = tmp_path_factory.mktemp("piano") / "maestro_8s.mid"
    clip_seconds(load_score(source), 8.0).dump_midi(str(out))
    return out


@pytest.fixture(scope="session")
def groove_drums(shared_datasets: Path) -> Path:
    """A real 8 s drum performance (Groove MIDI Dataset, rock at 105 BPM, 4/4)."""
    return shared_datasets / "groove/drummer3/session1/2_rock_105_beat_4-4.mid"
