"""Channel-wide controllers reach every track of their channel (GiantMIDI ground truth), and
files that need nothing, or that mido cannot read, pass through untouched."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import symusic

from midilm.tokenize.midi_channels import load_score, share_channel_controls


def pedal_counts(score: symusic.Score) -> list[int]:
    return [sum(1 for c in t.controls if c.number == 64) for t in score.tracks]


def test_the_pedal_of_a_channel_reaches_all_its_tracks(shared_datasets: Path) -> None:
    giant = shared_datasets / "giantmidi_piano_eval" / "midis_for_evaluation" / "ground_truth"
    changed, lost = [], []
    for path in sorted(giant.glob("*.mid")):
        plain, shared = symusic.Score(str(path)), load_score(path)
        assert [len(t.notes) for t in plain.tracks] == [len(t.notes) for t in shared.tracks]
        if pedal_counts(plain) != pedal_counts(shared):
            changed.append(path.name)
            assert len(set(pedal_counts(shared))) == 1  # one channel: the same pedal everywhere
            lost += [path.name] if not any(pedal_counts(plain)) else []
    assert len(changed) == 9 and len(lost) == 4
    assert "debussy_pour_le_piano_no_1_dery.mid" in lost  # the pedal was on a track of its own


def test_controls_of_other_channels_stay_apart() -> None:
    midi = mido.MidiFile(ticks_per_beat=480)
    for channel in (0, 1):
        track = mido.MidiTrack()
        track.append(mido.Message("control_change", channel=channel, control=64, value=127))
        track.append(mido.Message("note_on", channel=channel, note=60 + channel, velocity=80))
        track.append(mido.Message("note_off", channel=channel, note=60 + channel, time=480))
        track.append(mido.Message("control_change", channel=channel, control=64, value=0))
        midi.tracks.append(track)
    pedal = mido.MidiTrack([mido.Message("control_change", channel=0, control=7, value=50)])
    midi.tracks.append(pedal)
    out = io.BytesIO()
    midi.save(file=out)
    score = symusic.Score.from_midi(share_channel_controls(out.getvalue()))
    volume = [[c.value for c in t.controls if c.number == 7] for t in score.tracks]
    assert volume == [[50], []] and pedal_counts(score) == [2, 2]


def test_files_with_nothing_to_share_or_unreadable_pass_unchanged(shared_datasets: Path) -> None:
    one_track = shared_datasets / "miditok_test_midis" / "tests" / "MIDIs_one_track"
    data = (one_track / "Maestro_1.mid").read_bytes()
    assert share_channel_controls(data) is data
    assert share_channel_controls(b"MThd garbage") == b"MThd garbage"
    corrupted = shared_datasets / "miditok_test_midis" / "tests" / "MIDIs_corrupted"
    files = sorted(p for p in corrupted.iterdir() if p.is_file())
    assert files
    for path in files:
        bad = path.read_bytes()
        assert isinstance(share_channel_controls(bad), bytes)
