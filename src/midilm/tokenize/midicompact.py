"""MIDICompact (seed 001 §3-4): the piano vocabulary of the MIT "MIDI-LLM-tokenizer".

One token per note event, ``<note hex>:<velocity bin hex>`` (bin 0 = note-off), and wait tokens
``t1``..``t125`` of 8 ms each (125 waits up to 1000 ms; a longer gap is several waits). Ids:
``<pad>`` 0, ``<start>`` 1, ``<end>`` 2, ``t{k}`` = 2 + k (3..127), ``{note:x}:{bin:x}`` =
128 + 16 * note + bin (128..2175): 128 * 16 + 125 + 3 = 2176 tokens, the reference's ids.

Time is real time: a score is read in seconds and every event is rounded to the 8 ms grid (absolute
times, so rounding never drifts). Decoding writes ticks at a fixed 120 BPM with 500 ticks per
quarter, so one tick is exactly 1 ms and one wait step 8 ticks. Velocities go through
`quantize_velocity` (16 bins, exponential curve), after channel volume (CC7) and expression (CC11)
scale them (`volume_scaling`). All tracks merge into one (drums only with `include_drums`); the
sustain pedal (CC64 >= 64) holds note-offs until it is released; a note struck again while it
sounds needs no note-off (the new note-on ends it, as in the reference). A track's controllers
are those stored with it: read multi-track files through `midilm.tokenize.midi_channels` so
that a channel's pedal reaches all its tracks.

`encode_segments` cuts a piece at silences longer than `max_silence_s` with no held note, each
segment framed ``<start>`` ... ``<end>``: what the thesis trained on. `reference_mode` switches
to an emulation of the reference's event-by-event encoder (`midicompact_reference`), whose ids
equal MIDI-LLM-tokenizer's; docs/midicompact.md lists every difference between the two modes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import symusic

from midilm.tokenize.base import MAX_TICK, DecodeError, as_id, check_text
from midilm.tokenize.named_vocab import NamedVocabTokenizer, check_include_drums, encoded_tracks
from midilm.tokenize.velocity import dequantize_velocity, quantize_velocity

FAMILY = "midicompact"
SPECIALS = ("<pad>", "<start>", "<end>")
NOTES = 128
DECODE_TPQ = 500  # ticks per quarter of decoded scores: at 120 BPM one tick is 1 ms
DECODE_QPM = 120.0
SUSTAIN, VOLUME, EXPRESSION = 64, 7, 11


@dataclass(frozen=True)
class MidiCompactConfig:
    """Options of conf/tokenizer/midicompact.yaml (`midicompact:` block)."""

    velocity_bins: int = 16
    velocity_exp: float = 0.33
    velocity_events: int = 128
    wait_events: int = 125
    max_wait_ms: int = 1000
    include_drums: bool | str = "auto"  # true, false, or auto: only a piece without pitched notes
    sustain_pedal: bool = True
    volume_scaling: bool = True  # velocity x CC7/127 x CC11/127, as the thesis and reference do
    max_silence_s: float = 10.0  # encode_segments: a longer silence with no held note splits
    min_segment_s: float = 0.0  # encode_segments: a segment must last longer (reference: 30)
    end_held_note_s: float = 5.0  # decode: a note held longer is released
    fix_repeated_notes: bool = True
    reference_mode: bool = False  # emulate MIDI-LLM-tokenizer event for event (its ids)

    @property
    def step_s(self) -> float:
        """Seconds of one wait step (8 ms by default)."""
        return self.max_wait_ms / self.wait_events / 1000.0


class MidiCompactTokenizer(NamedVocabTokenizer):
    """MIDICompact as a MusicTokenizer, plus `encode_segments`, `to_text` and `from_text`."""

    FAMILY = FAMILY
    CONFIG = MidiCompactConfig
    CONFIG_SOURCE = "conf/tokenizer/midicompact.yaml (`midicompact:` block)"

    def __init__(self, config: MidiCompactConfig | None = None, name: str | None = None) -> None:
        self.name = name or FAMILY
        self.config = config or MidiCompactConfig()
        c = self.config
        check_include_drums(c.include_drums, self.CONFIG_SOURCE)
        self.wait_offset = len(SPECIALS) - 1  # t{k} -> id 2 + k
        self.note_offset = len(SPECIALS) + c.wait_events
        names = list(SPECIALS) + [f"t{k}" for k in range(1, c.wait_events + 1)]
        names += [f"{n:x}:{b:x}" for n in range(NOTES) for b in range(c.velocity_bins)]
        self._set_names(names)
        self._step_ticks = round(c.step_s * DECODE_QPM / 60.0 * DECODE_TPQ)
        self._held_steps = round(c.end_held_note_s / c.step_s)
        # the last onset step whose note (at most _held_steps long) still ends by MAX_TICK
        self._max_step = MAX_TICK // self._step_ticks - self._held_steps

    # --- the protocol -------------------------------------------------------------------------

    def encode_array(self, score: symusic.Score) -> np.ndarray:
        """The whole piece as one stream (no `<start>`/`<end>`): from time 0, every silence as
        waits; in reference mode as the reference writes one piece with no split."""
        if self.config.reference_mode:
            from midilm.tokenize.midicompact_reference import reference_segments

            (segment,) = reference_segments(self, score, split=False)
            return np.asarray(segment[1:-1], dtype=np.int64)
        time, pitch, bin_, _ = self._events(score)
        return self._tokens(time, pitch, bin_, start=0)

    def encode_segments(self, score: symusic.Score) -> list[list[int]]:
        """The piece cut at each silence with no held note longer than `max_silence_s`, each
        segment `<start>` ids `<end>`, starting at its first event; segments no longer than
        `min_segment_s` are left out. What seed 001 trained on (one sequence per segment)."""
        c = self.config
        if c.reference_mode:
            from midilm.tokenize.midicompact_reference import reference_segments

            return reference_segments(self, score, split=True)
        time, pitch, bin_, sounding = self._events(score)
        if not len(time):
            return []
        gap = np.diff(time) * c.step_s > c.max_silence_s
        cuts = np.flatnonzero(gap & (sounding[:-1] == 0)) + 1
        segments = []
        for a, b in itertools.pairwise([0, *cuts.tolist(), len(time)]):
            if (time[b - 1] - time[a]) * c.step_s <= c.min_segment_s:
                continue
            ids = self._tokens(time[a:b], pitch[a:b], bin_[a:b], start=int(time[a])).tolist()
            segments.append([self.bos_id, *ids, self.eos_id])
        return segments

    def decode_with_report(self, ids: Sequence[int]) -> tuple[symusic.Score, int]:
        """(score, dropped): ids out of range and note-offs of silent notes are dropped and
        counted; specials are skipped; notes still sounding at the end are closed there. A
        non-integer id, or waits past the last tick a MIDI file holds, raise DecodeError."""
        c = self.config
        now, dropped = 0, 0
        sounding: dict[int, tuple[int, int]] = {}  # pitch -> (onset step, velocity)
        rows: list[tuple[int, int, int, int]] = []  # (onset, duration, pitch, velocity) in steps
        levels = np.maximum(dequantize_velocity(np.arange(c.velocity_bins), *self.velocity_args), 1)
        levels = levels.tolist()
        for position, raw in enumerate(ids):
            i = as_id(raw, position)
            if not 0 <= i < self.vocab_size:
                dropped += 1
            elif i < len(SPECIALS):
                continue
            elif i < self.note_offset:
                now += i - self.wait_offset
                if now > self._max_step:
                    raise DecodeError(
                        f"token {self._names[i]} at position {position} takes the piece past "
                        f"{self._max_step * c.step_s:.0f} s, the longest a MIDI file can hold"
                    )
                for p, (on, v) in list(sounding.items()):
                    if now - on > self._held_steps:  # end held note delay
                        rows.append((on, self._held_steps, p, v))
                        del sounding[p]
            else:
                pitch, b = divmod(i - self.note_offset, c.velocity_bins)
                if b == 0:
                    on, v = sounding.pop(pitch, (now, 0))
                    if now > on:
                        rows.append((on, now - on, pitch, v))
                    else:
                        dropped += 1  # nothing sounding, or a note with no length
                    continue
                if pitch in sounding:
                    if not c.fix_repeated_notes:
                        dropped += 1
                        continue
                    on, v = sounding.pop(pitch)
                    if now > on:
                        rows.append((on, now - on, pitch, v))
                    else:
                        dropped += 1  # the same note struck twice at once: keep the last
                sounding[pitch] = (now, int(levels[b]))
        for p, (on, v) in sounding.items():  # a truncated sequence: close at its end
            rows.append((on, min(max(now - on, 1), self._held_steps), p, v))
        return self._score(rows), dropped

    # --- text form -----------------------------------------------------------------------------

    def to_text(self, ids: Sequence[int]) -> str:
        """Space-separated token names; ids out of range are left out."""
        n = self.vocab_size
        checked = (as_id(raw, k) for k, raw in enumerate(ids))
        return " ".join(self._names[i] for i in checked if 0 <= i < n)

    def from_text_with_report(self, text: str) -> tuple[list[int], int]:
        """(ids, dropped): unknown words are dropped and counted; text that is not a str
        raises DecodeError."""
        words = check_text(text).split()
        ids = [self._vocab[w] for w in words if w in self._vocab]
        return ids, len(words) - len(ids)

    # --- what the encoding does to a piece -----------------------------------------------------

    def transformed(self, score: symusic.Score) -> symusic.Score:
        """The piece with this encoding's documented transformations and nothing else, in real
        time (not on the grid): tracks merged (drums per `include_drums`), the pedal applied,
        velocities scaled by volume and expression, notes that scale to silence dropped, a
        re-struck note ending the sounding one, notes cut at `end_held_note_s`. Round-trip F1
        compares decoded pieces with this."""
        start, end, pitch, vel = self._raw_notes(score)
        keep = quantize_velocity(vel, *self.velocity_args) > 0
        start, end, pitch, vel = start[keep], end[keep], pitch[keep], vel[keep]
        start, end, pitch, vel, _ = _one_sounding_per_pitch(start, end, pitch, vel)
        end = np.minimum(end, start + self.config.end_held_note_s)
        velocity = np.clip(np.rint(vel), 1, 127).astype(np.int8)
        result = symusic.Score(DECODE_TPQ)
        result.tempos.append(symusic.Tempo(0, qpm=DECODE_QPM))
        track = symusic.Track("Piano", 0, False)
        if len(start):
            ms = 1000.0  # 1 tick = 1 ms at 500 ticks per quarter and 120 BPM
            track.notes = symusic.Note.from_numpy(
                np.rint(start * ms).astype(np.int32),
                np.maximum(np.rint((end - start) * ms), 1).astype(np.int32),
                pitch.astype(np.int8),
                velocity,
                "tick",
            )
        result.tracks.append(track)
        return result

    def snap_to_grid(self, score: symusic.Score) -> symusic.Score:
        """The score as this tokenizer sees it (merged, pedal applied, 8 ms grid, binned
        velocities, held notes cut): `decode(encode(s)) == snap_to_grid(s)` note for note."""
        on, off, pitch, bin_, _ = self._notes(score)
        dur = np.minimum(off - on, self._held_steps)
        vel = np.maximum(dequantize_velocity(bin_, *self.velocity_args), 1)
        rows = list(zip(on.tolist(), dur.tolist(), pitch.tolist(), vel.tolist(), strict=True))
        return self._score(rows)

    # --- internals -----------------------------------------------------------------------------

    @property
    def velocity_args(self) -> tuple[int, float, int]:
        """(bins, exp, events): the velocity curve's arguments."""
        c = self.config
        return c.velocity_bins, c.velocity_exp, c.velocity_events

    def _raw_notes(self, score: symusic.Score) -> tuple[np.ndarray, ...]:
        """(start s, end s, pitch, velocity as float) of the encoded tracks, merged: the pedal
        holds note ends, volume and expression scale velocities (per the config)."""
        c = self.config
        sec = score if score.ttype == symusic.TimeUnit.second else score.to("second")
        parts = []
        for track in encoded_tracks(sec, c.include_drums):
            a = track.notes.numpy()
            start = a["time"].astype(np.float64)
            end = start + a["duration"].astype(np.float64)
            vel = a["velocity"].astype(np.float64)
            controls = track.controls.numpy() if len(track.controls) else None
            if c.sustain_pedal:
                end = _hold_by_pedal(end, *_pedal_intervals(track, controls, float(end.max())))
            if controls is not None and c.volume_scaling:
                volume = _controller_at(controls, VOLUME, start)
                vel = vel * (volume / 127.0) * (_controller_at(controls, EXPRESSION, start) / 127.0)
            parts.append((start, end, a["pitch"].astype(np.int64), vel))
        if not parts:
            empty = np.zeros(0, dtype=np.float64)
            return empty, empty, empty.astype(np.int64), empty
        start, end, pitch, vel = (np.concatenate(x) for x in zip(*parts, strict=True))
        return start, end, pitch, vel

    def _notes(self, score: symusic.Score) -> tuple[np.ndarray, ...]:
        """(onset, offset, pitch, bin, cut) arrays in steps: `_raw_notes` on the grid, notes
        whose velocity bins to 0 dropped, one sounding note per pitch (a re-strike ends the
        last; `cut` marks the notes it ends before their own or the pedal's release)."""
        c = self.config
        start, end, pitch, vel = self._raw_notes(score)
        on = np.rint(start / c.step_s).astype(np.int64)
        off = np.maximum(np.rint(end / c.step_s).astype(np.int64), on + 1)
        bin_ = quantize_velocity(vel, *self.velocity_args)
        keep = bin_ > 0
        return _one_sounding_per_pitch(on[keep], off[keep], pitch[keep], bin_[keep])

    def _events(self, score: symusic.Score) -> tuple[np.ndarray, ...]:
        """Note-on/off events sorted by (time, note, off before on): time, pitch, bin, and the
        number of notes sounding after each event. As in the reference, a note cut short by a
        re-strike of its pitch has no note-off: the next note-on ends it (`fix_repeated_notes`
        decodes it so; without it, every note-off is written)."""
        on, off, pitch, bin_, cut = self._notes(score)
        time = np.concatenate([on, off])
        pitch2 = np.concatenate([pitch, pitch])
        bins = np.concatenate([bin_, np.zeros_like(bin_)])
        is_on = np.concatenate([np.ones_like(on), np.zeros_like(off)])
        order = np.lexsort((is_on, pitch2, time))
        sounding = np.cumsum(np.where(is_on[order] == 1, 1, -1))
        written = ~np.concatenate([np.zeros_like(cut), cut & self.config.fix_repeated_notes])
        keep = written[order]
        return time[order][keep], pitch2[order][keep], bins[order][keep], sounding[keep]

    def _tokens(self, time: np.ndarray, pitch: np.ndarray, bin_: np.ndarray, start: int) -> Any:
        """Interleave waits (t125 repeated, then the rest) before each event's note token."""
        w = self.config.wait_events
        delta = np.diff(time, prepend=start)
        full, rest = delta // w, delta % w
        n_wait = full + (rest > 0)
        per_event = n_wait + 1
        event = np.repeat(np.arange(len(time)), per_event)
        k = np.arange(int(per_event.sum())) - np.repeat(np.cumsum(per_event) - per_event, per_event)
        note_id = self.note_offset + pitch * self.config.velocity_bins + bin_
        return np.where(
            k < full[event],
            self.wait_offset + w,
            np.where(k < n_wait[event], self.wait_offset + rest[event], note_id[event]),
        )

    def _score(self, rows: list[tuple[int, int, int, int]]) -> symusic.Score:
        """One piano track at 500 ticks per quarter, 120 BPM, from (onset, dur, pitch, vel)."""
        score = symusic.Score(DECODE_TPQ)
        score.tempos.append(symusic.Tempo(0, qpm=DECODE_QPM))
        track = symusic.Track("Piano", 0, False)
        if rows:
            a = np.asarray(sorted(rows), dtype=np.int64)
            track.notes = symusic.Note.from_numpy(
                (a[:, 0] * self._step_ticks).astype(np.int32),
                (a[:, 1] * self._step_ticks).astype(np.int32),
                a[:, 2].astype(np.int8),
                a[:, 3].astype(np.int8),
                "tick",
            )
        score.tracks.append(track)
        return score


