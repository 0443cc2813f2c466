"""A piece as music21's MIDI import sees it, rebuilt from note arrays without music21.

Seed 001's metrics were defined on `music21.converter.parse(midi)`, and our music21 reference
(`metrics.py`) scores that parse. Its numbers depend on what the import does to the notes, so the
fast path does the same steps, on arrays:

1. pairing: a note-on ends at the first note-off of its pitch after it (music21 does not pair
   overlapping equal pitches first-in-first-out as symusic does);
2. chords: in each track, notes starting less than a 16th (tpq/4 ticks) after a note and ending
   within a 16th of it form one Chord at the first onset, lasting as long as the last note
   gathered; other notes stay single;
3. quantization (`Stream.quantize`, divisors 4 and 3): each onset to the nearest 16th or
   triplet eighth; each duration likewise, preferring the grid on which the gap to the next onset
   lies, and at least one grid step (zero-length notes stay zero, as grace notes);
4. measures from the time signatures (4/4 when none), notes split at barlines into tied parts.

`music21_view(piece, join_ties=True)` is what `metrics.load_score` yields (tied parts joined);
`join_ties=False` keeps the tied parts, as seed 001's own evaluation code reads its files.
Positions and lengths are integers in twelfths of a quarter note (every quantized value is one).
A part is a symusic track; music21 makes one part per MIDI track chunk, so a chunk holding
several channels (format 0) is one part there and several here. Where music21 misreads a file
(it moves notes that follow a note tied across a barline while others overlap it; it gives
parts without their own time signature 4/4 measures) this view keeps the file: docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midilm.evaluate.notes import PieceNotes
from midilm.specs.evaluate import MUSIC21_UNITS

DIVISORS = (4, 3)  # music21's default quarterLengthDivisors
UNITS = MUSIC21_UNITS  # positions per quarter note after quantization (lcm of the divisors)
DEFAULT_BAR_UNITS = 4 * UNITS  # 4/4 without a time signature


@dataclass(frozen=True)
class Music21View:
    """Elements (Notes and Chords) per part in music21's order: by part, then onset."""

    part: np.ndarray  # int64 part index (tracks with notes, in file order)
    onset: np.ndarray  # int64 twelfths of a quarter
    duration: np.ndarray  # int64 twelfths (0 for a grace note)
    chord: np.ndarray  # bool: a Chord object (two or more notes gathered)
    drum: np.ndarray  # bool: on MIDI channel 10 (Unpitched / PercussionChord in music21)
    pitch_start: np.ndarray  # int64: the element's pitches are pitches[pitch_start[i]:next]
    pitches: np.ndarray  # int64, every pitch of every element
    barlines: np.ndarray  # int64 twelfths: measure starts (first 0), one past the last measure
    first_bar: int  # twelfths per measure of the first time signature (48 for 4/4)
    n_parts: int

    @property
    def n_elements(self) -> int:
        return int(self.onset.size)

    def pitch_counts(self) -> np.ndarray:
        return np.diff(np.append(self.pitch_start, self.pitches.size))

    def element_of_pitch(self) -> np.ndarray:
        """For each entry of `pitches`, the index of its element."""
        return np.repeat(np.arange(self.n_elements), self.pitch_counts())


def music21_view(
    piece: PieceNotes, join_ties: bool = True, max_units: int | None = None
) -> Music21View:
    """The music21 parse of `piece`; with `max_units`, only elements starting before it, their
    durations clipped there (`metrics.truncate`)."""
    whole = _whole(piece)
    return _truncate(whole if join_ties else _split_at_barlines(whole), max_units)


def music21_views(
    piece: PieceNotes, max_units: int | None = None
) -> tuple[Music21View, Music21View]:
    """(tied parts joined, tied parts kept) from one pass over the notes."""
    whole = _whole(piece)
    return _truncate(whole, max_units), _truncate(_split_at_barlines(whole), max_units)


