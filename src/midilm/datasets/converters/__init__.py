"""Converters from each source format to MIDI bytes; the worker validates what they return.

One function per format, `(task, filters) -> (midi_bytes, repairs)`, picked by
`PieceTask.kind`. Files are read with `read_input` (regular files only, size bound first);
`filters` also bounds the values a converter turns into ticks (tempo, times, durations).
"""

from __future__ import annotations

from collections.abc import Callable

from midilm.datasets.inputs import read_input
from midilm.datasets.music21_export import SourceError, export_abc, export_chorale
from midilm.datasets.sources import PieceTask
from midilm.specs.dataset import FilterSpec

Converted = tuple[bytes, tuple[str, ...]]


def midi_file(task: PieceTask, filters: FilterSpec) -> Converted:
    """A MIDI file as it is (symusic re-serializes it afterwards)."""
    return read_input(task.ref, filters.max_file_bytes), ()


def abc_tune(task: PieceTask, filters: FilterSpec) -> Converted:
    """One ABC tune (its text, read while listing) through music21, with the repairs of
    `export_abc`."""
    data, fixes = export_abc(task.text)
    return data, tuple(sorted(name for name, count in fixes.items() if count))


def chorale(task: PieceTask, filters: FilterSpec) -> Converted:
    return export_chorale(task.ref), ()


def pianoroll(task: PieceTask, filters: FilterSpec) -> Converted:
    from midilm.datasets.converters.pianoroll import pianoroll_task_to_midi

    return pianoroll_task_to_midi(task), ()


def guitarpro(task: PieceTask, filters: FilterSpec) -> Converted:
    from midilm.datasets.converters.guitarpro import guitarpro_task_to_midi

    return guitarpro_task_to_midi(task, filters), ()


def jams_file(task: PieceTask, filters: FilterSpec) -> Converted:
    from midilm.datasets.converters.jams_notes import jams_task_to_midi

    return jams_task_to_midi(task, filters), ()


CONVERTERS: dict[str, Callable[[PieceTask, FilterSpec], Converted]] = {
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


def convert(task: PieceTask, filters: FilterSpec) -> Converted:
    """The piece as MIDI bytes, as its source gives it, and the repairs made on the way."""
    if task.kind not in CONVERTERS:
        raise SourceError("export_error", f"no converter for kind {task.kind!r}")
    return CONVERTERS[task.kind](task, filters)


def failure_reason(task: PieceTask) -> str:
    return "parse_error" if task.kind in FILE_KINDS else "export_error"
