"""Channel-wide controllers in multi-track MIDI files, before symusic splits them away.

In MIDI a controller such as the sustain pedal (CC64), volume (CC7) or expression (CC11) acts on
a *channel*, whatever track stores it. Many files keep the pedal on a track of its own (9 of the
52 GiantMIDI-Piano ground-truth files). symusic reads a file into one track per MIDI track and
channel, has no notion of channels after that, and drops a track without notes, so such a pedal
is lost. `share_channel_controls` copies every channel-wide controller event onto each track
that plays notes on that channel, in the raw file, so that every symusic track carries the
controllers that act on its notes. Read files through it (`load_score`) wherever a controller
matters: the tokenizers read a track's own controls.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import mido
import symusic

# volume, its LSB (read as volume by MIDI-LLM-tokenizer), expression, sustain, all notes off
CHANNEL_CONTROLS = frozenset({7, 11, 39, 64, 123})


def share_channel_controls(data: bytes) -> bytes:
    """`data` (a MIDI file) with each channel-wide controller event (`CHANNEL_CONTROLS`) also
    written to every other track that plays notes on its channel, at the same tick: after the
    track's own events of that tick when it comes from a later track, before them when from an
    earlier one (the order `mido.merge_tracks` gives). Returns `data` itself when nothing is to
    be copied (one track, no shared channel) or when mido cannot read the file (symusic, which
    reads it next, then reports or reads it as it would have)."""
    if len(data) >= 12 and data[:4] == b"MThd" and int.from_bytes(data[10:12], "big") < 2:
        return data  # a single track: nothing to share
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception:  # symusic reports the file; this is only a repair
        return data
    if len(midi.tracks) < 2:
        return data
    timed = [_absolute(track) for track in midi.tracks]
    players: dict[int, set[int]] = defaultdict(set)  # channel -> tracks with notes on it
    for k, track in enumerate(timed):
        for _, msg in track:
            if msg.type in ("note_on", "note_off"):
                players[msg.channel].add(k)
    copies: dict[int, list[tuple[int, int, mido.Message]]] = defaultdict(list)
    for k, track in enumerate(timed):
        for tick, msg in track:
            if msg.type == "control_change" and msg.control in CHANNEL_CONTROLS:
                for j in players.get(msg.channel, ()):
                    if j != k:
                        copies[j].append((tick, k, msg))
    if not copies:
        return data
    for j, extra in copies.items():
        midi.tracks[j] = _merged(timed[j], extra, j)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def load_score(path: str | Path) -> symusic.Score:
    """A MIDI file read by symusic after `share_channel_controls`."""
    return symusic.Score.from_midi(share_channel_controls(Path(path).read_bytes()))


def _absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    now, out = 0, []
    for msg in track:
        now += msg.time
        out.append((now, msg))
    return out


def _merged(
    own: list[tuple[int, mido.Message]], extra: list[tuple[int, int, mido.Message]], index: int
) -> mido.MidiTrack:
    """Track `index`'s events plus copies from other tracks, as delta times; end_of_track last."""
    events = [(tick, index, n, msg) for n, (tick, msg) in enumerate(own)
              if msg.type != "end_of_track"]  # fmt: skip
    events += [(tick, k, n, msg) for n, (tick, k, msg) in enumerate(extra)]
    end = max([tick for tick, _ in own] + [tick for tick, _, _ in extra])
    events.sort(key=lambda e: e[:3])  # by tick, then track order as mido.merge_tracks has it
    track, now = mido.MidiTrack(), 0
    for tick, _, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    return track
