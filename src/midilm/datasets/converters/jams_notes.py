"""JAMS (GuitarSet) to MIDI: each `note_midi` annotation (one per string) becomes one track."""

from __future__ import annotations

import jams
from symusic import Note, Score, Tempo, TimeSignature, Track

from midilm.datasets.music21_export import SourceError
from midilm.datasets.sources import PieceTask

TPQ = 480
VELOCITY = 80
DEFAULT_QPM = 120.0
GUITAR_PROGRAM = 25  # General MIDI acoustic guitar (steel)


def jam_tempo(jam: jams.JAMS) -> float:
    """The first `tempo` annotation's value (GuitarSet gives one per excerpt), else 120."""
    for annotation in jam.search(namespace="tempo"):
        for observation in annotation.data:
            if observation.value and observation.value > 0:
                return float(observation.value)
    return DEFAULT_QPM


def jam_to_score(jam: jams.JAMS) -> Score:
    """Onsets and durations in seconds become ticks at the excerpt's tempo; pitches (floats in
    GuitarSet, with cents) are rounded to the nearest semitone."""
    qpm = jam_tempo(jam)
    ticks_per_second = TPQ * qpm / 60.0
    score = Score(TPQ)
    score.tempos.append(Tempo(0, qpm=qpm))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    for index, annotation in enumerate(jam.search(namespace="note_midi")):
        source = annotation.annotation_metadata.data_source or str(index)
        track = Track(name=f"string {source}", program=GUITAR_PROGRAM)
        rows = sorted(
            (
                round(obs.time * ticks_per_second),
                max(1, round(obs.duration * ticks_per_second)),
                round(float(obs.value)),
            )
            for obs in annotation.data
        )
        for time, duration, pitch in rows:
            if 0 <= pitch <= 127:
                track.notes.append(Note(time, duration, pitch, VELOCITY))
        score.tracks.append(track)
    return score


def jams_task_to_midi(task: PieceTask) -> bytes:
    try:
        jam = jams.load(task.ref, validate=False)
    except Exception as error:
        raise SourceError("parse_error", f"jams: {type(error).__name__}: {error}") from error
    return jam_to_score(jam).dumps_midi()