def _one_sounding_per_pitch(
    on: np.ndarray, off: np.ndarray, pitch: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Notes sorted by (pitch, onset); of two same-pitch notes at one onset the longer stays,
    and a note ends where the next one of its pitch starts (a re-strike ends the last). Also
    returns `cut`: the notes so shortened (their own end was later)."""
    if not len(on):
        return on, off, pitch, value, on > 0
    order = np.lexsort((-off, on, pitch))
    on, off, pitch, value = on[order], off[order], pitch[order], value[order]
    same = pitch[1:] == pitch[:-1]
    keep = np.concatenate([[True], ~(same & (on[1:] == on[:-1]))])
    on, off, pitch, value = on[keep], off[keep], pitch[keep], value[keep]
    same = np.concatenate([pitch[1:] == pitch[:-1], [False]])
    nxt = np.concatenate([on[1:], on[:1]])  # the last entry is never used (same is False)
    cut = same & (off > nxt)
    return on, np.where(cut, nxt, off), pitch, value, cut


def _pedal_intervals(
    track: Any, controls: dict[str, np.ndarray] | None, horizon: float
) -> tuple[np.ndarray, np.ndarray]:
    """(down, up) times of the sustain pedal, from the track's CC64 events: down at a value
    >= 64 after an up, up at a value < 64 after a down (the reference's threshold); a pedal
    never released lifts at `horizon` (the track's last note end). A track built in code with
    `pedals` and no CC64 events uses its pedals."""
    is_pedal = controls["number"] == SUSTAIN if controls is not None else None
    if is_pedal is None or not is_pedal.any():
        if not len(track.pedals):
            return np.zeros(0), np.zeros(0)
        p = track.pedals.numpy()
        start = p["time"].astype(np.float64)
        order = np.argsort(start, kind="stable")
        return start[order], (start + p["duration"].astype(np.float64))[order]
    time = controls["time"][is_pedal].astype(np.float64)
    order = np.argsort(time, kind="stable")
    time, down = time[order], controls["value"][is_pedal][order] >= 64
    change = down != np.concatenate([[False], down[:-1]])
    time, down = time[change], down[change]  # alternating: down, up, down, ...
    starts, ends = time[down], time[~down]
    if len(ends) < len(starts):
        ends = np.concatenate([ends, [max(horizon, float(starts[-1]))]])
    return starts, ends


def _hold_by_pedal(end: np.ndarray, p_start: np.ndarray, p_end: np.ndarray) -> np.ndarray:
    """Note ends that fall while the pedal is down move to its release (a note ending the
    moment the pedal goes down is not held)."""
    if not len(p_start):
        return end
    idx = np.searchsorted(p_start, end, side="left") - 1
    safe = np.clip(idx, 0, None)
    held = (idx >= 0) & (end < p_end[safe])
    return np.where(held, np.maximum(end, p_end[safe]), end)


def _controller_at(controls: dict[str, np.ndarray], number: int, times: np.ndarray) -> np.ndarray:
    """The value of controller `number` in effect at each of `times` (127 before its first
    event; an event at the same time as a note applies to it)."""
    mine = controls["number"] == number
    if not mine.any():
        return np.full(len(times), 127.0)
    time = controls["time"][mine].astype(np.float64)
    order = np.argsort(time, kind="stable")
    value = controls["value"][mine][order].astype(np.float64)
    idx = np.searchsorted(time[order], times, side="right") - 1
    return np.where(idx >= 0, value[np.clip(idx, 0, None)], 127.0)