def _whole(piece: PieceNotes) -> Music21View:
    """Every track quantized into elements, with the barlines of the whole piece."""
    whole = _concatenate([_quantized_part(piece, t) for t in sorted(set(piece.track.tolist()))])
    end = int((whole.onset + whole.duration).max()) if whole.n_elements else 0
    changes, first_bar = _measures(piece)
    return _replace(whole, barlines=_barlines(changes, end), first_bar=first_bar)


@dataclass(frozen=True)
class _Part:
    onset: np.ndarray  # quantized, twelfths
    duration: np.ndarray
    pitch_start: np.ndarray
    pitches: np.ndarray
    drum: bool


def _quantized_part(piece: PieceNotes, track: int) -> _Part:
    """One track's elements, quantized, in music21's order (onset, grace first, insertion)."""
    mask = piece.track == track
    onsets, pitches = piece.onset[mask], piece.pitch[mask]
    ends = _music21_note_ends(onsets, piece.duration[mask], pitches)
    start, stop, member_element, member_note = _gather_chords(onsets, ends, piece.tpq)
    order = np.lexsort((stop != start, start))  # Stream.sort: onset, grace notes first
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    start, stop = start[order], stop[order]
    grace = stop == start
    q_onset = _quantize(start, piece.tpq)
    # the gap to the next element at a later quantized onset decides the duration's grid
    following = np.searchsorted(q_onset, q_onset, side="right")
    has_next = following < q_onset.size
    gap = np.where(has_next, q_onset[np.minimum(following, q_onset.size - 1)] - q_onset, 0)
    q_duration = np.where(grace, 0, _quantize(stop - start, piece.tpq, gap=gap))
    # re-sorted by quantized onset, grace notes first (stable)
    again = np.lexsort((q_duration != 0, q_onset))
    element_rank = np.empty_like(again)
    element_rank[again] = np.arange(again.size)
    final_rank = element_rank[rank]  # element as gathered -> final position
    member_order = np.argsort(final_rank[member_element], kind="stable")
    counts = np.bincount(final_rank[member_element], minlength=again.size)
    return _Part(
        onset=q_onset[again],
        duration=q_duration[again],
        pitch_start=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
        pitches=pitches[member_note[member_order]],
        drum=bool(piece.track_is_drum[track]),
    )


def _concatenate(parts: list[_Part]) -> Music21View:
    if not parts:
        empty = np.zeros(0, np.int64)
        return Music21View(
            empty,
            empty,
            empty,
            np.zeros(0, bool),
            np.zeros(0, bool),
            empty,
            empty,
            np.array([0, DEFAULT_BAR_UNITS]),
            DEFAULT_BAR_UNITS,
            0,
        )
    sizes = [p.onset.size for p in parts]
    offsets = np.cumsum([0] + [p.pitches.size for p in parts[:-1]])
    counts = np.concatenate([np.diff(np.append(p.pitch_start, p.pitches.size)) for p in parts])
    return Music21View(
        part=np.repeat(np.arange(len(parts)), sizes),
        onset=np.concatenate([p.onset for p in parts]),
        duration=np.concatenate([p.duration for p in parts]),
        chord=counts > 1,
        drum=np.repeat([p.drum for p in parts], sizes),
        pitch_start=np.concatenate(
            [p.pitch_start + o for p, o in zip(parts, offsets, strict=True)]
        ),
        pitches=np.concatenate([p.pitches for p in parts]),
        barlines=np.array([0, DEFAULT_BAR_UNITS]),
        first_bar=DEFAULT_BAR_UNITS,
        n_parts=len(parts),
    )


def _replace(view: Music21View, **changes: object) -> Music21View:
    return Music21View(**{**view.__dict__, **changes})  # type: ignore[arg-type]


