"""Per-piece standard metrics from note arrays: MusPy's definitions where MusPy has one (minus its
known bugs), plus inter-onset intervals, note density, durations and notes per bar.

Pitch metrics leave drum tracks out (their "pitches" are instruments); rhythm metrics keep them
(a drum hit fills a beat). A metric that has nothing to measure is nan, never 0 by accident: no
pitched note for the pitch metrics, fewer than two onsets for IOI, fewer than two bars for groove
consistency, no drum note for the drum pattern. docs/metrics.md lists each definition, the
differences from MusPy with a minimal example, and the nan cases.
"""

from __future__ import annotations

import math

import numpy as np

from midilm.evaluate.notes import PieceNotes, bar_quarters
from midilm.specs.evaluate import FeatureSpec

FEATURES = (
    "pitch_range",
    "n_pitches_used",
    "n_pitch_classes_used",
    "pitch_entropy",
    "pitch_class_entropy",
    "scale_consistency",
    "polyphony",
    "polyphony_rate",
    "empty_beat_rate",
    "empty_measure_rate",
    "groove_consistency",
    "drum_pattern_consistency",
    "ioi_mean",
    "ioi_std",
    "note_density",
    "duration_mean",
    "duration_std",
    "notes_per_bar",
)
PITCH_CLASS_HISTOGRAM = tuple(f"pitch_class_histogram_{pc}" for pc in range(12))
MAJOR_SCALE = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
MINOR_SCALE = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
POLYPHONY_THRESHOLD = 2  # MusPy's polyphony_rate: steps with more than 2 pitches on


def piece_features(piece: PieceNotes, spec: FeatureSpec) -> dict[str, float]:
    """Every metric of `FEATURES` and the 12-bin pitch-class histogram for one piece."""
    pitched = ~piece.drum
    pitches = piece.pitch[pitched]
    bar = bar_quarters(piece, *spec.bar_quarters_range, spec.fallback_bar_quarters)
    bar_ticks = bar * piece.tpq
    values: dict[str, float] = {
        "pitch_range": float(pitches.max() - pitches.min()) if pitches.size else 0.0,
        "n_pitches_used": float(np.unique(pitches).size),
        "n_pitch_classes_used": float(np.unique(pitches % 12).size),
        "pitch_entropy": _entropy(np.bincount(pitches, minlength=128)),
        "pitch_class_entropy": _entropy(np.bincount(pitches % 12, minlength=12)),
        "scale_consistency": scale_consistency(pitches),
        **polyphony(piece),
        "empty_beat_rate": empty_rate(piece, float(piece.tpq)),
        "empty_measure_rate": empty_rate(piece, bar_ticks),
        "groove_consistency": groove_consistency(piece, bar, spec.groove_positions_per_beat),
        "drum_pattern_consistency": drum_pattern_consistency(piece),
        **inter_onset_intervals(piece),
        "note_density": note_density(piece),
        **durations(piece),
        "notes_per_bar": piece.n_notes / math.ceil(piece.end / bar_ticks)
        if piece.end > 0
        else math.nan,
    }
    histogram = np.bincount(pitches % 12, minlength=12).astype(float)
    total = histogram.sum()
    for pc, name in enumerate(PITCH_CLASS_HISTOGRAM):
        values[name] = float(histogram[pc] / total) if total else math.nan
    return values


