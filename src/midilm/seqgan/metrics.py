"""The music task's scores (SeqGAN paper, Table 4): BLEU-4 and MSE of pitch values, each of
generated sequences against the whole test set as references (docs/metrics.md, SeqGAN).

BLEU-4 is corpus BLEU (Papineni et al. 2002) as NLTK's `corpus_bleu` computes it with uniform
weights (1/4 each) and no smoothing: clipped n-gram counts summed over all hypotheses, clipped
by the largest count of each n-gram in any single reference, and the brevity penalty from the
closest reference length. Every hypothesis has the same references (the whole test set), so the
largest reference count of each n-gram is computed once; the result equals NLTK's (tested), in
a fraction of its time. A zero n-gram precision gives BLEU 0 (NLTK returns a number that rounds
to 0 and warns).

MSE of pitch values: a melody's pitch values are the MIDI pitches of its steps, a rest taking
the pitch sounding before it (a leading rest the first pitch); for each generated melody the
mean over steps of the squared difference to a test melody, minimised over the test set (the
nearest real melody), averaged over generated melodies. An all-rest melody has no pitch values
and is left out (counted).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

BLEU_ORDER = 4


def _ngrams(tokens: Sequence[int], n: int) -> Counter[tuple[int, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu_shared_references(
    hypotheses: Sequence[Sequence[int]],
    references: Sequence[Sequence[int]],
    order: int = BLEU_ORDER,
) -> float:
    """Corpus BLEU-`order` of `hypotheses`, each against all of `references`."""
    if not hypotheses or not references:
        raise ValueError("BLEU needs at least one hypothesis and one reference")
    ref_lengths = sorted({len(r) for r in references})
    matched, total = [0] * order, [0] * order
    hyp_length = ref_length = 0
    for n in range(1, order + 1):
        best: dict[tuple[int, ...], int] = {}
        for ref in references:
            for gram, count in _ngrams(ref, n).items():
                if count > best.get(gram, 0):
                    best[gram] = count
        for hyp in hypotheses:
            counts = _ngrams(hyp, n)
            matched[n - 1] += sum(min(c, best.get(g, 0)) for g, c in counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    for hyp in hypotheses:
        hyp_length += len(hyp)
        ref_length += _closest_length(ref_lengths, len(hyp))
    if any(m == 0 for m in matched):
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / order
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / max(hyp_length, 1))
    return brevity * math.exp(log_precision)


def _closest_length(lengths: list[int], length: int) -> int:
    """The reference length closest to `length`, the shorter on a tie (as NLTK)."""
    return min(lengths, key=lambda r: (abs(r - length), r))


def pitch_values(tokens: np.ndarray, rest: int, lowest_pitch: int) -> np.ndarray:
    """[N, T] token ids -> float pitch values (rests hold the previous pitch, leading rests the
    first); rows with no note are NaN."""
    tokens = np.asarray(tokens)
    pitch = np.where(tokens == rest, np.nan, tokens + lowest_pitch).astype(np.float64)
    out = np.empty_like(pitch)
    for i, row in enumerate(pitch):
        sounding = ~np.isnan(row)
        if not sounding.any():
            out[i] = np.nan
            continue
        index = np.where(sounding, np.arange(len(row)), 0)
        np.maximum.accumulate(index, out=index)
        held = row[index]
        held[: int(np.argmax(sounding))] = row[sounding][0]
        out[i] = held
    return out


def nearest_pitch(
    generated: np.ndarray, test: np.ndarray, rest: int, lowest_pitch: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """For each generated melody [N, T]: the pitch MSE to its nearest test melody [M, T] and
    that melody's index (NaN and -1 for a generated melody of rests only)."""
    gen = pitch_values(generated, rest, lowest_pitch)
    ref = pitch_values(test, rest, lowest_pitch)
    ref_rows = np.flatnonzero(~np.isnan(ref).any(axis=1))
    if len(ref_rows) == 0:
        raise ValueError("MSE needs at least one test melody with a note")
    ref = ref[ref_rows]
    mse = np.full(len(gen), np.nan)
    nearest = np.full(len(gen), -1, dtype=np.int64)
    kept = np.flatnonzero(~np.isnan(gen).any(axis=1))
    ref_sq = (ref**2).sum(axis=1)
    for start in range(0, len(kept), chunk):
        rows = kept[start : start + chunk]
        part = gen[rows]
        # exact: pitch values are integers, so every term is an integer in float64
        sq = (part**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * part @ ref.T
        best = sq.argmin(axis=1)
        mse[rows] = sq[np.arange(len(rows)), best] / gen.shape[1]
        nearest[rows] = ref_rows[best]
    return mse, nearest


def nearest_pitch_mse(
    generated: np.ndarray, test: np.ndarray, rest: int, lowest_pitch: int
) -> tuple[float, int]:
    """Mean over generated melodies of the pitch MSE to the nearest test melody, and how many
    generated melodies were left out (rests only)."""
    mse, _ = nearest_pitch(generated, test, rest, lowest_pitch)
    kept = ~np.isnan(mse)
    return (float(mse[kept].mean()) if kept.any() else float("nan")), int((~kept).sum())
