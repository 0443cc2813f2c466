"""MIDICompact (seed 001 §3-4): the piano vocabulary of the MIT "MIDI-LLM-tokenizer".

One token per note event, ``<note hex>:<velocity bin hex>`` (bin 0 = note-off), and wait tokens
``t1``..``t125`` of 8 ms each (125 waits up to 1000 ms; a longer gap is several waits). Ids:
``<pad>`` 0, ``<start>`` 1, ``<end>`` 2, ``t{k}`` = 2 + k (3..127), ``{note:x}:{bin:x}`` =
128 + 16 * note + bin (128..2175): 128 * 16 + 125 + 3 = 2176 tokens.

Time is real time: a score is read in seconds and every event is rounded to the 8 ms grid (absolute
times, so rounding never drifts). Decoding writes ticks at a fixed 120 BPM with 500 ticks per
quarter, so one tick is exactly 1 ms and one wait step 8 ticks. Velocities go through
`quantize_velocity` (16 bins, exponential curve). All tracks merge into one (drums only with
`include_drums`); the sustain pedal (CC64 >= 64) holds note-offs until it is released; a re-struck
sounding note ends the previous one first. Channel volume and expression are not applied.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import symusic

from midilm.tokenize.named_vocab import NamedVocabTokenizer, check_include_drums, encoded_tracks

FAMILY = "midicompact"
SPECIALS = ("<pad>", "<start>", "<end>")
NOTES = 128
DECODE_TPQ = 500  # ticks per quarter of decoded scores: at 120 BPM one tick is 1 ms
DECODE_QPM = 120.0


def quantize_velocity(
    velocity: Any, bins: int = 16, exp: float = 0.33, events: int = 128
) -> np.ndarray:
    """MIDI velocity (0..127) -> bin (0..bins-1), exponential curve; linear when `exp` == 1."""
    v = np.clip(np.asarray(velocity, dtype=np.float64), 0, events - 1)
    bin_size = events / (bins - 1)
    curve = v if exp == 1.0 else events * ((exp ** (v / events) - 1.0) / (exp - 1.0))
    return np.clip(np.ceil(curve / bin_size - 1e-9), 0, bins - 1).astype(np.int64)


def dequantize_velocity(
    bin_: Any, bins: int = 16, exp: float = 0.33, events: int = 128
) -> np.ndarray:
    """Bin -> the velocity it stands for: the inverse (log) of `quantize_velocity`'s curve."""
    b = np.asarray(bin_, dtype=np.float64)
    bin_size = events / (bins - 1)
    if exp == 1.0:
        v = b * bin_size - 1.0
    else:
        v = events * np.log((exp - 1.0) * b * bin_size / events + 1.0) / math.log(exp) - 1.0
    return np.clip(np.ceil(v - 1e-9), 0, events - 1).astype(np.int64)


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
    max_silence_s: float = 10.0  # encode_segments: a longer silence with no held note splits
    end_held_note_s: float = 5.0  # decode: a note held longer is released
    fix_repeated_notes: bool = True

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
        self._wait_offset = len(SPECIALS) - 1  # t{k} -> id 2 + k
        self._note_offset = len(SPECIALS) + c.wait_events
        names = list(SPECIALS) + [f"t{k}" for k in range(1, c.wait_events + 1)]
        names += [f"{n:x}:{b:x}" for n in range(NOTES) for b in range(c.velocity_bins)]
        self._set_names(names)
        self._step_ticks = round(c.step_s * DECODE_QPM / 60.0 * DECODE_TPQ)
        self._held_steps = round(c.end_held_note_s / c.step_s)

    # --- the protocol -------------------------------------------------------------------------

    def encode_array(self, score: symusic.Score) -> np.ndarray:
        """The whole piece from time 0, every silence as waits (no `<start>`/`<end>`)."""
        time, pitch, bin_, _ = self._events(score)
        return self._tokens(time, pitch, bin_, start=0)

    def encode_segments(self, score: symusic.Score) -> list[list[int]]:
        """The piece cut at each silence with no held note longer than `max_silence_s`; each
        segment starts at its first event (the MIT tokenizer ends each with `<end>`)."""
        time, pitch, bin_, sounding = self._events(score)
        if not len(time):
            return []
        gap = np.diff(time) * self.config.step_s > self.config.max_silence_s
        cuts = np.flatnonzero(gap & (sounding[:-1] == 0)) + 1
        bounds = [0, *cuts.tolist(), len(time)]
        return [
            self._tokens(time[a:b], pitch[a:b], bin_[a:b], start=int(time[a])).tolist()
            for a, b in itertools.pairwise(bounds)
        ]

    def decode_with_report(self, ids: Sequence[int]) -> tuple[symusic.Score, int]:
        """(score, dropped): ids out of range and note-offs of silent notes are dropped and
        counted; specials are skipped; notes still sounding at the end are closed there."""
        c = self.config
        now, dropped = 0, 0
        sounding: dict[int, tuple[int, int]] = {}  # pitch -> (onset step, velocity)
        rows: list[tuple[int, int, int, int]] = []  # (onset, duration, pitch, velocity) in steps
        levels = dequantize_velocity(np.arange(c.velocity_bins), *self._vel_args).tolist()
        for raw in ids:
            i = int(raw)
            if not 0 <= i < self.vocab_size:
                dropped += 1
            elif i < len(SPECIALS):
                continue
            elif i < self._note_offset:
                now += i - self._wait_offset
                for p, (on, v) in list(sounding.items()):
                    if now - on > self._held_steps:  # end held note delay
                        rows.append((on, self._held_steps, p, v))
                        del sounding[p]
            else:
                pitch, b = divmod(i - self._note_offset, c.velocity_bins)
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
        return " ".join(self._names[int(i)] for i in ids if 0 <= int(i) < n)

    def from_text_with_report(self, text: str) -> tuple[list[int], int]:
        """(ids, dropped): unknown words are dropped and counted."""
        words = text.split()
        ids = [self._vocab[w] for w in words if w in self._vocab]
        return ids, len(words) - len(ids)

    # --- grid ----------------------------------------------------------------------------------

    def snap_to_grid(self, score: symusic.Score) -> symusic.Score:
        """The score as this tokenizer sees it (merged, pedal applied, 8 ms grid, binned
        velocities, held notes cut): `decode(encode(s)) == snap_to_grid(s)` note for note."""
        on, off, pitch, bin_ = self._notes(score)
        dur = np.minimum(off - on, self._held_steps)
        vel = dequantize_velocity(bin_, *self._vel_args)
        rows = list(zip(on.tolist(), dur.tolist(), pitch.tolist(), vel.tolist(), strict=True))
        return self._score(rows)

    # --- internals -----------------------------------------------------------------------------

    @property
    def _vel_args(self) -> tuple[int, float, int]:
        c = self.config
        return c.velocity_bins, c.velocity_exp, c.velocity_events

    def _notes(self, score: symusic.Score) -> tuple[np.ndarray, ...]:
        """(onset, offset, pitch, bin) int64 arrays in steps: merged tracks, pedal applied,
        velocity-0 notes dropped, one sounding note per pitch (a re-strike ends the last)."""
        c = self.config
        sec = score if score.ttype == symusic.TimeUnit.second else score.to("second")
        parts = []
        for track in encoded_tracks(sec, c.include_drums):
            a = track.notes.numpy()
            start = a["time"].astype(np.float64)
            end = start + a["duration"].astype(np.float64)
            if c.sustain_pedal and len(track.pedals):
                end = _hold_by_pedal(end, track.pedals.numpy())
            parts.append((start, end, a["pitch"], a["velocity"]))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        start, end, pitch, vel = (np.concatenate(x) for x in zip(*parts, strict=True))
        on = np.rint(start / c.step_s).astype(np.int64)
        off = np.maximum(np.rint(end / c.step_s).astype(np.int64), on + 1)
        pitch = pitch.astype(np.int64)
        bin_ = quantize_velocity(vel, *self._vel_args)
        keep = bin_ > 0
        on, off, pitch, bin_ = on[keep], off[keep], pitch[keep], bin_[keep]
        order = np.lexsort((-off, on, pitch))
        on, off, pitch, bin_ = on[order], off[order], pitch[order], bin_[order]
        same = pitch[1:] == pitch[:-1]
        keep = np.concatenate([[True], ~(same & (on[1:] == on[:-1]))])
        on, off, pitch, bin_ = on[keep], off[keep], pitch[keep], bin_[keep]
        same = np.concatenate([pitch[1:] == pitch[:-1], [False]])
        nxt = np.concatenate([on[1:], [0]])
        off = np.where(same, np.minimum(off, nxt), off)
        return on, off, pitch, bin_

    def _events(self, score: symusic.Score) -> tuple[np.ndarray, ...]:
        """Note-on/off events sorted by (time, note, off before on): time, pitch, bin, and the
        number of notes sounding after each event."""
        on, off, pitch, bin_ = self._notes(score)
        time = np.concatenate([on, off])
        pitch2 = np.concatenate([pitch, pitch])
        bins = np.concatenate([bin_, np.zeros_like(bin_)])
        is_on = np.concatenate([np.ones_like(on), np.zeros_like(off)])
        order = np.lexsort((is_on, pitch2, time))
        sounding = np.cumsum(np.where(is_on[order] == 1, 1, -1))
        return time[order], pitch2[order], bins[order], sounding

    def _tokens(self, time: np.ndarray, pitch: np.ndarray, bin_: np.ndarray, start: int) -> Any:
        """Interleave waits (t125 repeated, then the rest) before each event's note token."""
        w = self.config.wait_events
        delta = np.diff(time, prepend=start)
        full, rest = delta // w, delta % w
        n_wait = full + (rest > 0)
        per_event = n_wait + 1
        event = np.repeat(np.arange(len(time)), per_event)
        k = np.arange(int(per_event.sum())) - np.repeat(np.cumsum(per_event) - per_event, per_event)
        note_id = self._note_offset + pitch * self.config.velocity_bins + bin_
        return np.where(
            k < full[event],
            self._wait_offset + w,
            np.where(k < n_wait[event], self._wait_offset + rest[event], note_id[event]),
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


def _hold_by_pedal(end: np.ndarray, pedals: Mapping[str, np.ndarray]) -> np.ndarray:
    """Note ends that fall while the pedal is down move to its release (times in seconds)."""
    p_start = pedals["time"].astype(np.float64)
    order = np.argsort(p_start, kind="stable")
    p_start = p_start[order]
    p_end = p_start + pedals["duration"].astype(np.float64)[order]
    idx = np.searchsorted(p_start, end, side="left") - 1
    safe = np.clip(idx, 0, None)
    held = (idx >= 0) & (end < p_end[safe])
    return np.where(held, np.maximum(end, p_end[safe]), end)
