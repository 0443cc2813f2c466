"""BLEU-4 (against NLTK's corpus_bleu, the anchor) and the pitch MSE on hand-made cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from nltk.translate.bleu_score import corpus_bleu

from midilm.seqgan.metrics import (
    corpus_bleu_shared_references,
    nearest_pitch,
    nearest_pitch_mse,
    pitch_values,
)

REST, LOWEST = 88, 21


def test_bleu_hand_made_cases() -> None:
    ref = [[1, 2, 3, 4, 5]]
    assert corpus_bleu_shared_references([[1, 2, 3, 4, 5]], ref) == pytest.approx(1.0)
    # one wrong last token: 4/5, 3/4, 2/3, 1/2 of the 1- to 4-grams match
    one_off = corpus_bleu_shared_references([[1, 2, 3, 4, 9]], ref)
    assert one_off == pytest.approx((4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # clipping: five 1s match the reference's single 1 once; no bigram matches -> 0
    assert corpus_bleu_shared_references([[1, 1, 1, 1, 1]], ref) == 0.0
    # brevity penalty: all n-grams match, 4 tokens against 5
    short = corpus_bleu_shared_references([[1, 2, 3, 4]], ref)
    assert short == pytest.approx(math.exp(1 - 5 / 4))
    # several references: each n-gram clipped by its largest count in a single reference
    refs = [[7, 7, 1, 2], [7, 1, 2, 3]]
    assert corpus_bleu_shared_references([[7, 7, 1, 2]], refs) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one"):
        corpus_bleu_shared_references([], refs)


@pytest.mark.parametrize("vocab", [3, 6])
def test_bleu_equals_nltk_corpus_bleu(vocab: int) -> None:
    rng = np.random.default_rng(vocab)
    refs = rng.integers(0, vocab, size=(40, 32)).tolist()
    hyps = rng.integers(0, vocab, size=(25, 32)).tolist()
    hyps += [rng.integers(0, vocab, size=n).tolist() for n in (20, 31, 40)]  # other lengths
    mine = corpus_bleu_shared_references(hyps, refs)
    anchor = corpus_bleu([refs] * len(hyps), hyps)
    assert 0.0 < mine < 1.0
    assert mine == pytest.approx(anchor, rel=1e-12)


def test_bleu_zero_precision_is_zero_where_nltk_is_tiny() -> None:
    refs, hyps = [[1, 2, 3, 4, 5, 6]], [[1, 2, 6, 5, 4, 3]]  # bigrams match, no 3- or 4-gram
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anchor = corpus_bleu([refs], hyps)
    assert corpus_bleu_shared_references(hyps, refs) == 0.0 and anchor < 1e-70


def test_pitch_values_hold_the_pitch_through_rests() -> None:
    tokens = np.array([[REST, 40, REST, REST, 42], [REST, REST, REST, REST, REST]])
    values = pitch_values(tokens, REST, LOWEST)
    assert values[0].tolist() == [61, 61, 61, 61, 63]
    assert np.isnan(values[1]).all()


def test_nearest_pitch_mse_hand_made() -> None:
    test = np.array([[40] * 4, [50] * 4, [REST] * 4])
    generated = np.array([[42] * 4, [47] * 4, [REST] * 4, [40, 40, 50, 50]])
    mse, nearest = nearest_pitch(generated, test, REST, LOWEST)
    # 2 semitones from the first; 3 from the second (7 from the first); rests only; 0/10 vs 10/0
    assert mse[[0, 1, 3]].tolist() == [4.0, 9.0, 50.0]
    assert np.isnan(mse[2])
    assert nearest.tolist() == [0, 1, -1, 0]
    mean, excluded = nearest_pitch_mse(generated, test, REST, LOWEST)
    assert (mean, excluded) == (pytest.approx((4 + 9 + 50) / 3), 1)
    with pytest.raises(ValueError, match="at least one test melody"):
        nearest_pitch(generated, np.array([[REST] * 4]), REST, LOWEST)
