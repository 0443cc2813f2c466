"""Validation of one MIDI file: check what the parser would misread, load with symusic, reject
impossible values and apply the dataset bounds, saying why a file fails.

symusic 0.6 reads a tempo, time or key signature meta event as 3, 4 or 2 bytes whatever length
the event declares, so a shorter one (zero-length, say) takes its value from the bytes after
it, past the end of the file for the last event (docs/datasets.md, "Parser bugs"); a longer one
is read right (its first bytes, like mido). `midi_structure_problem` finds the short ones in
the bytes before symusic sees them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from symusic import Score
from symusic.core import ScoreTick

from midilm.specs.dataset import FilterSpec

# Quarantine reason codes (docs/datasets.md, "Quarantine and skip reasons").
REASONS = (
    "parse_error",
    "export_error",
    "malformed",  # bytes the parser would misread: division 0, meta events too short
    "bad_tempo",  # a tempo outside [min_qpm, max_qpm] (0 or 1 microsecond per quarter, ...)
    "bad_time_signature",  # a zero numerator or denominator
    "bad_key_signature",  # sharps/flats outside -7..7 or a mode other than major/minor
    "bad_duration",  # a converter input with a negative, zero or non-finite time or duration
    "empty",
    "too_few_notes",
    "too_many_notes",
    "too_short",
    "too_long",
    "too_many_tracks",
    "too_large",  # over max_file_bytes before reading, or over worker_memory_mb while parsing
    "unreadable",  # the OS refused to list or read it (permissions, I/O error)
    "broken_link",  # a dangling link or a link loop with a music suffix
    "not_regular_file",  # replaced by a FIFO or device between listing and reading
    "crash",  # the worker process died on it; the detail names the exception or signal
    "timeout",
    "excluded",  # left out by a dataset option (e.g. DadaGP's artist list), not a bad file
)
# Meta events symusic decodes, with the length the standard gives them (shorter ones are misread).
META_LENGTHS = {0x51: ("set_tempo", 3), 0x58: ("time_signature", 4), 0x59: ("key_signature", 2)}
_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}


@dataclass(frozen=True)
class ScoreStats:
    duration_s: float
    n_notes: int
    n_tracks: int


class Rejected(Exception):
    """A file that fails validation; `reason` is its quarantine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def load_midi(data: bytes) -> ScoreTick:
    """Parse MIDI bytes with symusic after the structure check; unreadable bytes are
    `parse_error`, bytes symusic would misread `malformed`."""
    problem = midi_structure_problem(data)
    if problem is not None:
        raise Rejected("malformed", problem)
    try:
        return Score.from_midi(data)
    except Exception as error:
        raise Rejected("parse_error", f"{type(error).__name__}: {error}") from error


def midi_structure_problem(data: bytes) -> str | None:
    """What symusic would misread in these bytes (division 0, a tempo, time or key signature
    meta event shorter than the standard length), or None. Other damage is left to the parser.

    Every event is walked only when a byte pair FF 51/58/59 is followed by a too-small length
    byte somewhere in the file, so well-formed files cost one scan per meta type.
    """
    if len(data) < 14 or data[:4] != b"MThd":
        return None
    header_len, _, _, division = struct.unpack(">IHHH", data[4:14])
    if division == 0:
        return "header: division (ticks per quarter) is 0"
    if not any(_suspicious(data, meta, length) for meta, (_, length) in META_LENGTHS.items()):
        return None
    pos, track = 8 + header_len, 0
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        start, end = pos + 8, min(pos + 8 + size, len(data))
        if kind == b"MTrk":
            problem = _track_problem(data, start, end)
            if problem is not None:
                return f"track {track}: {problem}"
            track += 1
        pos = start + size
    return None


def _suspicious(data: bytes, meta: int, length: int) -> bool:
    marker = bytes((0xFF, meta))
    at = data.find(marker)
    while at != -1:
        if at + 2 >= len(data) or data[at + 2] < length:
            return True
        at = data.find(marker, at + 1)
    return False


