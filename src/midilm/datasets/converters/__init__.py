"""Converters from each source format to MIDI bytes; the worker validates what they return.

One function per format, `(task) -> (midi_bytes, repairs)`, picked by `PieceTask.kind`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from midilm.datasets.music21_export import SourceError, export_abc, export_chorale
from midilm.datasets.sources import PieceTask

Converted = tuple[bytes, tuple[str, ...]]


def midi_file(task: PieceTask) -> Converted:
    """A MIDI file as it is (symusic re-serializes it afterwards)."""
    try:
        return Path(task.ref).read_bytes(), ()
    except OSError as error:
        raise SourceError("parse_error", f"{type(error).__name__}: {error}") from error


def abc_tune(task: PieceTask) -> Converted:
    """One ABC tune (its text) through music21, with the repairs of `export_abc`."""
    data, fixes = export_abc(task.text)
    return data, tuple(sorted(name for name, count in fixes.items() if count))


def chorale(task: PieceTask) -> Converted:
    return export_chorale(task.ref), ()


def pianoroll(task: PieceTask) -> Converted:
    from midilm.datasets.converters.pianoroll import pianoroll_task_to_midi

    return pianoroll_task_to_midi(task), ()


def guitarpro(task: PieceTask) -> Converted:
    from midilm.datasets.converters.guitarpro import guitarpro_task_to_midi

    return guitarpro_task_to_midi(task), ()


def jams_file(task: PieceTask) -> Converted:
    from midilm.datasets.converters.jams_notes import jams_task_to_midi

    return jams_task_to_midi(task), ()


CONVERTERS: dict[str, Callable[[PieceTask], Converted]] = {
    "folder": midi_file,
    "midi": midi_file,
    "music21_abc": abc_tune,
    "abc": abc_tune,
    "music21_chorales": chorale,
    "pianoroll": pianoroll,
    "guitarpro": guitarpro,
    "jams": jams_file,
}
# Kinds whose input is a user's file: a failure there is `parse_error`, else `export_error`.
FILE_KINDS = ("folder", "midi", "guitarpro", "jams")


def convert(task: PieceTask) -> Converted:
    """The piece as MIDI bytes, as its source gives it, and the repairs made on the way."""
    if task.kind not in CONVERTERS:
        raise SourceError("export_error", f"no converter for kind {task.kind!r}")
    return CONVERTERS[task.kind](task)


def failure_reason(task: PieceTask) -> str:
    return "parse_error" if task.kind in FILE_KINDS else "export_error"
