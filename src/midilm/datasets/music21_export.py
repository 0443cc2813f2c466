"""music21 scores (corpus chorales, ABC tunes) to MIDI bytes, with the one repair ABC tunes need."""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

from music21 import bar, base, converter, corpus, stream

# Objects music21's MIDI writer moves into its conductor track; one object must not sit in two
# measures, or `conductorStream` inserts it twice and raises StreamException.
CONDUCTOR_CLASSES = ("TimeSignature", "KeySignature", "MetronomeMark")


class SourceError(Exception):
    """A piece that could not be read or exported; `reason` is its quarantine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def repair_shared_context(score: stream.Stream) -> int:
    """Give every measure its own copy of a meter/key/tempo object shared with another measure.

    music21's ABC reader, after a mid-tune pickup (a section starting with an anacrusis), puts a
    short TimeSignature on the pickup measure and re-inserts the *same* original TimeSignature
    object in the next measure. The MIDI writer then fails with "the object
    (<TimeSignature ..>) is already found in this Stream" (about 14% of O'Neill's tunes).
    Replacing the second occurrence by a deep copy keeps the meter change and exports cleanly.
    Returns the number of objects replaced.
    """
    seen: set[int] = set()
    shared: list[tuple[stream.Stream, base.Music21Object]] = []
    for container in score.recurse(streamsOnly=True, includeSelf=True):
        for element in container.getElementsByClass(CONDUCTOR_CLASSES):
            if id(element) in seen:
                shared.append((container, element))
            seen.add(id(element))
    for container, element in shared:
        container.replace(element, copy.deepcopy(element))
    return len(shared)


SECTION_BARS = ("double", "light-light", "final", "light-heavy", "heavy-light")


def close_open_repeats(score: stream.Stream) -> int:
    """Add the start-repeat that ABC leaves implicit at a section start (after `||` or `:|`).

    In ABC, `:|` without `|:` repeats back to the last double bar or end-repeat (or the tune's
    start); music21's expander always goes back to the tune's start, so a tune of seven
    `|| ... :|` sections comes out about 50 times too long (O'Neill 708: 3048 s). Returns the
    number of start-repeats added.
    """
    added = 0
    for part in score.recurse(streamsOnly=True, includeSelf=True):
        measures = list(part.getElementsByClass(stream.Measure))
        section, has_start = 0, False
        for index, measure in enumerate(measures):
            left, right = measure.leftBarline, measure.rightBarline
            if isinstance(left, bar.Repeat) and left.direction == "start":
                has_start = True
            elif left is not None and left.type in SECTION_BARS:
                section, has_start = index, False
            if isinstance(right, bar.Repeat) and right.direction == "end":
                if not has_start and section > 0:
                    measures[section].leftBarline = bar.Repeat(direction="start")
                    added += 1
                section, has_start = index + 1, False
            elif right is not None and right.type in SECTION_BARS:
                section, has_start = index + 1, False
    return added


def score_to_midi_bytes(score: stream.Stream) -> bytes:
    """Export with music21's own `score.write('midi')` and return the file's bytes."""
    with tempfile.TemporaryDirectory(prefix="midilm-m21-") as tmp:
        path = Path(tmp) / "piece.mid"
        score.write("midi", fp=str(path))
        return path.read_bytes()


def export_chorale(name: str) -> bytes:
    """A corpus chorale (e.g. `bach/bwv269`) as MIDI bytes; failures are `export_error`."""
    try:
        return score_to_midi_bytes(corpus.parse(name))
    except Exception as error:
        raise SourceError("export_error", _describe(error)) from error


def export_abc(text: str) -> tuple[bytes, dict[str, int]]:
    """One ABC tune as MIDI bytes, and the repairs made first: {"shared_meter": n,
    "open_repeats": m} (see `repair_shared_context` and `close_open_repeats`).

    If the tune does not export with the added start-repeats (2 of O'Neill's 2,009), it is
    exported once more with music21's own reading of its repeats.
    """
    try:
        score = converter.parse(text, format="abc")
        fixes = {
            "shared_meter": repair_shared_context(score),
            "open_repeats": close_open_repeats(score),
        }
    except Exception as error:
        raise SourceError("parse_error", _describe(error)) from error
    check_tempi(score)
    try:
        return score_to_midi_bytes(score), fixes
    except Exception as error:
        if not fixes["open_repeats"]:
            raise SourceError("export_error", _describe(error)) from error
    try:
        score = converter.parse(text, format="abc")
        fixes = {"shared_meter": repair_shared_context(score), "open_repeats": 0}
        return score_to_midi_bytes(score), fixes
    except Exception as error:
        raise SourceError("export_error", _describe(error)) from error


def check_tempi(score: stream.Stream) -> None:
    """`bad_tempo` for a metronome mark of zero, negative or no speed (`Q:1/4=0`), which
    music21's MIDI writer would divide by; the range check runs on the MIDI afterwards."""
    for mark in score.recurse().getElementsByClass("MetronomeMark"):
        number = mark.number
        if number is not None and not (math.isfinite(float(number)) and number > 0):
            raise SourceError("bad_tempo", f"metronome mark of {number} beats per minute")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