def _select(view: Music21View, keep: np.ndarray, duration: np.ndarray | None = None) -> Music21View:
    """The elements where `keep` holds (with new durations, if given), pitches following."""
    counts = view.pitch_counts()
    kept_counts = counts[keep]
    return _replace(
        view,
        part=view.part[keep],
        onset=view.onset[keep],
        duration=view.duration[keep] if duration is None else duration,
        chord=view.chord[keep],
        drum=view.drum[keep],
        pitch_start=np.concatenate([[0], np.cumsum(kept_counts)[:-1]]).astype(np.int64)
        if kept_counts.size
        else np.zeros(0, np.int64),
        pitches=view.pitches[np.repeat(keep, counts)],
    )


def _truncate(view: Music21View, max_units: int | None) -> Music21View:
    """Elements starting before `max_units`, durations clipped there (`metrics.truncate`)."""
    if max_units is None:
        return view
    keep = view.onset < max_units
    return _select(view, keep, np.minimum(view.duration[keep], max_units - view.onset[keep]))


def _music21_note_ends(
    onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray
) -> np.ndarray:
    """End tick of each note as music21 pairs events: the first note-off of the same pitch after
    the note-on (zero-length notes keep their end)."""
    ends = onsets + durations
    scale = int(ends.max()) + 2 if ends.size else 1
    keyed_ends = np.sort(pitches * scale + ends)
    keyed_onsets = pitches * scale + onsets
    index = np.searchsorted(keyed_ends, keyed_onsets, side="right")
    found = index < keyed_ends.size
    candidate = keyed_ends[np.minimum(index, keyed_ends.size - 1)]
    same_pitch = found & (candidate // scale == pitches)
    paired = np.where(same_pitch, candidate - pitches * scale, ends)
    return np.where(durations > 0, paired, ends)


def _gather_chords(
    onsets: np.ndarray, ends: np.ndarray, tpq: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """music21's chord gathering: per element its start and stop tick; per member its element
    and note. A note starting less than a 16th after an element's first note and ending within
    a 16th of it joins the chord (music21 does not check whether an earlier chord took it); the
    chord lasts as long as its last member."""
    tolerance = tpq / max(DIVISORS)
    n = onsets.size
    if n < 2 or bool(np.all(np.diff(onsets) >= tolerance)):
        every = np.arange(n)
        return onsets.copy(), ends.copy(), every, every
    on, off = onsets.tolist(), ends.tolist()
    taken = [False] * n
    starts: list[int] = []
    stops: list[int] = []
    member_element: list[int] = []
    member_note: list[int] = []
    for i in range(n):
        if taken[i]:
            continue
        element = len(starts)
        members = [i]
        for j in range(i + 1, n):
            if abs(on[j] - on[i]) >= tolerance:
                break
            if abs(off[j] - off[i]) > tolerance:
                continue
            members.append(j)
            taken[j] = True
        last = members[-1]
        starts.append(on[i])
        stops.append(on[i] + off[last] - on[last])
        member_element.extend([element] * len(members))
        member_note.extend(members)
    return (
        np.array(starts, np.int64),
        np.array(stops, np.int64),
        np.array(member_element, np.int64),
        np.array(member_note, np.int64),
    )


def _quantize(ticks: np.ndarray, tpq: int, gap: np.ndarray | None = None) -> np.ndarray:
    """`Stream.quantize` of offsets (gap None) or durations, in exact integer arithmetic;
    returns twelfths of a quarter. Per divisor d the nearest multiple of 1/d (half-way goes
    down); durations are at least 1/d, and prefer the grid on which `gap` (twelfths, the
    distance to the next onset) lies. Ties go to the finer grid (16ths)."""
    ticks = np.asarray(ticks, dtype=np.int64)
    best_match = best_error = best_remaining = None
    for divisor in DIVISORS:  # 4 first: it wins ties
        mult, rest = np.divmod(ticks * divisor, tpq)
        down = 2 * rest <= tpq
        match = np.where(down, mult, mult + 1)
        error = np.where(down, rest, tpq - rest) * (UNITS // divisor)
        if gap is not None:  # a note never quantizes to nothing: one grid step at least
            zero = match == 0
            match = np.where(zero, 1, match)
            error = np.where(zero, np.abs(tpq - ticks * divisor) * (UNITS // divisor), error)
        match_units = match * (UNITS // divisor)  # twelfths
        if gap is None:
            remaining = np.zeros_like(match_units)
        else:
            on_grid = np.fmod(gap / UNITS, 1 / divisor) == 0  # music21 tests this in floats
            remaining = np.where(on_grid, 0, np.maximum(gap - match_units, 0) * tpq)
        if best_match is None:
            best_match, best_error, best_remaining = match_units, error, remaining
            continue
        better = (remaining < best_remaining) | (
            (remaining == best_remaining) & (error < best_error)
        )
        best_match = np.where(better, match_units, best_match)
        best_error = np.where(better, error, best_error)
        best_remaining = np.where(better, remaining, best_remaining)
    assert best_match is not None
    return best_match


# --- step 4: measures ----------------------------------------------------------------------


def _measures(piece: PieceNotes) -> tuple[list[tuple[int, int]], int]:
    """(start in twelfths, measure length in twelfths) for each time-signature change, with
    4/4 at 0 when the file sets none there; and the first measure's length."""
    changes: list[tuple[int, int]] = []
    rows = [r for r in piece.time_signatures.tolist() if r[1] > 0 and r[2] > 0]
    starts = _quantize(np.array([r[0] for r in rows], dtype=np.int64), piece.tpq).tolist()
    for start, (_, numerator, denominator) in zip(starts, rows, strict=True):
        length = round(UNITS * 4 * numerator / denominator)
        if length <= 0:
            continue
        if changes and changes[-1][0] == start:
            changes[-1] = (start, length)
        else:
            changes.append((start, length))
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, DEFAULT_BAR_UNITS))
    return changes, changes[0][1]


def _barlines(changes: list[tuple[int, int]], end: int) -> np.ndarray:
    """Measure starts from 0 up to and including the first barline at or after `end` (a new
    time signature takes effect at the next barline at or after its position)."""
    lines = [0]
    index = 0
    position = 0
    length = changes[0][1]
    while True:
        while index + 1 < len(changes) and changes[index + 1][0] <= position:
            index += 1
            length = changes[index][1]
        position += length
        lines.append(position)
        if position >= end:
            return np.array(lines, dtype=np.int64)


def _split_at_barlines(view: Music21View) -> Music21View:
    """Each element crossing a barline becomes tied parts, one per measure it spans; in each
    part, a tied continuation follows the notes that start on its barline (`makeTies` inserts
    it after them)."""
    if view.n_elements == 0:
        return view
    end = view.onset + view.duration
    first_inside = np.searchsorted(view.barlines, view.onset, side="right")
    last_inside = np.searchsorted(view.barlines, end, side="left")
    pieces = np.where(view.duration > 0, np.maximum(last_inside - first_inside, 0) + 1, 1)
    element = np.repeat(np.arange(view.n_elements), pieces)
    within = np.arange(element.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    cut = first_inside[element] + within  # index of the barline after this tied part's start
    top = view.barlines.size - 1
    starts = np.where(within == 0, view.onset[element], view.barlines[np.minimum(cut - 1, top)])
    last = within == pieces[element] - 1
    stops = np.where(last, end[element], view.barlines[np.minimum(cut, top)])
    counts = view.pitch_counts()[element]
    first_pitch = np.repeat(view.pitch_start[element], counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    split = _replace(
        view,
        part=view.part[element],
        onset=starts,
        duration=stops - starts,
        chord=view.chord[element],
        drum=view.drum[element],
        pitch_start=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
        pitches=view.pitches[first_pitch + offset],
    )
    order = np.lexsort((np.arange(element.size), within > 0, stops != starts, starts, split.part))
    return _select(split, order)