def _entropy(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a histogram; nan when it is empty (MusPy's definition)."""
    total = counts.sum()
    if total < 1:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def scale_consistency(pitches: np.ndarray) -> float:
    """The largest share of notes inside one major or minor scale (24 scales); nan if none."""
    if pitches.size == 0:
        return math.nan
    counts = np.bincount(pitches % 12, minlength=12)
    best = 0.0
    for scale in (MAJOR_SCALE, MINOR_SCALE):
        for root in range(12):
            best = max(best, float(counts[np.roll(scale, root)].sum() / pitches.size))
    return best


def _union_segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint covering segments of half-open intervals (touching ones stay apart)."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.ones(starts.size, dtype=bool)
    new[1:] = starts[1:] >= reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, starts.size - 1)
    return starts[first], reach[last]


def polyphony(piece: PieceNotes) -> dict[str, float]:
    """MusPy's polyphony (mean number of pitches on over the time steps where one is on) and
    polyphony rate (share of all time steps, up to the last note end of any track, with more
    than two pitches on), on pitched notes, each pitch counted once however many notes hold it."""
    length = piece.end
    keep = ~piece.drum & (piece.duration > 0)
    if not keep.any():
        return {"polyphony": math.nan, "polyphony_rate": 0.0 if length > 0 else math.nan}
    start, end, pitch = piece.onset[keep], (piece.onset + piece.duration)[keep], piece.pitch[keep]
    span = int(end.max()) + 1  # keeps pitches apart in one sorted axis
    seg_start, seg_end = _union_segments(start + pitch * span, end + pitch * span)
    seg_pitch = seg_start // span
    seg_start, seg_end = seg_start - seg_pitch * span, seg_end - seg_pitch * span
    cells = float((seg_end - seg_start).sum())
    times = np.concatenate([seg_start, seg_end])
    steps = np.concatenate([np.ones(seg_start.size, np.int64), -np.ones(seg_end.size, np.int64)])
    order = np.lexsort((steps, times))  # ends before starts at the same time
    times, count = times[order], np.cumsum(steps[order])
    widths = np.diff(times)
    on = float(widths[count[:-1] > 0].sum())
    dense = float(widths[count[:-1] > POLYPHONY_THRESHOLD].sum())
    return {
        "polyphony": cells / on if on else math.nan,
        "polyphony_rate": dense / length if length > 0 else math.nan,
    }


def empty_rate(piece: PieceNotes, unit_ticks: float, extend: int = 0) -> float:
    """Share of empty units (beats or bars of `unit_ticks`) up to the last note end, drums
    included. A note fills the units its sounding span [onset, end) overlaps (a zero-length
    note: its onset's unit). MusPy also fills the unit in which a note ends, so a note ending on
    a barline fills the next bar: `extend=1` lengthens every note by one tick, which gives
    MusPy's numbers (the anchor test uses it); nan when the piece has no length."""
    end = piece.onset + piece.duration + extend
    length = int(end.max()) if piece.n_notes else 0
    if length < 1:
        return math.nan
    units = math.ceil(length / unit_ticks)
    first = np.floor(piece.onset / unit_ticks).astype(np.int64)
    last = np.maximum(np.ceil(end / unit_ticks).astype(np.int64) - 1, first)
    filled = np.zeros(units + 2, dtype=np.int64)
    np.add.at(filled, np.minimum(first, units), 1)
    np.add.at(filled, np.minimum(last + 1, units + 1), -1)
    occupied = int((np.cumsum(filled)[:units] > 0).sum())
    return 1.0 - occupied / units


def groove_consistency(
    piece: PieceNotes, bar_quarters: float, positions_per_beat: int | None
) -> float:
    """1 - mean Hamming distance between the onset patterns of neighbouring bars, per position
    (Wu & Yang's grooving similarity, MusPy's groove_consistency), drums included. Onsets sit
    on `positions_per_beat` positions per quarter note; None keeps raw ticks, as MusPy does,
    which makes the value depend on the file's resolution. nan with fewer than two bars."""
    scale = piece.tpq if positions_per_beat is None else positions_per_beat
    size_float = bar_quarters * scale
    if abs(size_float - round(size_float)) > 1e-9:
        raise ValueError(
            f"a bar of {bar_quarters} quarter notes is not a whole number of positions at "
            f"{scale} per quarter; use a multiple of 2 and 3 (e.g. 12)"
        )
    size = round(size_float)
    if positions_per_beat is None:
        onsets, length = piece.onset, piece.end
    else:
        onsets = np.rint(piece.onset * scale / piece.tpq).astype(np.int64)
        length = round(piece.end * scale / piece.tpq)
    measures = length // size + 1
    if piece.n_notes == 0 or measures < 2:
        return math.nan
    patterns = np.zeros((measures, size), dtype=bool)
    patterns[onsets // size, onsets % size] = True
    distance = int(np.count_nonzero(patterns[:-1] != patterns[1:]))
    return 1.0 - distance / (size * (measures - 1))


def drum_pattern_consistency(piece: PieceNotes) -> float:
    """MusPy's drum pattern consistency: the larger share of drum notes on a duple (16th-note)
    or a triple (triplet) grid within the beat; nan without drum notes."""
    onsets = piece.onset[piece.drum]
    if onsets.size == 0:
        return math.nan
    within = onsets % piece.tpq
    duple = float(np.mean(within * 4 % piece.tpq == 0))
    triple = float(np.mean(within * 3 % piece.tpq == 0))
    return max(duple, triple)


def inter_onset_intervals(piece: PieceNotes) -> dict[str, float]:
    """Mean and population sd of the intervals between distinct onsets (all tracks), in quarter
    notes; nan with fewer than two onsets."""
    onsets = np.unique(piece.onset)
    if onsets.size < 2:
        return {"ioi_mean": math.nan, "ioi_std": math.nan}
    gaps = np.diff(onsets) / piece.tpq
    return {"ioi_mean": float(gaps.mean()), "ioi_std": float(gaps.std())}


def note_density(piece: PieceNotes) -> float:
    """Notes (all tracks) per second between the first onset and the last note end, through the
    tempo map; nan when that span is zero."""
    if piece.n_notes == 0:
        return math.nan
    first, last = piece.seconds(np.array([piece.onset.min(), piece.end]))
    span = float(last - first)
    return piece.n_notes / span if span > 0 else math.nan


def durations(piece: PieceNotes) -> dict[str, float]:
    """Mean and population sd of pitched note durations in quarter notes; nan without notes."""
    values = piece.duration[~piece.drum] / piece.tpq
    if values.size == 0:
        return {"duration_mean": math.nan, "duration_std": math.nan}
    return {"duration_mean": float(values.mean()), "duration_std": float(values.std())}
