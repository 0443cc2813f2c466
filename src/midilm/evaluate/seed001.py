"""Seed 001's four metrics from note arrays, in two variants, without music21 at run time.

- `midilm`: our reading of the thesis (docs/metrics.md): rhythm consistency mu/(mu+sd) of
  element durations (a chord counts once), consonance of `chordify` slices by music21's rule on
  pitch classes, key changes between windows of `key_window_beats` quarter notes (Krumhansl-
  Schmuckler, as music21), melody = the top line. With `key_window_beats` equal to
  `metrics.key_window_measures` measures of the file's first time signature, every value equals
  the music21 reference (`metrics.py`) on files music21 reads without moving notes.
- `thesis`: what the author's released evaluation code computes (lo-fAi, eval.ipynb): the sd of
  single-note durations with ties not joined, `isConsonant()` on music21's MIDI spelling, the
  number of key-signature objects in the parse, and the melody as every single note in flattened
  order. Its numbers sit beside the thesis's Table 3-3.

Drum tracks (MIDI channel 10) are left out of every metric of both variants.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import symusic

from midilm.evaluate.m21view import UNITS, Music21View, music21_view, music21_views
from midilm.evaluate.notes import PieceNotes, piece_from_bytes
from midilm.specs.evaluate import Seed001Spec

VARIANTS = ("midilm", "thesis")
METRICS = ("rhythm_consistency", "consonance", "dissonance", "key_changes")

# Krumhansl-Kessler key profiles, as music21's KrumhanslSchmuckler weights (tonic first)
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
CONSONANT_ABOVE_BASS = frozenset({3, 4, 7, 8, 9})  # m3, M3, P5, m6, M6 in semitones
# music21's MIDI import spells pitch classes C C# D E- E F F# G G# A B- B: their letter steps
MIDI_SPELLING_STEPS = (0, 0, 1, 2, 2, 3, 3, 4, 4, 5, 6, 6)
SPELLED_CONSONANT = frozenset({(3, 3), (3, 4), (5, 7), (6, 8), (6, 9)})  # (generic, semitones)


@dataclass(frozen=True)
class Seed001Result:
    """One piece's values (`<variant>_<metric>`) and what melodic similarity needs."""

    values: dict[str, float]
    events: np.ndarray  # (n, 2) int64 (onset in twelfths, pitch) of every pitched note, sorted
    thesis_melody: tuple[int, ...]  # seed 001's code: single notes in flattened order


def analyze(
    piece: PieceNotes,
    spec: Seed001Spec,
    data: bytes | None = None,
    variants: Sequence[str] = VARIANTS,
) -> Seed001Result:
    """Seed 001's metrics of one piece in the given variants. `data` (the file's bytes) lets the
    thesis key count see which track holds each key signature, as music21 does."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown seed 001 variant(s) {unknown}; known: {list(VARIANTS)}")
    values: dict[str, float] = {}
    if "thesis" in variants:
        joined, split = music21_views(piece, spec.max_units)
        consonance, dissonance = harmonic_coherence(split, spelled=True)
        values.update(
            {
                "thesis_rhythm_consistency": single_note_duration_sd(split),
                "thesis_consonance": consonance,
                "thesis_dissonance": dissonance,
                "thesis_key_changes": float(key_signature_count(piece, data)),
            }
        )
        melody = tuple(thesis_melody(split))
    else:
        joined, melody = music21_view(piece, True, spec.max_units), ()
    if "midilm" in variants:
        consonance, dissonance = harmonic_coherence(joined)
        values.update(
            {
                "midilm_rhythm_consistency": rhythm_consistency(joined),
                "midilm_consonance": consonance,
                "midilm_dissonance": dissonance,
                "midilm_key_changes": float(key_changes(joined, spec.key_window_beats)),
            }
        )
    return Seed001Result(values, note_events(joined), melody)


def analyze_file(
    path: str | Path, spec: Seed001Spec, variants: Sequence[str] = VARIANTS
) -> Seed001Result:
    """`analyze` of a MIDI file (ValueError naming the file when it is not MIDI)."""
    data = Path(path).read_bytes()
    return analyze(piece_from_bytes(data, path), spec, data, variants)


# --- midilm variant --------------------------------------------------------------------------


def _pitched(view: Music21View) -> np.ndarray:
    return ~view.drum


def rhythm_consistency(view: Music21View) -> float:
    """mu / (mu + sd) of element durations in quarter notes (population sd); nan if none."""
    durations = view.duration[_pitched(view)] / UNITS
    if durations.size == 0:
        return math.nan
    mu, sd = float(durations.mean()), float(durations.std())
    return mu / (mu + sd) if mu + sd > 0 else math.nan


def note_events(view: Music21View) -> np.ndarray:
    """(onset, pitch) of every pitch of every pitched element, sorted by onset then pitch."""
    owner = view.element_of_pitch()
    keep = ~view.drum[owner]
    events = np.stack([view.onset[owner][keep], view.pitches[keep]], axis=1)
    order = np.lexsort((events[:, 1], events[:, 0]))
    return events[order].astype(np.int64)


def top_line(events: np.ndarray, skip: int = 0) -> list[int]:
    """The highest pitch at each onset, after dropping the first `skip` events (the prompt)."""
    rest = events[max(skip, 0) :]
    if rest.size == 0:
        return []
    onsets = rest[:, 0]
    starts = np.flatnonzero(np.append(True, onsets[1:] != onsets[:-1]))
    return np.maximum.reduceat(rest[:, 1], starts).tolist()


def melody_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Equal pitches at equal positions / length of the shorter melody; nan if one is empty."""
    shorter = min(len(a), len(b))
    if shorter == 0:
        return math.nan
    return sum(x == y for x, y in zip(a, b, strict=False)) / shorter


