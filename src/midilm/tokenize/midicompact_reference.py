"""MIDICompact's reference-compatible mode: MIDI-LLM-tokenizer's encoder, event for event.

The reference (briansemrau/MIDI-LLM-tokenizer, MIT, piano configuration) walks the file's
messages merged into one stream and keeps per-channel state. Its observable rules, emulated
here on a symusic score read through `midi_channels.load_score` (tracks with the same
channel-wide controllers share one channel's state, see `_channels`):

- time: each message adds ``ticks * (tempo * 1e-6 / tpq) * 1000.0`` ms to a running gap (the
  same floating-point operations, so half-step ties round alike); a note event turns the gap
  into waits, ``t125`` per whole second (at most ten, a longer gap is cut to 10 s) and the rest
  rounded half down to 8 ms steps, then resets it, so rounding drifts and a gap under 4 ms
  vanishes; the first event of a segment has no wait before it;
- events with no wait between them form one time step, written sorted by note and then by
  arrival (so a re-strike keeps its order, and a zero-length note is an on then an off);
- note-on: velocity x volume/127 x expression/127 (CC7, and CC39 read as volume; CC11) to a bin;
  a note-on of a note already sounding is written again with no note-off (a re-strike);
- note-off: written at once, or, while the channel's pedal (CC64 >= 64) is down, when it is
  released, unless the note is struck again before; a note-off of a silent note is written too;
  CC123 (all notes off) ends every sounding note of every channel;
- only piano programs count (`PIANO_PROGRAMS`), never channel 10; other notes only delay;
- segments: before a note event, a gap over `max_silence_s` with no note held anywhere ends the
  segment with ``<end>`` and starts a new one; a segment whose waits add up to no more than
  `min_segment_s` is dropped.

What a score cannot carry is not emulated: note-offs without a note-on, note-ons never released
(symusic drops both), the order of messages that share a tick (taken as: tempo, controllers,
note-offs, note-ons, ends of zero-length notes, track by track), and which track of a channel
stored a controller (a channel spread over several tracks has its pedal and all-notes-off act
after those tracks' notes of the tick, its volume before them). docs/midicompact.md has the
comparison on real files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import symusic

from midilm.tokenize.midi_channels import CHANNEL_CONTROLS
from midilm.tokenize.velocity import quantize_velocity

if TYPE_CHECKING:
    from midilm.tokenize.midicompact import MidiCompactTokenizer

# programs the reference's piano configuration maps to its one instrument bin
PIANO_PROGRAMS = frozenset([*range(0, 8), *range(17, 24)])
MAX_GAP_WAITS = 10  # the reference cuts a gap to ten maximal waits
START_TEMPO = 500000  # microseconds per quarter before the first tempo event
# kinds of events, in their order within one tick of one track
_CONTROL, _OFF, _ON, _ZERO_OFF, _TICK = 0, 1, 2, 3, 4


def reference_segments(
    tokenizer: MidiCompactTokenizer, score: symusic.Score, split: bool
) -> list[list[int]]:
    """The reference's sequences of `score`, each `<start>` ... `<end>` ids: cut at long
    silences and filtered by length when `split`, else the whole piece as one sequence."""
    tick = score if score.ttype == symusic.TimeUnit.tick else score.to("tick")
    channels = _channels(tick)
    encoder = _ReferenceEncoder(tokenizer, tick, channels, split)
    for when, event in _event_stream(tick, channels):
        encoder.advance(when)
        encoder.feed(event)
    return encoder.finish()


def _event_stream(score: symusic.Score, channels: list[int]) -> Iterator[tuple[int, tuple]]:
    """(tick, event) in the order the reference would meet them: by tick, then track (global
    events as track -1), then kind, then file order. Events: ("tempo", mspq), ("tick",) for a
    message that only moves time, ("cc", track, number, value), ("on", track, pitch, velocity),
    ("off", track, pitch)."""
    rows: list[tuple[int, int, int, int, tuple]] = []
    for t in score.tempos:
        rows.append((t.time, -1, _CONTROL, len(rows), ("tempo", t.mspq)))
    for group in (score.time_signatures, score.key_signatures, score.markers):
        rows += [(e.time, -1, _TICK, len(rows), ("tick",)) for e in group]
    for k, track in enumerate(score.tracks):
        rows += [(e.time, k, _TICK, len(rows), ("tick",)) for e in track.pitch_bends]
        rows += [(e.time, k, _TICK, len(rows), ("tick",)) for e in track.lyrics]
        group = [j for j, ch in enumerate(channels) if ch == channels[k]]
        for c in track.controls:
            if c.number not in CHANNEL_CONTROLS:
                rows.append((c.time, k, _CONTROL, len(rows), ("cc", k, c.number, c.value)))
            elif k == group[-1]:  # a channel's controllers act once
                place = k + 0.5 if len(group) > 1 and c.number in (64, 123) else group[0]
                rows.append((c.time, place, _CONTROL, len(rows), ("cc", k, c.number, c.value)))
        notes = track.notes.numpy()
        for start, dur, pitch, vel in zip(
            notes["time"].tolist(), notes["duration"].tolist(), notes["pitch"].tolist(),
            notes["velocity"].tolist(), strict=True,
        ):  # fmt: skip
            rows.append((start, k, _ON, len(rows), ("on", k, pitch, vel)))
            end_kind = _ZERO_OFF if dur == 0 else _OFF
            rows.append((start + dur, k, end_kind, len(rows), ("off", k, pitch)))
    rows.sort(key=lambda r: r[:4])
    return ((r[0], r[4]) for r in rows) if rows else iter(())


class _ReferenceEncoder:
    """The reference's state machine, fed one event at a time (see the module docstring)."""

    def __init__(
        self,
        tokenizer: MidiCompactTokenizer,
        score: symusic.Score,
        channels: list[int],
        split: bool,
    ) -> None:
        c = tokenizer.config
        self.tok, self.cfg, self.split = tokenizer, c, split
        self.tpq = score.ticks_per_quarter
        tracks = score.tracks
        self.valid = [not t.is_drum and t.program in PIANO_PROGRAMS for t in tracks]
        self.program = [t.program for t in tracks]
        self.channel = channels
        n = max(self.channel, default=-1) + 1
        self.held: list[dict[int, int]] = [{} for _ in range(n)]  # pitch -> track, not ended
        self.pedal = [False] * n
        self.pending: list[dict[tuple[int, int], int]] = [{} for _ in range(n)]  # (pitch, prog)
        self.volume = [127] * n
        self.expression = [127] * n
        self.tempo, self.last_tick, self.gap_ms = float(START_TEMPO), 0, 0.0
        self.started, self.length_ms = False, 0.0
        self.segments: list[list[int]] = []
        self.current = [tokenizer.bos_id]
        self.step: list[tuple[int, float]] = []  # (pitch, velocity) since the last wait

    def advance(self, tick: int) -> None:
        """Add the time since the last event to the running gap with mido's and the
        reference's floating-point operations (the tempo in effect before this event)."""
        if tick > self.last_tick:
            scale = self.tempo * 1e-6 / self.tpq
            self.gap_ms += (tick - self.last_tick) * scale * 1000.0
            self.last_tick = tick

    def feed(self, event: tuple) -> None:
        """One event at the current tick (`advance` first)."""
        kind = event[0]
        if kind == "tempo":
            self.tempo = float(event[1])
        elif kind == "cc":
            self._control(*event[1:])
        elif kind == "on":
            _, k, pitch, velocity = event
            ch = self.channel[k]
            self.pending[ch].pop((pitch, self.program[k]), None)
            mixed = velocity * (self.volume[ch] / 127.0) * (self.expression[ch] / 127.0)
            self._note(k, pitch, mixed)
            self.held[ch][pitch] = k
        elif kind == "off":
            self._note_off(event[1], event[2])

    def finish(self) -> list[list[int]]:
        self._flush()
        self._close()
        return self.segments

    # --- events -------------------------------------------------------------------------------

    def _control(self, k: int, number: int, value: int) -> None:
        ch = self.channel[k]
        if number in (7, 39):
            self.volume[ch] = value
        elif number == 11:
            self.expression[ch] = value
        elif number == 64:
            self.pedal[ch] = value >= 64
            if not self.pedal[ch]:
                for (pitch, _), j in list(self.pending[ch].items()):
                    self._note_off(j, pitch)
                self.pending[ch] = {}
        elif number == 123:
            for notes in self.held:
                for pitch, j in list(notes.items()):
                    self._note_off(j, pitch)

    def _note_off(self, k: int, pitch: int) -> None:
        ch = self.channel[k]
        if self.pedal[ch]:
            self.pending[ch].setdefault((pitch, self.program[k]), k)
            return
        self._note(k, pitch, 0.0)
        self.held[ch].pop(pitch, None)

    def _note(self, k: int, pitch: int, velocity: float) -> None:
        """A note event of track `k` (velocity 0: note-off): waits before it, maybe a cut."""
        if not self.valid[k]:
            return
        silence = self.gap_ms > self.cfg.max_silence_s * 1000.0
        if self.split and silence and not any(self.held):  # nothing held on any channel
            self._flush()
            self._close()
            self.current, self.length_ms, self.started = [self.tok.bos_id], 0.0, False
        if self.started:
            waits = self._waits(self.gap_ms)
            if waits:
                self._flush()
                self.length_ms += self.gap_ms
                self.current += waits
        self.gap_ms = 0.0
        self.step.append((pitch, velocity))
        self.started = True

    # --- output -------------------------------------------------------------------------------

    def _waits(self, gap_ms: float) -> list[int]:
        """Wait ids for a gap: whole maximal waits (at most ten), then the rest rounded half
        down to steps (nothing for a rest under half a step)."""
        if gap_ms == 0.0:
            return []
        c = self.cfg
        longest = c.max_wait_ms
        step = longest / c.wait_events
        gap_ms = min(gap_ms, longest * MAX_GAP_WAITS)
        ids = [self.tok.wait_offset + _round_half_down(longest / step)] * math.floor(
            gap_ms / longest
        )
        rest = _round_half_down((gap_ms % longest) / step)
        return [*ids, self.tok.wait_offset + rest] if rest > 0 else ids

    def _flush(self) -> None:
        """Write the time step's note events, sorted by note then arrival."""
        if not self.step:
            return
        self.step.sort(key=lambda e: e[0])  # stable: arrival order within a note
        pitches = np.asarray([p for p, _ in self.step], dtype=np.int64)
        bins = quantize_velocity([v for _, v in self.step], *self.tok.velocity_args)
        ids = self.tok.note_offset + pitches * self.cfg.velocity_bins + bins
        self.current += ids.tolist()
        self.step = []

    def _close(self) -> None:
        self.current.append(self.tok.eos_id)
        if not self.split or self.length_ms > self.cfg.min_segment_s * 1000.0:
            self.segments.append(self.current)


def _channels(score: symusic.Score) -> list[int]:
    """A channel number for each track: tracks with the same drum flag and the same
    channel-wide controller events (`midi_channels.CHANNEL_CONTROLS`, which
    `share_channel_controls` gives every track of a channel) share channel state. Tracks of
    different channels that happen to match share it too; that changes nothing unless both
    have the pedal down on the same note at once."""
    keys: dict[tuple, int] = {}
    out = []
    for track in score.tracks:
        controls = tuple(
            sorted(
                (c.time, c.number, c.value) for c in track.controls if c.number in CHANNEL_CONTROLS
            )
        )
        out.append(keys.setdefault((track.is_drum, controls), len(keys)))
    return out


def _round_half_down(x: float) -> int:
    """The reference's rounding: ceil(x - 0.5), so 12.5 -> 12 and 12.51 -> 13."""
    return math.ceil(x - 0.5)
