"""basic-pitch on its bundled ONNX model: WAV/FLAC/MP3 in, MIDI out, thresholds as parameters,
deterministic, unreadable audio named."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import symusic

from midilm.audio.pcm import AudioReadError, read_audio, write_audio
from midilm.audio.transcribe import transcribe, transcribe_audio
from midilm.specs.audio import AudioSpec


def test_transcribe_writes_the_notes_it_hears(chord_audio: Path, audio_spec: AudioSpec, tmp_path):
    wav = tmp_path / "chord.wav"  # a third container, at another rate
    write_audio(wav, read_audio(chord_audio.with_suffix(".flac"), 22050), 22050)
    info = transcribe(wav, tmp_path / "chord.mid", audio_spec.transcribe)
    notes, _ = transcribe_audio(wav, audio_spec.transcribe)
    assert info["notes"] == len(notes) > 0 and {60, 64, 67} <= set(info["pitches"])
    score = symusic.Score(str(tmp_path / "chord.mid"))
    assert sorted(n.pitch for t in score.tracks for n in t.notes) == sorted(n.pitch for n in notes)
    again, _ = transcribe_audio(wav, audio_spec.transcribe)
    assert again == notes  # deterministic
    assert "tensorflow" not in sys.modules  # the ONNX model, no TensorFlow


def test_thresholds_are_parameters(chord_audio: Path, audio_spec: AudioSpec):
    flac = chord_audio.with_suffix(".flac")
    default, _ = transcribe_audio(flac, audio_spec.transcribe)
    strict = dataclasses.replace(audio_spec.transcribe, onset_threshold=0.95, frame_threshold=0.9)
    loose = dataclasses.replace(audio_spec.transcribe, onset_threshold=0.2, frame_threshold=0.1)
    assert len(transcribe_audio(flac, strict)[0]) < len(default)
    assert len(transcribe_audio(flac, loose)[0]) > len(default)
    above_c4 = dataclasses.replace(audio_spec.transcribe, minimum_hz=300.0)  # C4 262, E4 330 Hz
    pitches = {n.pitch for n in transcribe_audio(flac, above_c4)[0]}
    assert 60 not in pitches and {64, 67} <= pitches


def test_unreadable_audio_is_named(audio_spec: AudioSpec, tmp_path: Path):
    with pytest.raises(AudioReadError, match="no such audio file"):
        transcribe_audio(tmp_path / "missing.wav", audio_spec.transcribe)
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all")
    with pytest.raises(AudioReadError, match=r"notes\.mp3: cannot decode"):
        transcribe(text, tmp_path / "out.mid", audio_spec.transcribe)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros((0, 2), dtype=np.int16), 44100)
    with pytest.raises(AudioReadError, match="no samples"):
        transcribe(empty, tmp_path / "out.mid", audio_spec.transcribe)
    assert not (tmp_path / "out.mid").exists()