def window_keys(view: Music21View, window_beats: float) -> list[tuple[int, str]]:
    """Best Krumhansl-Schmuckler key (tonic pitch class, mode) of each window of `window_beats`
    quarter notes that holds a pitched element (music21's `KrumhanslSchmuckler` rule): each
    pitch weighs its element's length, a zero-length note one quarter note."""
    pitched = _pitched(view)
    if not pitched.any():
        return []
    owner = view.element_of_pitch()
    keep = pitched[owner]
    window_of_element = _window_index(view.onset, window_beats)
    windows = np.unique(window_of_element[pitched])
    position = np.searchsorted(windows, window_of_element[owner][keep])
    # music21's Note(quarterLength=0) lasts a quarter: the reference weighs a zero-length note 1
    length = np.where(view.duration == 0, UNITS, view.duration)
    weights = np.zeros((windows.size, 12))
    np.add.at(weights, (position, view.pitches[keep] % 12), length[owner][keep] / UNITS)
    return best_keys(weights)


def _window_index(onsets: np.ndarray, window_beats: float) -> np.ndarray:
    """floor(onset / window) exactly: onsets are integer twelfths, the window a float."""
    numerator, denominator = float(window_beats).as_integer_ratio()
    return (onsets * denominator) // (numerator * UNITS)


@cache
def _profile_terms() -> tuple[np.ndarray, np.ndarray]:
    """(24, 12) profile values minus their mean, row k = key (pitch class k // 2, minor if k is
    odd), column j = pitch class; and each row's sum of squares accumulated over j in order."""
    rows = []
    for tonic in range(12):
        for profile in (MAJOR_PROFILE, MINOR_PROFILE):
            mean = sum(profile) / len(profile)
            rows.append([profile[(j - tonic) % 12] - mean for j in range(12)])
    table = np.array(rows)
    squares = np.zeros(24)
    for j in range(12):
        squares = squares + table[:, j] ** 2
    return table, squares


