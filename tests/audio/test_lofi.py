"""Seed 001's lo-fi mix on real MIDI: determinism, the length and fade, each drum source and
vinyl source labelled in the metadata, and the synthesized vinyl loop's seam and scratches."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import symusic

from midilm.audio.lofi import PATTERN_LABEL, at_tempo, boom_bap, lofi_mix, piano_layer
from midilm.audio.mixes import write_lofi_mixes
from midilm.audio.pcm import loudness_lufs, write_audio
from midilm.audio.render import MidiRenderError
from midilm.audio.vinyl import REVOLUTION_SECONDS, choose_loop, synthesize_vinyl
from midilm.common.io import write_json_atomic
from midilm.specs.audio import AudioSpec


def test_boom_bap_mix_is_deterministic_and_cut_to_length(
    piano_piece: Path, audio_spec: AudioSpec, tmp_path: Path
):
    meta = lofi_mix(piano_piece, tmp_path / "a.flac", 20.0, seed=3, spec=audio_spec)
    again = lofi_mix(piano_piece, tmp_path / "b.flac", 20.0, seed=3, spec=audio_spec)
    lofi_mix(piano_piece, tmp_path / "c.flac", 20.0, seed=4, spec=audio_spec)
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()
    assert {**meta, "path": None} == {**again, "path": None}
    assert (tmp_path / "a.flac").read_bytes() != (tmp_path / "c.flac").read_bytes()

    assert meta["tempo_bpm"] in audio_spec.lofi.tempi()
    assert meta["drums"]["source"] == "pattern" and meta["drums"]["label"] == PATTERN_LABEL
    assert meta["drums"]["loop_seconds"] == pytest.approx(8 * 60 / meta["tempo_bpm"], abs=1e-3)
    # the piano segment is whole drum loops, and the 8 s piece needs at least one repeat in 20 s
    loops = meta["segment_seconds"] / meta["drums"]["loop_seconds"]
    assert loops == pytest.approx(round(loops), abs=1e-3)
    assert meta["segment_seconds"] >= meta["piano"]["seconds"] and meta["repeats"] > 1
    assert meta["vinyl"]["source"] == "synthesized"

    audio, rate = soundfile.read(str(tmp_path / "a.flac"), dtype="float32")
    assert rate == 44100 and audio.shape == (20 * 44100, 2)
    loudness = meta["loudness"]
    assert loudness["lufs"] == pytest.approx(loudness_lufs(audio, rate), abs=0.3)
    assert loudness["lufs"] <= audio_spec.lofi.loudness_lufs + 0.01
    assert 20 * np.log10(np.abs(audio).max()) <= audio_spec.lofi.peak_dbfs + 0.01
    # a 2 s fade to silence
    tail = audio[-int(0.05 * rate) :]
    body = audio[-int(4 * rate) : -int(2 * rate)]
    assert np.sqrt(np.mean(tail**2)) < 0.05 * np.sqrt(np.mean(body**2))


def test_drums_from_a_drum_midi_and_vinyl_from_a_loops_folder(
    piano_piece: Path, groove_drums: Path, audio_spec: AudioSpec, tmp_path: Path
):
    loops = tmp_path / "loops"
    rng = np.random.default_rng(0)
    for name, seconds in (("crackle_a.wav", 1.5), ("hum_b.flac", 2.5)):
        tone = np.sin(2 * np.pi * 60 * np.arange(int(seconds * 22050)) / 22050)
        noise = 0.05 * rng.standard_normal(tone.shape[0])
        write_audio(loops / name, (0.2 * tone + noise)[:, None], 22050)  # mono, 22.05 kHz
    (loops / "notes.txt").write_text("not audio")
    meta = lofi_mix(
        piano_piece,
        tmp_path / "mix.mp3",
        10.0,
        seed=11,
        drums_midi=groove_drums,
        loops_dir=loops,
        spec=audio_spec,
        drums_label="drum model sample",
    )
    assert meta["drums"] == {
        "source": "midi",
        "label": "drum model sample",
        "midi": str(groove_drums),
        "loop_seconds": meta["drums"]["loop_seconds"],
    }
    # the 8 s Groove take (105 BPM, ~3.5 bars) loops on whole bars at the drawn tempo
    bars = meta["drums"]["loop_seconds"] / (4 * 60 / meta["tempo_bpm"])
    assert bars == pytest.approx(round(bars), abs=1e-3) and 3 <= round(bars) <= 5
    assert meta["vinyl"]["source"] == "loops folder"
    assert Path(meta["vinyl"]["file"]).name in {"crackle_a.wav", "hum_b.flac"}
    assert meta["vinyl"]["loop_seconds"] in (1.5, 2.5)
    assert soundfile.info(str(tmp_path / "mix.mp3")).duration == pytest.approx(10.0, abs=0.1)
    picks = {choose_loop(loops, 44100, np.random.default_rng(s))[0].name for s in range(8)}
    assert picks == {"crackle_a.wav", "hum_b.flac"}  # chosen at random, never notes.txt


def test_bad_inputs_are_named(
    groove_drums: Path, piano_piece: Path, audio_spec: AudioSpec, tmp_path: Path
):
    with pytest.raises(MidiRenderError, match="no pitched"):
        lofi_mix(groove_drums, tmp_path / "x.flac", 5.0, seed=0, spec=audio_spec)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio loops"):
        lofi_mix(
            piano_piece, tmp_path / "x.flac", 5.0, 0, loops_dir=tmp_path / "empty", spec=audio_spec
        )
    with pytest.raises(ValueError, match="positive"):
        lofi_mix(piano_piece, tmp_path / "x.flac", 0.0, seed=0, spec=audio_spec)
    assert not (tmp_path / "x.flac").exists()


def test_boom_bap_pattern_tempo_and_piano_layer(audio_spec: AudioSpec):
    pattern = audio_spec.lofi.drums
    score, seconds = boom_bap(pattern, 90.0)
    assert seconds == pytest.approx(pattern.steps / pattern.steps_per_beat * 60 / 90)
    (track,) = score.tracks
    assert track.is_drum
    kicks = [n.time for n in track.notes if n.pitch == pattern.kick_note]
    step = 480 // pattern.steps_per_beat
    swing = round(pattern.swing * 2 * step)
    assert kicks == [s * step + (swing if s % 4 == 2 else 0) for s in pattern.kick]
    assert len(track.notes) == len(pattern.kick) + len(pattern.snare) + len(pattern.hat)

    piece = symusic.Score(480)
    piece.tempos.append(symusic.Tempo(0, qpm=120.0))
    piece.tempos.append(symusic.Tempo(960, qpm=60.0))
    organ = symusic.Track("organ", program=19)
    organ.notes.append(symusic.Note(0, 480, 60, 80))
    piece.tracks.append(organ)
    piece.tracks.append(track.copy())
    retimed = at_tempo(piece, 90.0)
    assert [round(t.qpm, 3) for t in retimed.tempos] == [90.0, 45.0]
    assert [round(t.qpm, 3) for t in piece.tempos] == [120.0, 60.0]  # a copy
    layer = piano_layer(piece, 0, "piece")
    assert [(t.program, t.is_drum) for t in layer.tracks] == [(0, False)]


def test_synthesized_vinyl_loops_seamlessly_and_scratches_recur(audio_spec: AudioSpec):
    spec, rate = audio_spec.lofi.vinyl, 44100
    loop = synthesize_vinyl(spec, rate, np.random.default_rng(5))
    assert loop.shape == (round(spec.revolutions * REVOLUTION_SECONDS * rate), 2)
    assert np.array_equal(loop, synthesize_vinyl(spec, rate, np.random.default_rng(5)))
    assert not np.array_equal(loop, synthesize_vinyl(spec, rate, np.random.default_rng(6)))
    # the seam (last sample -> first) is an ordinary step of the signal, not a click
    steps = np.abs(np.diff(loop[:, 0]))
    assert abs(loop[0, 0] - loop[-1, 0]) <= np.quantile(steps, 0.999)
    # the hiss sits in its band: little energy under 100 Hz or over 12 kHz beyond rumble/crackle
    spectrum = np.abs(np.fft.rfft(loop[:, 0])) ** 2
    freqs = np.fft.rfftfreq(loop.shape[0], 1 / rate)
    band = spectrum[(freqs > 300) & (freqs < 6000)].sum()
    assert band > 5 * spectrum[freqs > 12000].sum()

    pops_only = dataclasses.replace(
        spec, hiss_db=-200.0, rumble_db=-200.0, crackle_per_second=0.0, pops_per_revolution=3.0
    )
    pops = synthesize_vinyl(pops_only, rate, np.random.default_rng(1))[:, 0]
    turn = round(REVOLUTION_SECONDS * rate)
    first, second = pops[:turn], pops[turn : 2 * turn]
    assert np.abs(first).max() > 0.01
    assert np.corrcoef(first, second)[0, 1] > 0.9  # the same scratches, once per revolution


def test_write_lofi_mixes_skips_bad_samples_and_uses_drum_samples(
    shared_datasets: Path, piano_piece: Path, groove_drums: Path, audio_spec: AudioSpec, tmp_path
):
    """The lofi stage's set: a note-less sample is listed as failed, the next ones are mixed;
    drums come from a drum model's samples in turn, a corrupt one giving way to the pattern."""
    root = tmp_path
    pianos, drums = root / "outputs/samples/piano", root / "outputs/samples/drums"
    pianos.mkdir(parents=True)
    drums.mkdir(parents=True)
    empty = shared_datasets / "miditok_test_midis/tests/MIDIs_one_track/empty.mid"
    corrupt = shared_datasets / "miditok_test_midis/tests/MIDIs_corrupted/ValueError_Control168.mid"
    for folder, files in (
        (pianos, [empty, piano_piece, piano_piece]),
        (drums, [corrupt, groove_drums]),
    ):
        entries = []
        for index, source in enumerate(files):
            (folder / f"sample_{index:03d}.mid").write_bytes(source.read_bytes())
            rel = f"outputs/samples/{folder.name}/sample_{index:03d}.mid"
            entries.append({"file": Path(rel).name, "path": rel})
        write_json_atomic(folder / "samples.json", {"model": folder.name, "samples": entries})
    spec = dataclasses.replace(
        audio_spec, lofi=dataclasses.replace(audio_spec.lofi, mixes=2, seconds=6.0)
    )
    result = write_lofi_mixes(
        pianos / "samples.json", root / "outputs/lofi/piano", spec, seed=5, root=root,
        drums_samples_json=drums / "samples.json",
    )  # fmt: skip
    assert result == json.loads((root / "outputs/lofi/piano/lofi.json").read_text())
    assert [f["piano"] for f in result["failed"]] == ["outputs/samples/piano/sample_000.mid"]
    assert "no notes" in result["failed"][0]["error"]
    first, second = result["mixes"]
    assert [first["id"], second["id"]] == ["mix_000", "mix_001"]
    assert first["piano"]["midi"] == "outputs/samples/piano/sample_001.mid"
    assert first["drums"]["source"] == "pattern" and "drum sample failed" in first["drums"]["label"]
    assert second["drums"]["source"] == "midi"
    assert second["drums"]["midi"] == "outputs/samples/drums/sample_001.mid"
    assert first["seed"] != second["seed"]
    for mix in (first, second):
        flac, mp3 = root / mix["flac"], root / mix["mp3"]
        assert soundfile.info(str(flac)).duration == pytest.approx(6.0)
        assert soundfile.info(str(mp3)).duration == pytest.approx(6.0, abs=0.1)