def _track_problem(data: bytes, pos: int, end: int) -> str | None:
    """The first meta event shorter than its standard length in one track chunk; None when
    there is none or the events cannot be followed (the parser then reports the damage)."""
    running = 0
    while pos < end:
        _, pos = _vlq(data, pos, end)  # delta time
        if pos >= end:
            return None
        status = data[pos]
        if status == 0xFF:
            if pos + 1 >= end:
                return None
            meta = data[pos + 1]
            length, body = _vlq(data, pos + 2, end)
            if meta in META_LENGTHS and length < META_LENGTHS[meta][1]:
                name, wanted = META_LENGTHS[meta]
                return f"{name} meta event of length {length} at byte {pos} (needs {wanted})"
            if body + length > end:
                return f"meta event 0x{meta:02X} at byte {pos}: {length} bytes run past the track"
            pos = body + length  # running status survives meta and sysex events, as in symusic
        elif status in (0xF0, 0xF7):
            length, body = _vlq(data, pos + 1, end)
            pos = body + length
        elif status >= 0x80:
            if status > 0xEF:
                return None  # a system message inside a file: left to the parser
            running = status
            pos += 1 + _DATA_BYTES[status >> 4]
        elif running:
            pos += _DATA_BYTES[running >> 4]
        else:
            return None  # a data byte without a status: left to the parser
    return None


def _vlq(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable-length quantity (at most 4 bytes) at `pos`: (value, position after it)."""
    value = 0
    for _ in range(4):
        if pos >= end:
            break
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value, pos


def check_values(score: ScoreTick, filters: FilterSpec) -> None:
    """Reject values no real piece has: a tempo outside [min_qpm, max_qpm] (mspq 0 is an
    infinite tempo), a time signature with a zero term, a key signature out of range."""
    for tempo in score.tempos:
        qpm = 60_000_000 / tempo.mspq if tempo.mspq > 0 else float("inf")
        if not filters.min_qpm <= qpm <= filters.max_qpm:
            raise Rejected(
                "bad_tempo",
                f"tempo {qpm:.6g} qpm ({tempo.mspq} microseconds per quarter) at tick "
                f"{tempo.time} is outside dataset.filters [min_qpm={filters.min_qpm:g}, "
                f"max_qpm={filters.max_qpm:g}]",
            )
    for meter in score.time_signatures:
        if meter.numerator <= 0 or meter.denominator <= 0:
            raise Rejected(
                "bad_time_signature",
                f"time signature {meter.numerator}/{meter.denominator} at tick {meter.time}",
            )
    for key in score.key_signatures:
        if not -7 <= key.key <= 7 or key.tonality not in (0, 1):
            raise Rejected(
                "bad_key_signature",
                f"key signature ({key.key} sharps, mode {key.tonality}) at tick {key.time}",
            )


def notes_end_s(score: ScoreTick) -> float:
    """When the last note ends, in seconds (tempo map applied). Not `Score.end()`, which also
    counts controller and meta events: a Groove file with a stray event 276 s after its last
    note would otherwise be 3.6 times too long."""
    seconds = score.to("second")
    ends = [
        float((n["time"] + n["duration"]).max())
        for n in (t.notes.numpy() for t in seconds.tracks)
        if len(n["time"])
    ]
    return max(ends, default=0.0)


def score_stats(score: ScoreTick) -> ScoreStats:
    """Length in seconds (end of the last note), notes, and tracks that hold notes."""
    return ScoreStats(
        duration_s=notes_end_s(score),
        n_notes=int(score.note_num()),
        n_tracks=sum(1 for track in score.tracks if track.note_num() > 0),
    )


def check_note_count(n_notes: int, filters: FilterSpec) -> None:
    """`empty`, `too_few_notes` or `too_many_notes` (checked before the score is copied)."""
    if n_notes == 0:
        raise Rejected("empty", "no notes")
    if n_notes < filters.min_notes:
        raise Rejected(
            "too_few_notes", f"{n_notes} notes < dataset.filters.min_notes={filters.min_notes}"
        )
    if n_notes > filters.max_notes:
        raise Rejected(
            "too_many_notes", f"{n_notes} notes > dataset.filters.max_notes={filters.max_notes}"
        )


def check_filters(stats: ScoreStats, filters: FilterSpec) -> None:
    """Raise `Rejected` with the first bound the piece fails (notes, tracks, length)."""
    check_note_count(stats.n_notes, filters)
    if not math.isfinite(stats.duration_s):
        raise Rejected("bad_duration", f"the piece lasts {stats.duration_s} s")
    if stats.n_tracks > filters.max_tracks:
        raise Rejected(
            "too_many_tracks",
            f"{stats.n_tracks} tracks > dataset.filters.max_tracks={filters.max_tracks}",
        )
    if stats.duration_s > filters.max_duration_s:
        raise Rejected(
            "too_long",
            f"{stats.duration_s:.1f} s > dataset.filters.max_duration_s={filters.max_duration_s}",
        )
    if stats.duration_s < filters.min_duration_s:
        raise Rejected(
            "too_short",
            f"{stats.duration_s:.3g} s < dataset.filters.min_duration_s={filters.min_duration_s}",
        )