def best_keys(weights: np.ndarray) -> list[tuple[int, str]]:
    """Per row of pitch-class weights, the key with the highest correlation, computed in
    music21's order of operations; ties go to the higher tonic, then to minor (music21's
    sort). A row without spread correlates 0 with every key (B minor wins the tie)."""
    table, squares = _profile_terms()
    mean = np.zeros(len(weights))
    for j in range(12):
        mean = mean + weights[:, j]
    mean = mean / 12
    top = np.zeros((len(weights), 24))
    spread = np.zeros(len(weights))
    for j in range(12):
        centred = weights[:, j] - mean
        top = top + table[:, j][None, :] * centred[:, None]
        spread = spread + centred**2
    with np.errstate(divide="ignore", invalid="ignore"):
        coefficients = top / np.power(squares[None, :] * spread[:, None], 0.5)
    coefficients[spread == 0] = 0.0
    best = 23 - np.argmax(coefficients[:, ::-1], axis=1)
    return [(int(k) // 2, "minor" if k % 2 else "major") for k in best]


def key_changes(view: Music21View, window_beats: float) -> int:
    """Changes of the estimated key between consecutive windows that hold pitched notes."""
    keys = window_keys(view, window_beats)
    return sum(a != b for a, b in itertools.pairwise(keys))


@cache
def consonance_table(spelled: bool) -> np.ndarray:
    """(12, 4096) bools: is a sonority with this bass pitch class and pitch-class set (bit mask)
    consonant by music21's `Chord.isConsonant()` rule, on pitch classes or on MIDI spelling.
    Sets of four or more pitch classes are dissonant."""
    table = np.zeros((12, 4096), dtype=bool)
    for size in (1, 2, 3):
        for classes in itertools.combinations(range(12), size):
            mask = sum(1 << pc for pc in classes)
            for bass in classes:
                table[bass, mask] = _consonant(bass, list(classes), spelled)
    return table


def _consonant(bass: int, classes: list[int], spelled: bool) -> bool:
    if len(classes) == 1:
        return True
    if len(classes) == 2:
        upper = classes[1] if classes[0] == bass else classes[0]
        if spelled:
            return (_generic(bass, upper), (upper - bass) % 12) in SPELLED_CONSONANT
        return (upper - bass) % 12 in CONSONANT_ABOVE_BASS
    if len(classes) == 3:
        for root in classes:
            third, fifth = _triad_members(root, [c for c in classes if c != root], spelled)
            if third is not None:
                return bass != fifth
    return False


def _triad_members(root: int, others: list[int], spelled: bool) -> tuple[int | None, int]:
    """(third, fifth) when root + others form a major or minor triad (spelled: as thirds and a
    fifth in MIDI spelling), else (None, -1)."""
    for third, fifth in (others, others[::-1]):
        if (fifth - root) % 12 != 7 or (third - root) % 12 not in (3, 4):
            continue
        if spelled and (_generic(root, third), _generic(root, fifth)) != (3, 5):
            continue
        return third, fifth
    return None, -1


def _generic(low: int, high: int) -> int:
    """Generic interval (3 = a third) between two pitch classes in MIDI import spelling."""
    return (MIDI_SPELLING_STEPS[high] - MIDI_SPELLING_STEPS[low]) % 7 + 1


def sonorities(view: Music21View, cuts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`chordify`: the piece cut at every onset and end (and at `cuts`); for each slice in which
    a pitched note sounds, its bass pitch class and pitch-class bit mask."""
    pitched = _pitched(view)
    owner = view.element_of_pitch()
    keep = pitched[owner]
    starts = view.onset[owner][keep]
    ends = starts + view.duration[owner][keep]
    pitches = view.pitches[keep]
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    extra = np.zeros(0, np.int64) if cuts is None else cuts
    points = np.unique(np.concatenate([[0], starts, ends, extra]))
    first = np.searchsorted(points, starts)
    last = np.where(ends > starts, np.searchsorted(points, ends), first + 1)
    active = np.zeros((points.size + 1, 128), dtype=np.int32)
    np.add.at(active, (first, pitches), 1)
    np.add.at(active, (last, pitches), -1)
    sounding = np.cumsum(active, axis=0)[: points.size - 1] > 0  # slices end at the next point
    occupied = sounding.any(axis=1)
    sounding = sounding[occupied]
    bass = sounding.argmax(axis=1) % 12
    by_class = sounding[:, :120].reshape(-1, 10, 12).any(axis=1)
    by_class |= np.pad(sounding[:, 120:], ((0, 0), (0, 4)))
    mask = by_class @ (1 << np.arange(12))
    return bass, mask


def harmonic_coherence(view: Music21View, spelled: bool = False) -> tuple[float, float]:
    """(consonance, dissonance) shares of the chordified slices; nan if none. `spelled=True`:
    the author's reading, `isConsonant()` on MIDI spelling, slices cut at barlines too (it
    chordifies measure by measure) and ending with the first part's last measure."""
    cuts = None
    if spelled:
        view = _first_part_measures(view)
        cuts = view.barlines
    bass, mask = sonorities(view, cuts)
    if bass.size == 0:
        return math.nan, math.nan
    consonant = int(consonance_table(spelled)[bass, mask].sum())
    return consonant / bass.size, (bass.size - consonant) / bass.size


def _first_part_measures(view: Music21View) -> Music21View:
    """`chordify` takes its measures from the first part: later notes of other parts drop out."""
    in_first = view.part == 0
    if not in_first.any():
        return view
    last_onset = int(view.onset[in_first].max())
    measure = int(np.searchsorted(view.barlines, last_onset, side="right")) - 1
    limit = int(view.barlines[min(measure + 1, view.barlines.size - 1)])
    keep = view.onset < limit
    counts = view.pitch_counts()
    starts = np.concatenate([[0], np.cumsum(counts[keep])[:-1]]).astype(np.int64)
    return Music21View(
        part=view.part[keep],
        onset=view.onset[keep],
        duration=np.minimum(view.duration[keep], limit - view.onset[keep]),
        chord=view.chord[keep],
        drum=view.drum[keep],
        pitch_start=starts if keep.any() else np.zeros(0, np.int64),
        pitches=view.pitches[np.repeat(keep, counts)],
        barlines=view.barlines[view.barlines <= limit],
        first_bar=view.first_bar,
        n_parts=view.n_parts,
    )


# --- thesis variant --------------------------------------------------------------------------


def single_notes(view: Music21View) -> np.ndarray:
    """Indices of single pitched notes (not chords, not drums) in music21's flattened order of
    the whole score: by onset, grace notes first, then part, then order within the part."""
    index = np.flatnonzero(~view.chord & ~view.drum)
    order = np.lexsort((index, view.part[index], view.duration[index] != 0, view.onset[index]))
    return index[order]


def single_note_duration_sd(view: Music21View) -> float:
    """The author's 'rhythm consistency': population sd of single-note durations in quarter
    notes (tied parts counted apart, chords left out); nan if there is none."""
    durations = view.duration[single_notes(view)] / UNITS
    return float(durations.std()) if durations.size else math.nan


def thesis_melody(view: Music21View) -> list[int]:
    """The author's melody: the pitch of every single note in flattened order."""
    index = single_notes(view)
    return view.pitches[view.pitch_start[index]].tolist()


def key_signature_count(piece: PieceNotes, data: bytes | None) -> int:
    """The author's 'key changes': key objects in music21's parse. Each part holds its own
    track's key signatures plus copies of those in note-less tracks read before it. Without the
    file's bytes, symusic's merged list is taken to sit in the first track."""
    if piece.key_signature_ticks.size == 0:
        return 0
    if data is None:
        return int(piece.key_signature_ticks.size)
    return _key_objects_in_parse(data)


def _key_objects_in_parse(data: bytes) -> int:
    count = 0
    conductor = 0
    for has_notes, signatures in _scan_tracks(data):
        if has_notes:
            count += signatures + conductor
        else:
            conductor += signatures
    return count


def _scan_tracks(data: bytes) -> list[tuple[bool, int]]:
    """Per MTrk chunk, in file order: (holds notes, key-signature events), each chunk parsed by
    symusic as a one-track file (music21 keeps repeated signatures, so they all count)."""
    if data[:4] != b"MThd" or len(data) < 14:
        return []
    division = data[12:14]
    tracks = []
    position = 8 + int.from_bytes(data[4:8], "big")
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        length = int.from_bytes(data[position + 4 : position + 8], "big")
        chunk = data[position : position + 8 + length]
        position += 8 + length
        if kind != b"MTrk":
            continue
        header = b"MThd" + (6).to_bytes(4, "big") + b"\x00\x00\x00\x01" + division
        try:
            score = symusic.Score.from_midi(header + chunk)
        except Exception:  # a chunk symusic cannot read holds nothing music21 would count
            tracks.append((False, 0))
            continue
        tracks.append((score.note_num() > 0, len(score.key_signatures)))
    return tracks
