"""Piano-roll steps (JSB Chorales JSON) to MIDI: one note per run of a pitch over steps."""

from __future__ import annotations

import json
from collections.abc import Sequence

from symusic import Note, Score, Tempo, TimeSignature, Track

from midilm.datasets.sources import PieceTask

TPQ = 480
VELOCITY = 80
DEFAULT_QPM = 120.0


def pianoroll_to_score(
    steps: Sequence[Sequence[float]], steps_per_quarter: int, qpm: float = DEFAULT_QPM
) -> Score:
    """A pitch sounding on consecutive steps is one held note (the roll cannot tell a held note
    from a repeated one, so runs are merged); negative, NaN or > 127 pitches are silence."""
    step_ticks = TPQ // steps_per_quarter
    score = Score(TPQ)
    score.tempos.append(Tempo(0, qpm=qpm))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track(name="pianoroll", program=0)
    started: dict[int, int] = {}  # pitch -> start step
    for index, step in enumerate([*steps, []]):  # a final empty step closes every note
        now = {int(p) for p in step if p == p and 0 <= p <= 127}  # p == p drops NaN
        for pitch in sorted(set(started) - now):
            begin = started.pop(pitch)
            track.notes.append(
                Note(begin * step_ticks, (index - begin) * step_ticks, pitch, VELOCITY)
            )
        for pitch in sorted(now - set(started)):
            started[pitch] = index
    track.notes.sort(key=lambda n: (n.time, n.pitch))
    score.tracks.append(track)
    return score


def pianoroll_task_to_midi(task: PieceTask) -> bytes:
    """`task.text` is the JSON of the piece's steps; `task.options` holds steps_per_quarter."""
    options = json.loads(task.options or "{}")
    steps = json.loads(task.text)
    score = pianoroll_to_score(steps, int(options.get("steps_per_quarter", 4)))
    return score.dumps_midi()
