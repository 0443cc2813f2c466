"""Simplified MIDI (seed 004 §4): a piece is ``p{pitch}:v{velocity}:d{duration}:t{time}`` words.

Duration and time are ticks at 96 per quarter and 120 BPM (~5.21 ms): a score is read in seconds,
so tempo changes are honoured. ``t`` is the ticks from this note's onset to the next one's (0 in a
chord, 0 for the last note); the piece starts at its first onset. Notes are ordered by (onset,
pitch, duration, velocity) and never merged, so equal or overlapping notes survive. The guitar form
adds ``:b{bend}``, the pitch bend in effect at the note's onset on its track, quantized by
`bend_to_bin` (8192 -> 23; MIDI gives 0..45, and 46 decodes to 16383).

Ids use a factored vocabulary, one token per field value (``p60 v80 d96 t0 [b23]`` per note).
A duration or time above its cap (``max_duration``/``max_time``) is split into several tokens of
the same field (cap, cap, ..., rest) that decoding adds up, so any value round-trips.

Decoding is total (docs/decoding.md): a velocity of 0 decodes to 1 (a sounding note, not a
note-off); a text word's duration or time is at most `MAX_WORD_TICKS`; times past the last tick a
MIDI file holds raise `DecodeError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import symusic

from midilm.tokenize.base import MAX_TICK, DecodeError, as_id, check_text
from midilm.tokenize.named_vocab import NamedVocabTokenizer, check_include_drums, encoded_tracks

FAMILY = "simplified_midi"
SPECIALS = ("<pad>", "<start>", "<end>")
NO_BEND = 8192
BEND_BINS = 47
FIELDS = "pvdtb"
WORD = re.compile(r"p(\d{1,9}):v(\d{1,9}):d(\d{1,9}):t(\d{1,9})(?::b(\d{1,9}))?", re.ASCII)
# the longest duration or time one text word may give (~341 s): a word's ids stay bounded
MAX_WORD_TICKS = 2**16 - 1


def bend_to_bin(x: Any) -> np.ndarray:
    """f of seed 004: MIDI pitch bend 0..16383 -> 0..46, finer (64 wide) around 8192."""
    x = np.asarray(x, dtype=np.int64)
    return np.where(
        x < 7680, x // 512, np.where(x < 8704, 15 + (x - 7680) // 64, 31 + (x - 8704) // 512)
    )


def bin_to_bend(y: Any) -> np.ndarray:
    """g of seed 004: bin -> MIDI pitch bend, clipped to 16383 (g(46) = 16384 is off the range)."""
    y = np.asarray(y, dtype=np.int64)
    x = np.where(y < 15, 512 * y, np.where(y < 31, 7680 + 64 * (y - 15), 8704 + 512 * (y - 31)))
    return np.minimum(x, 16383)


@dataclass(frozen=True)
class SimplifiedMidiConfig:
    """Options of conf/tokenizer/simplified_midi*.yaml (`simplified_midi:` block)."""

    bend: bool = False
    max_duration: int = 1023  # larger durations become several d tokens
    max_time: int = 1023  # larger times become several t tokens
    include_drums: bool | str = "auto"  # true, false, or auto: only a piece without pitched notes
    program: int = 0  # program of the decoded track


TPQ, QPM = 96, 120.0
TICKS_PER_SECOND = TPQ * QPM / 60.0


class SimplifiedMidiTokenizer(NamedVocabTokenizer):
    """Simplified MIDI as a MusicTokenizer, with the report's text form (`to_text`)."""

    FAMILY = FAMILY
    CONFIG = SimplifiedMidiConfig
    CONFIG_SOURCE = "conf/tokenizer/simplified_midi*.yaml (`simplified_midi:` block)"

    def __init__(self, config: SimplifiedMidiConfig | None = None, name: str | None = None) -> None:
        self.config = c = config or SimplifiedMidiConfig()
        check_include_drums(c.include_drums, self.CONFIG_SOURCE)
        self.name = name or (f"{FAMILY}_bend" if c.bend else FAMILY)
        sizes = {"p": 128, "v": 128, "d": c.max_duration + 1, "t": c.max_time + 1}
        if c.bend:
            sizes["b"] = BEND_BINS
        self._offset: dict[str, int] = {}
        names = list(SPECIALS)
        for field, size in sizes.items():
            self._offset[field] = len(names)
            names += [f"{field}{k}" for k in range(size)]
        self._set_names(names)
        self._field_of = np.zeros(len(names), dtype=np.int64) - 1  # id -> index in FIELDS
        for field, size in sizes.items():
            self._field_of[self._offset[field] : self._offset[field] + size] = FIELDS.index(field)

    @property
    def time_grid_s(self) -> float:
        """One tick in seconds (1/192 s): this encoding's real-time grid, where round-trip F1
        compares notes (a piece's own tempo is not kept, so beats would not line up)."""
        return 1.0 / TICKS_PER_SECOND

    # --- the protocol -------------------------------------------------------------------------

    def encode_array(self, score: symusic.Score) -> np.ndarray:
        """p v d t [b] ids per note (long d/t split into several tokens)."""
        return self._id_array(self.notes(score))

    def decode_with_report(self, ids: Sequence[int]) -> tuple[symusic.Score, int]:
        """(score, dropped ids): out-of-range ids, fields out of order and incomplete notes
        are dropped and counted; a note's time still advances the clock."""
        notes, dropped = self._parse(ids)
        return self.to_score(notes), dropped

    # --- notes <-> score -----------------------------------------------------------------------

    def notes(self, score: symusic.Score) -> np.ndarray:
        """int64 rows (pitch, velocity, duration, time, bend bin), in piece order."""
        sec = score if score.ttype == symusic.TimeUnit.second else score.to("second")
        parts = []
        for track in encoded_tracks(sec, self.config.include_drums):
            a = track.notes.numpy()
            onset = np.rint(a["time"] * TICKS_PER_SECOND).astype(np.int64)
            dur = np.rint(a["duration"] * TICKS_PER_SECOND).astype(np.int64)
            bend = np.full(len(onset), bend_to_bin(NO_BEND), dtype=np.int64)
            if self.config.bend and len(track.pitch_bends):
                b = track.pitch_bends.numpy()
                b_time = np.rint(b["time"] * TICKS_PER_SECOND).astype(np.int64)
                order = np.argsort(b_time, kind="stable")
                idx = np.searchsorted(b_time[order], onset, side="right") - 1
                value = b["value"].astype(np.int64)[order][np.clip(idx, 0, None)] + NO_BEND
                bend = np.where(idx >= 0, bend_to_bin(np.clip(value, 0, 16383)), bend)
            parts.append((onset, a["pitch"].astype(np.int64), dur, a["velocity"], bend))
        if not parts:
            return np.zeros((0, 5), dtype=np.int64)
        onset, pitch, dur, vel, bend = (np.concatenate(x) for x in zip(*parts, strict=True))
        vel = vel.astype(np.int64)
        order = np.lexsort((bend, vel, dur, pitch, onset))
        onset = onset[order]
        time = np.diff(onset, append=onset[-1])
        return np.stack([pitch[order], vel[order], dur[order], time, bend[order]], axis=1)

    def to_score(self, notes: np.ndarray) -> symusic.Score:
        """One track at 96 ticks per quarter and 120 BPM; bends as pitch-bend events at onsets."""
        score = symusic.Score(TPQ)
        score.tempos.append(symusic.Tempo(0, qpm=QPM))
        track = symusic.Track("Simplified MIDI", self.config.program, False)
        if len(notes):
            notes = np.asarray(notes, dtype=np.int64)
            onset = np.concatenate([[0], np.cumsum(notes[:-1, 3])])
            track.notes = symusic.Note.from_numpy(
                onset.astype(np.int32),
                notes[:, 2].astype(np.int32),
                notes[:, 0].astype(np.int8),
                np.maximum(notes[:, 1], 1).astype(np.int8),  # v0 would be a note-off
                "tick",
            )
            if self.config.bend:
                value = bin_to_bend(notes[:, 4]) - NO_BEND
                change = value != np.concatenate([[0], value[:-1]])
                track.pitch_bends = symusic.PitchBend.from_numpy(
                    onset[change].astype(np.int32), value[change].astype(np.int32), "tick"
                )
        score.tracks.append(track)
        return score

    def transformed(self, score: symusic.Score) -> symusic.Score:
        """The piece with this encoding's documented transformations and nothing else, in real
        time (1 ms ticks, not its grid): tracks merged (drums per `include_drums`) and the
        leading silence dropped (a piece starts at its first onset). Round-trip F1 compares
        decoded pieces with this."""
        sec = score if score.ttype == symusic.TimeUnit.second else score.to("second")
        parts = [t.notes.numpy() for t in encoded_tracks(sec, self.config.include_drums)]
        result = symusic.Score(500)  # 1 tick = 1 ms at 120 BPM
        result.tempos.append(symusic.Tempo(0, qpm=QPM))
        track = symusic.Track("Simplified MIDI", self.config.program, False)
        if parts:
            onset = np.concatenate([p["time"] for p in parts]).astype(np.float64)
            dur = np.concatenate([p["duration"] for p in parts]).astype(np.float64)
            track.notes = symusic.Note.from_numpy(
                np.rint((onset - onset.min()) * 1000.0).astype(np.int32),
                np.rint(dur * 1000.0).astype(np.int32),
                np.concatenate([p["pitch"] for p in parts]).astype(np.int8),
                np.concatenate([p["velocity"] for p in parts]).astype(np.int8),
                "tick",
            )
        result.tracks.append(track)
        return result

    def snap_to_grid(self, score: symusic.Score) -> symusic.Score:
        """The score as this encoding sees it (96 tpq at 120 BPM from its first onset, one
        track, bends quantized): `decode(encode(s))` equals it note for note."""
        return self.to_score(self.notes(score))

    # --- text form -----------------------------------------------------------------------------

    def to_text(self, ids: Sequence[int]) -> str:
        """The report's form: ``p60:v80:d96:t0`` words (``:b23`` added in the bend form)."""
        notes, _ = self._parse(ids)
        return notes_to_text(notes, self.config.bend)

    def from_text_with_report(self, text: str) -> tuple[list[int], int]:
        """(ids, dropped words): words that do not parse or hold out-of-range values (pitch or
        velocity over 127, a bend bin over 46, a duration or time over `MAX_WORD_TICKS`) are
        dropped and counted (a word's bend is ignored in the form without bends). Text that is
        not a str, or onsets past `MAX_TICK`, raise DecodeError."""
        rows, dropped, onset = [], 0, 0
        no_bend = int(bend_to_bin(NO_BEND))
        for word in check_text(text).split():
            m = WORD.fullmatch(word)
            if m is None:
                dropped += 1
                continue
            p, v, d, t = (int(g) for g in m.groups()[:4])
            b = int(m.group(5)) if m.group(5) is not None else no_bend
            if p > 127 or v > 127 or b >= BEND_BINS or max(d, t) > MAX_WORD_TICKS:
                dropped += 1
                continue
            _check_time(onset + max(d, t), word, len(rows) + dropped)
            onset += t
            rows.append((p, v, d, t, b))
        notes = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
        return self._id_array(notes).tolist(), dropped

    # --- internals -----------------------------------------------------------------------------

    def _id_array(self, notes: np.ndarray) -> np.ndarray:
        """Note rows -> ids, vectorized: p v d.. t.. [b] per note, d/t split at their caps."""
        c, o = self.config, self._offset
        if not len(notes):
            return np.zeros(0, dtype=np.int64)
        d_full, d_rest, n_d = _split_counts(notes[:, 2], c.max_duration)
        t_full, t_rest, n_t = _split_counts(notes[:, 3], c.max_time)
        length = 2 + n_d + n_t + int(c.bend)
        note = np.repeat(np.arange(len(notes)), length)
        pos = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
        k_d, k_t = pos - 2, pos - 2 - n_d[note]
        d_id = o["d"] + np.where(k_d < d_full[note], c.max_duration, d_rest[note])
        t_id = o["t"] + np.where(k_t < t_full[note], c.max_time, t_rest[note])
        ids = np.where(k_d < n_d[note], d_id, t_id)
        if c.bend:
            ids = np.where(k_t >= n_t[note], o["b"] + notes[note, 4], ids)
        ids = np.where(pos == 1, o["v"] + notes[note, 1], ids)
        return np.where(pos == 0, o["p"] + notes[note, 0], ids)

    def _parse(self, ids: Sequence[int]) -> tuple[np.ndarray, int]:
        """Ids -> note rows (pitch, velocity, duration, time, bend) and the dropped-id count.

        Fields must come in order p v d+ t* [b]; a token out of order is dropped, a note
        without its velocity or duration is dropped with its ids; a missing time is 0."""
        no_bend = int(bend_to_bin(NO_BEND))
        rows: list[tuple[int, int, int, int, int]] = []
        dropped = 0
        note: list[int] = []  # [p, v, d, t, b, rank of the last field, ids used]

        def close() -> None:
            nonlocal dropped
            if note and note[5] >= 2:
                rows.append((note[0], note[1], note[2], note[3], note[4]))
            elif note:
                dropped += note[6]

        onset = 0  # of the note being read, in ticks
        for position, raw in enumerate(ids):
            i = as_id(raw, position)
            rank = int(self._field_of[i]) if 0 <= i < self.vocab_size else -2
            if rank == -1:  # specials
                continue
            if rank == -2:
                dropped += 1
                continue
            value = i - self._offset[FIELDS[rank]]
            if rank == 0:
                close()
                onset += note[3] if note and note[5] >= 2 else 0
                note = [value, 0, 0, 0, no_bend, 0, 1]
            elif note and (rank == note[5] + 1 or (rank == note[5] and rank in (2, 3))):
                note[rank] = note[rank] + value if rank in (2, 3) else value
                note[5], note[6] = rank, note[6] + 1
                _check_time(onset + max(note[2], note[3]), self._names[i], position)
            else:
                dropped += 1
        close()
        return np.asarray(rows, dtype=np.int64).reshape(-1, 5), dropped


def _check_time(tick: int, token: str, position: int) -> None:
    """A DecodeError naming `token` when `tick` passes the last tick a MIDI file holds."""
    if tick > MAX_TICK:
        raise DecodeError(
            f"token {token} at position {position} takes the piece past tick {MAX_TICK} "
            f"({MAX_TICK / TICKS_PER_SECOND / 3600:.0f} h), the longest a MIDI file can hold"
        )


def notes_to_text(notes: np.ndarray, bend: bool) -> str:
    """Note rows (pitch, velocity, duration, time, bend) -> the report's text form."""
    if bend:
        return " ".join(f"p{p}:v{v}:d{d}:t{t}:b{b}" for p, v, d, t, b in notes.tolist())
    return " ".join(f"p{p}:v{v}:d{d}:t{t}" for p, v, d, t, _ in notes.tolist())


def _split_counts(values: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A value as `full` tokens of `cap` then `rest` (kept when non-zero or the only one)."""
    full, rest = values // cap, values % cap
    return full, rest, full + ((rest > 0) | (full == 0))
