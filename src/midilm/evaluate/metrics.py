"""Seed 001's four music21 metrics: rhythm consistency, melodic similarity, key changes and
harmonic coherence. Decisions (truncation, top-note melody, estimated keys) are in docs/metrics.md.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
from music21 import analysis, chord, converter, key, meter, note, stream

DEFAULT_BAR_QL = 4.0  # 4/4 when a file has no time signature
POSITIONS_PER_QUARTER = 10080  # a multiple of every quantization divisor music21 uses
CONSONANT_SEMITONES = frozenset({3, 4, 7, 8, 9})  # above the bass, as music21's Interval
TRIADS = ({0, 4, 7}, {0, 3, 7})  # major, minor; pitch classes above the root

Melody = list[int]  # MIDI pitch of the top note at each onset
NoteEvents = list[tuple[float, int]]  # (onset in quarter notes, MIDI pitch), sorted


def load_score(path: str | Path, max_quarter_length: float | None = None) -> stream.Score:
    """Parse a MIDI file (music21 quantizes to 16ths and triplets), keep the first
    `max_quarter_length` quarter notes as flat parts (plus the first time signature), and join
    the notes music21 split at barlines."""
    score = converter.parse(str(path), format="midi")
    if not isinstance(score, stream.Score):
        raise ValueError(f"{path}: music21 returned a {type(score).__name__}, not a Score")
    return truncate(score, max_quarter_length)


def truncate(score: stream.Score, max_quarter_length: float | None) -> stream.Score:
    """A new Score of flat parts holding the notes and chords that start before
    `max_quarter_length`, durations clipped there (the elements are moved, not copied)."""
    limit = math.inf if max_quarter_length is None else float(max_quarter_length)
    out = stream.Score()
    first_ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    parts = list(score.parts) or [score]
    for i, part in enumerate(parts):
        flat = part.flatten()
        new = stream.Part()
        if i == 0 and first_ts is not None:
            new.insert(0, meter.TimeSignature(first_ts.ratioString))
        for element in join_tied_notes(flat):
            offset = float(element.getOffsetBySite(flat))
            if offset >= limit:
                continue
            if offset + float(element.quarterLength) > limit:
                element.quarterLength = limit - offset
            new.insert(offset, element)
        out.insert(0, new)
    return out


def join_tied_notes(flat: stream.Stream) -> list[note.NotRest]:
    """The notes and chords of a flat part with every tied chain joined into its first element
    (lengthened). music21's `stripTies` walks the notes in order and leaves a chain split when
    other notes of the part sound in between (double stops, voices), so chains are matched here
    by pitches and position: a tied part continues the chain that ends where it starts."""
    open_chains: dict[tuple[int, tuple[int, ...]], note.NotRest] = {}
    kept: list[note.NotRest] = []
    for element in flat.notes:
        start = _position(element.getOffsetBySite(flat))
        pitches = tuple(sorted(int(p.midi) for p in getattr(element, "pitches", ())))
        tie = getattr(element.tie, "type", None)
        head = open_chains.pop((start, pitches), None) if tie in ("continue", "stop") else None
        if head is None:
            head = element
            kept.append(element)
        else:
            head.quarterLength = head.quarterLength + element.quarterLength
        if tie in ("start", "continue"):
            open_chains[(start + _position(element.quarterLength), pitches)] = head
        head.tie = None
    return kept


def _position(quarters: float) -> int:
    """An offset or length as an exact integer (music21 keeps triplets as Fractions)."""
    return round(float(quarters) * POSITIONS_PER_QUARTER)


def rhythm_consistency(score: stream.Stream) -> float:
    """RC = mu / (mu + sd) of note durations in quarter notes (a chord counts once); nan if none."""
    durations = np.array([float(n.quarterLength) for n in score.recurse().notes], dtype=float)
    if durations.size == 0:
        return math.nan
    mu, sd = float(durations.mean()), float(durations.std())
    return mu / (mu + sd) if mu + sd > 0 else math.nan


def note_events(score: stream.Stream) -> NoteEvents:
    """Every sounding pitch as (onset, MIDI pitch), sorted by onset then pitch."""
    events: NoteEvents = []
    for part in list(getattr(score, "parts", [])) or [score]:
        flat = part.flatten()
        for element in flat.notes:
            offset = float(element.getOffsetBySite(flat))
            pitches = element.pitches if isinstance(element, chord.Chord) else [element.pitch]
            events.extend((offset, int(p.midi)) for p in pitches)
    return sorted(events)


def top_melody(events: NoteEvents, skip: int = 0) -> Melody:
    """The highest pitch at each onset, after dropping the first `skip` notes (the prompt)."""
    top: dict[float, int] = {}
    for offset, pitch in events[max(skip, 0) :]:
        top[offset] = max(pitch, top.get(offset, pitch))
    return [top[offset] for offset in sorted(top)]


def melody_similarity(a: Melody, b: Melody) -> float:
    """Equal pitches at equal positions / length of the shorter melody; nan if one is empty."""
    shorter = min(len(a), len(b))
    if shorter == 0:
        return math.nan
    return sum(x == y for x, y in zip(a, b, strict=False)) / shorter


def melodic_similarity(score: stream.Stream, reference: stream.Stream, skip: int = 0) -> float:
    """Seed 001's melodic similarity of two scores' top-note melodies, skipping `skip` notes."""
    return melody_similarity(
        top_melody(note_events(score), skip), top_melody(note_events(reference), skip)
    )


def bar_quarter_length(score: stream.Stream) -> float:
    """Length of a measure in quarter notes from the first time signature (4/4 if none)."""
    ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    return float(ts.barDuration.quarterLength) if ts is not None else DEFAULT_BAR_QL


def window_keys(score: stream.Stream, window_measures: int) -> list[tuple[int, str]]:
    """Best Krumhansl-Schmuckler key, as (tonic pitch class, mode), of each window of
    `window_measures` measures that holds notes."""
    if window_measures < 1:
        raise ValueError(f"key_window_measures must be >= 1, got {window_measures}")
    span = window_measures * bar_quarter_length(score)
    windows: dict[int, stream.Stream] = {}
    for part in list(getattr(score, "parts", [])) or [score]:
        flat = part.flatten()
        for element in flat.notes:
            offset = float(element.getOffsetBySite(flat))
            window = windows.setdefault(int(offset // span), stream.Stream())
            for pitch in element.pitches:  # every pitch of a chord weighs in
                window.insert(offset, note.Note(pitch, quarterLength=element.quarterLength))
    solver = analysis.discrete.KrumhanslSchmuckler()
    keys: list[tuple[int, str]] = []
    for index in sorted(windows):
        best = solver.getSolution(windows[index])
        keys.append((int(best.tonic.pitchClass), str(best.mode)))
    return keys


def key_changes(score: stream.Stream, window_measures: int) -> int:
    """Number of changes of the estimated key between consecutive windows that hold notes."""
    keys = window_keys(score, window_measures)
    return sum(a != b for a, b in itertools.pairwise(keys))


def is_consonant(sonority: chord.Chord) -> bool:
    """music21's `Chord.isConsonant()` rule on pitch classes, so MIDI's default spelling (G#-C-E-
    for an A-flat triad) does not matter: one pitch class; two a consonant interval above the bass
    (m3, M3, P5, m6, M6); three a major or minor triad not in second inversion."""
    pitches = sorted(sonority.pitches, key=lambda p: p.ps)
    classes = sorted({p.pitchClass for p in pitches})
    if not classes:
        return False
    bass = pitches[0].pitchClass
    if len(classes) == 1:
        return True
    if len(classes) == 2:
        upper = classes[1] if classes[0] == bass else classes[0]
        return (upper - bass) % 12 in CONSONANT_SEMITONES
    if len(classes) == 3:
        for root in classes:
            if {(c - root) % 12 for c in classes} in TRIADS:
                return bass != (root + 7) % 12
    return False


def harmonic_coherence(score: stream.Stream, spelled: bool = False) -> tuple[float, float]:
    """(consonance ratio, dissonance ratio) over the chords of `chordify()`; nan if none.
    `spelled=True` calls music21's `isConsonant()` on the spelling MIDI import gives instead."""
    chords = list(score.chordify().recurse().getElementsByClass(chord.Chord))
    if not chords:
        return math.nan, math.nan
    test = chord.Chord.isConsonant if spelled else is_consonant
    consonant = sum(bool(test(c)) for c in chords)
    return consonant / len(chords), (len(chords) - consonant) / len(chords)


def author_metrics(path: str | Path) -> tuple[dict[str, float], Melody]:
    """Seed 001's metrics as its author's released code computes them (lo-fAi, eval.ipynb), on
    the whole file: population sd of single-note durations, ties not joined, chords left out;
    consonance by `isConsonant()` on music21's MIDI spelling; the number of Key objects in the
    parse; and the melody as every single note in flattened order. nan where that code would
    divide by zero."""
    score = converter.parse(str(path), format="midi")
    flat_notes = [n for n in score.flatten().notes if isinstance(n, note.Note)]
    durations = np.array([float(n.quarterLength) for n in flat_notes], dtype=float)
    consonance, dissonance = harmonic_coherence(score, spelled=True)
    values = {
        "rhythm_consistency": float(durations.std()) if durations.size else math.nan,
        "consonance": consonance,
        "dissonance": dissonance,
        "key_changes": float(len(score.flatten().getElementsByClass(key.Key))),
    }
    return values, [int(n.pitch.midi) for n in flat_notes]
