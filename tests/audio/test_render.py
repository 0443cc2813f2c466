"""Rendering with the real FluidSynth and soundfont: pitch, the samples set and its audio.json,
bad MIDI as per-item errors, byte-identical re-runs, soundfont resolution."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from midilm.audio.pcm import loudness_lufs
from midilm.audio.render import render_midi, render_samples
from midilm.audio.soundfont import (
    KNOWN_SOUNDFONTS,
    AudioToolMissing,
    KnownSoundfont,
    fluidsynth_binary,
    resolve_soundfont,
)
from midilm.audio.transcribe import transcribe_audio
from midilm.common.io import write_json_atomic
from midilm.specs.audio import AudioSpec

GIANT = "giantmidi_piano_eval/midis_for_evaluation/giantmidi-piano/"
GIANT += "Bach_Prelude_and_Fugue_in_A-flat_major_BWV862_gCL5Zvnt0TU_a.mid"
CORRUPT = "miditok_test_midis/tests/MIDIs_corrupted/ValueError_Control168.mid"
EMPTY = "miditok_test_midis/tests/MIDIs_one_track/empty.mid"


def held_pitches(audio: Path, spec: AudioSpec) -> dict[int, float]:
    """Seconds each transcribed pitch sounds in `audio`."""
    notes, _ = transcribe_audio(audio, spec.transcribe)
    held: dict[int, float] = defaultdict(float)
    for note in notes:
        held[note.pitch] += note.end - note.start
    return dict(held)


def test_c_major_chord_renders_at_pitch(chord_audio: Path, audio_spec: AudioSpec):
    """Some synthesizers play some soundfonts off-key (symusic 0.5.9 played TimGM6mb an interval
    up); FluidSynth with the default soundfont gives back C4, E4, G4 from both encodings."""
    assert 2.0 < soundfile.info(str(chord_audio.with_suffix(".flac"))).duration < 6.0
    for suffix in (".flac", ".mp3"):
        held = held_pitches(chord_audio.with_suffix(suffix), audio_spec)
        sustained = {p for p, s in held.items() if s >= 1.0}
        assert sustained == {60, 64, 67}, held
        assert all(s < 0.5 for p, s in held.items() if p not in sustained), held  # attack partials


@pytest.fixture(scope="module")
def rendered_set(
    shared_datasets: Path, piano_piece: Path, audio_spec: AudioSpec, tmp_path_factory
) -> tuple[Path, dict[str, Any]]:
    """A generate-stage samples.json of four samples (a real piece, a corrupt file, an empty
    file, a zero-byte file), three continuing one real GiantMIDI piece and one a missing one,
    rendered once into outputs/audio/tiny of a temporary repo."""
    root = tmp_path_factory.mktemp("repo")
    samples_dir = root / "outputs/samples/tiny"
    samples_dir.mkdir(parents=True)
    shutil.copyfile(piano_piece, samples_dir / "sample_000.mid")
    shutil.copyfile(shared_datasets / CORRUPT, samples_dir / "sample_001.mid")
    shutil.copyfile(shared_datasets / EMPTY, samples_dir / "sample_002.mid")
    (samples_dir / "sample_003.mid").write_bytes(b"")
    reference = root / "data/raw/midi/giant/bwv862.mid"
    reference.parent.mkdir(parents=True)
    shutil.copyfile(shared_datasets / GIANT, reference)
    samples = []
    for index in range(4):
        ref = "data/raw/midi/giant/missing.mid" if index == 2 else "data/raw/midi/giant/bwv862.mid"
        samples.append(
            {
                "file": f"sample_{index:03d}.mid",
                "path": f"outputs/samples/tiny/sample_{index:03d}.mid",
                "reference_id": "giant/bwv862" if index != 2 else "giant/missing",
                "reference_path": ref,
                "prompt_tokens": 16,
                "notes": 10,
            }
        )
    write_json_atomic(samples_dir / "samples.json", {"model": "tiny", "samples": samples})
    result = render_samples(
        samples_dir / "samples.json", root / "outputs/audio/tiny", audio_spec, root=root
    )
    return root, result


def test_render_samples_writes_the_audio_json_contract(
    rendered_set: tuple[Path, dict[str, Any]], audio_spec: AudioSpec
):
    root, result = rendered_set
    on_disk = json.loads((root / "outputs/audio/tiny/audio.json").read_text())
    assert on_disk == result
    assert result["model"] == "tiny" and result["sample_rate"] == 44100
    assert result["soundfont"] == {
        "name": "timgm6mb",
        "sha256": resolve_soundfont("timgm6mb").sha256(),
    }
    items = result["items"]
    assert [i["id"] for i in items] == ["sample_000", "sample_001", "sample_002", "sample_003"]

    good = items[0]
    assert good["sample"]["midi"] == "outputs/samples/tiny/sample_000.mid"
    assert good["sample"]["flac"] == "outputs/audio/tiny/sample_000.flac"
    assert good["reference"]["id"] == "giant/bwv862"
    assert good["reference"]["midi"] == "data/raw/midi/giant/bwv862.mid"
    for side, low, high in (("sample", 8.0, 12.0), ("reference", 6.0, 9.0)):
        entry = good[side]
        flac, mp3 = root / entry["flac"], root / entry["mp3"]
        info = soundfile.info(str(flac))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
        assert low <= entry["seconds"] <= high  # the reference is cut at 6 s (+ release)
        assert info.duration == pytest.approx(entry["seconds"], abs=0.01)
        assert soundfile.info(str(mp3)).duration == pytest.approx(entry["seconds"], abs=0.1)
        audio, rate = soundfile.read(str(flac), dtype="float32")
        assert loudness_lufs(audio, rate) == pytest.approx(audio_spec.loudness_lufs, abs=0.3)
        assert entry["lufs"] == pytest.approx(audio_spec.loudness_lufs, abs=0.01)

    # bad MIDI: a clear error per side, the set went on
    assert "not a readable MIDI file" in items[1]["sample"]["error"]
    assert "sample_001.mid" in items[1]["sample"]["error"]
    assert "no notes" in items[2]["sample"]["error"]
    assert "no such MIDI file" in items[2]["reference"]["error"]
    assert "missing.mid" in items[2]["reference"]["error"]
    assert "not a readable MIDI file" in items[3]["sample"]["error"]
    assert result["errors"] == 3
    # a reference several samples continue is rendered once, written per item
    for item in (items[1], items[3]):
        assert item["reference"]["seconds"] == good["reference"]["seconds"]
        assert (root / item["reference"]["flac"]).read_bytes() == (
            root / good["reference"]["flac"]
        ).read_bytes()
    written = sorted(p.name for p in (root / "outputs/audio/tiny").iterdir())
    assert written == sorted(
        ["audio.json", "sample_000.flac", "sample_000.mp3"]
        + [f"reference_{i:03d}.{s}" for i in (0, 1, 3) for s in ("flac", "mp3")]
    )


def test_render_is_byte_identical_in_a_fresh_process(
    rendered_set: tuple[Path, dict[str, Any]], audio_spec: AudioSpec
):
    """A re-run (a new process, as `dvc repro` does) writes the same bytes, MP3 included."""
    root, _ = rendered_set
    out = root / "outputs/audio/tiny"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = (
        "import dataclasses, sys\n"
        "from midilm.audio.render import render_samples\n"
        "from midilm.specs.audio import load_audio_spec\n"
        "spec = dataclasses.replace(load_audio_spec(), reference_seconds=float(sys.argv[2]))\n"
        "render_samples(sys.argv[1] + '/outputs/samples/tiny/samples.json',\n"
        "               sys.argv[1] + '/outputs/audio/tiny', spec, root=sys.argv[1])\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(root), str(audio_spec.reference_seconds)],
        check=True,
        env={"MIDILM_NO_PROGRESS": "1", "PATH": str(Path(fluidsynth_binary()).parent)},
    )
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after.keys() == before.keys()
    assert [n for n in before if before[n] != after[n]] == []


def test_soundfont_by_name_path_and_clear_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    packaged = resolve_soundfont("timgm6mb")
    assert packaged.path == Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    assert resolve_soundfont(str(packaged.path)).name == "TimGM6mb"
    assert len(packaged.sha256()) == 64

    monkeypatch.setitem(
        KNOWN_SOUNDFONTS,
        "not-installed",
        KnownSoundfont("some-soundfont-package", (str(tmp_path / "gone.sf2"),), "test"),
    )
    with pytest.raises(AudioToolMissing, match="apt-get install some-soundfont-package"):
        resolve_soundfont("not-installed")
    with pytest.raises(AudioToolMissing, match="known name"):
        resolve_soundfont("no-such-font")
    with pytest.raises(AudioToolMissing, match="does not exist"):
        resolve_soundfont(str(tmp_path / "missing.sf2"))

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AudioToolMissing, match="apt-get install fluidsynth"):
        fluidsynth_binary()


def test_other_settings_change_the_render(chord_midi: Path, audio_spec: AudioSpec, tmp_path: Path):
    """loudness_lufs: null keeps FluidSynth's own level; the gain then scales it."""
    raw = dataclasses.replace(audio_spec, loudness_lufs=None)
    render_midi(chord_midi, tmp_path / "g05", raw)
    render_midi(chord_midi, tmp_path / "g10", dataclasses.replace(raw, gain=1.0))
    quiet, _ = soundfile.read(str(tmp_path / "g05.flac"), dtype="float32")
    loud, _ = soundfile.read(str(tmp_path / "g10.flac"), dtype="float32")
    ratio = np.abs(loud).max() / np.abs(quiet).max()
    assert ratio == pytest.approx(2.0, rel=0.05)
