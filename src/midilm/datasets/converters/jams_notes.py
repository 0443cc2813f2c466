"""JAMS (GuitarSet) to MIDI: each `note_midi` annotation (one per string) becomes one track.

Times, durations and the tempo are checked before they become ticks: a negative, zero or
non-finite duration is `bad_duration`, a tempo outside the filters' range `bad_tempo`, a note
past `max_duration_s` `too_long` (no value can overflow the tick type).
"""

from __future__ import annotations

import io
import math

import jams
from symusic import Note, Score, Tempo, TimeSignature, Track

from midilm.datasets.inputs import read_input
from midilm.datasets.music21_export import SourceError
from midilm.datasets.sources import PieceTask
from midilm.specs.dataset import FilterSpec

TPQ = 480
VELOCITY = 80
DEFAULT_QPM = 120.0
GUITAR_PROGRAM = 25  # General MIDI acoustic guitar (steel)


def jam_tempo(jam: jams.JAMS) -> float:
    """The first `tempo` annotation's value (GuitarSet gives one per excerpt), else 120."""
    for annotation in jam.search(namespace="tempo"):
        for observation in annotation.data:
            if observation.value is not None:
                return _number(observation.value, "tempo")
    return DEFAULT_QPM


def _number(value: object, what: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise SourceError("parse_error", f"{what} {value!r} is not a number") from error


def jam_to_score(jam: jams.JAMS, filters: FilterSpec) -> Score:
    """Onsets and durations in seconds become ticks at the excerpt's tempo; pitches (floats in
    GuitarSet, with cents) are rounded to the nearest semitone."""
    qpm = jam_tempo(jam)
    if not (math.isfinite(qpm) and filters.min_qpm <= qpm <= filters.max_qpm):
        raise SourceError(
            "bad_tempo",
            f"tempo {qpm!r} qpm is outside dataset.filters [min_qpm={filters.min_qpm:g}, "
            f"max_qpm={filters.max_qpm:g}]",
        )
    ticks_per_second = TPQ * qpm / 60.0
    score = Score(TPQ)
    score.tempos.append(Tempo(0, qpm=qpm))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    for index, annotation in enumerate(jam.search(namespace="note_midi")):
        source = annotation.annotation_metadata.data_source or str(index)
        track = Track(name=f"string {source}", program=GUITAR_PROGRAM)
        rows = []
        for obs in annotation.data:
            time, duration = _number(obs.time, "time"), _number(obs.duration, "duration")
            pitch = _number(obs.value, "pitch")
            if not (math.isfinite(time) and math.isfinite(duration) and math.isfinite(pitch)):
                raise SourceError("bad_duration", f"note at {time!r} s: a value is not finite")
            if time < 0 or duration <= 0:
                raise SourceError(
                    "bad_duration", f"note at {time:g} s lasts {duration:g} s (must be > 0)"
                )
            if time + duration > filters.max_duration_s:
                raise SourceError(
                    "too_long",
                    f"a note ends at {time + duration:.1f} s > dataset.filters.max_duration_s="
                    f"{filters.max_duration_s:g}",
                )
            rows.append((round(time * ticks_per_second),
                         max(1, round(duration * ticks_per_second)), round(pitch)))  # fmt: skip
        for time, duration, pitch in sorted(rows):
            if 0 <= pitch <= 127:
                track.notes.append(Note(time, duration, pitch, VELOCITY))
        score.tracks.append(track)
    return score


def jams_task_to_midi(task: PieceTask, filters: FilterSpec) -> bytes:
    data = read_input(task.ref, filters.max_file_bytes)
    try:
        jam = jams.load(io.StringIO(data.decode("utf-8")), validate=False)
    except Exception as error:
        raise SourceError("parse_error", f"jams: {type(error).__name__}: {error}") from error
    return jam_to_score(jam, filters).dumps_midi()
