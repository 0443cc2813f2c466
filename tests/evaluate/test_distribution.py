"""The set-level comparison: KDE against scipy's gaussian_kde, hand-made cases with known OA and
KL, constant features, order and seed independence, and FD-features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import linalg, stats

from midilm.evaluate import distribution as D

SPEC = D.DistributionSpec(
    features=("a", "b", "hist"),
    headline_features=("a", "b"),
    fd_features=("a", "b"),
    grid_points=512,
    max_pairs=100_000,
    seed=1234,
    min_pieces=2,
)


def _set(values: dict[str, np.ndarray], prefix: str = "p") -> pd.DataFrame:
    size = len(next(iter(values.values())))
    frame = pd.DataFrame({"id": [f"{prefix}{i:04d}" for i in range(size)]})
    for name, column in values.items():
        frame[name] = column
    return frame


def _with_hist(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    hist = rng.dirichlet(np.ones(12), size=len(frame))
    for pc in range(12):
        frame[f"hist_{pc}"] = hist[:, pc]
    return frame


def test_kde_is_scipys_gaussian_kde() -> None:
    """The binned KDE is within 0.1% of the peak of scipy's exact sum on the grids the
    comparison uses (bandwidth >= 2 grid steps), and Scott's bandwidth is scipy's."""
    rng = np.random.default_rng(0)
    for samples in (rng.gamma(2.0, 1.0, 700), rng.normal(5, 0.01, 50), rng.integers(0, 4, 300)):
        samples = samples.astype(float)
        kde = stats.gaussian_kde(samples)
        assert D.scott_bandwidth(samples) == pytest.approx(math.sqrt(kde.covariance[0, 0]))
        grid, (ours,) = D.common_grid_densities([samples], 512)
        exact = kde(grid)
        assert np.abs(ours - exact / np.trapezoid(exact, grid)).max() <= 1e-3 * exact.max()


def test_identical_sets_overlap_fully_and_disjoint_ones_not_at_all() -> None:
    rng = np.random.default_rng(1)
    one = _with_hist(_set({"a": rng.normal(0, 1, 200), "b": rng.gamma(2, 1, 200)}), rng)
    same = D.compare_sets(one, one, SPEC)  # every pair: the distances are the same, twice
    assert np.allclose(same["oa"].iloc[:3], 1.0, atol=1e-9)
    assert np.allclose(same["kl"].iloc[:3], 0.0, atol=1e-9)
    sampled = D.compare_sets(one, one, D.DistributionSpec(**{**SPEC.__dict__, "max_pairs": 3000}))
    assert (sampled["oa"].iloc[:3] > 0.95).all()  # 3,000 of 19,900 pairs: close, not equal
    assert same.set_index("feature").loc["fd_features", "fd"] == pytest.approx(0.0, abs=1e-9)
    far = _with_hist(_set({"a": rng.normal(100, 1, 200), "b": rng.gamma(2, 1, 200) + 50}), rng)
    apart = D.compare_sets(far, one, SPEC).set_index("feature")
    assert apart.loc["a", "oa"] < 0.01 and apart.loc["b", "oa"] < 0.01
    assert apart.loc["a", "kl"] > 5 and apart.loc["fd_features", "fd"] > 100


def test_a_shifted_set_overlaps_less_the_further_it_is() -> None:
    rng = np.random.default_rng(2)
    base = _set({"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300)})
    oas = []
    for shift in (0.0, 0.5, 1.0, 2.0, 4.0):
        moved = _set({"a": rng.normal(shift, 1, 300), "b": rng.normal(0, 1, 300)}, "g")
        spec = D.DistributionSpec(("a",), ("a",), ("a",), 512, 3000, 7, 2)
        oas.append(D.compare_feature(moved, base, "a", spec).oa)
    assert oas == sorted(oas, reverse=True) and oas[0] > 0.9 and oas[-1] < 0.25


def test_collapse_shows_on_the_generated_side() -> None:
    """A generated set that is one piece repeated sits inside the test set: OA against the test
    set's own spread stays fair, OA of its (zero) spread against the inter-set distances falls."""
    rng = np.random.default_rng(3)
    test = _set({"a": rng.normal(0, 1, 300)})
    collapsed = _set({"a": np.zeros(300)}, "g")
    spec = D.DistributionSpec(("a",), ("a",), ("a",), 512, 3000, 7, 2)
    result = D.compare_feature(collapsed, test, "a", spec)
    assert result.oa > 0.5 and result.oa_generated < 0.3 and result.kl_generated > 1


def test_constant_features_are_handled() -> None:
    spec = D.DistributionSpec(("a",), ("a",), ("a",), 512, 3000, 7, 2)
    flat = _set({"a": np.full(50, 3.0)})
    same = D.compare_feature(flat, flat, "a", spec)
    assert (same.oa, same.kl, same.oa_generated, same.kl_generated) == (1.0, 0.0, 1.0, 0.0)
    varied = _set({"a": np.random.default_rng(4).normal(3, 1, 50)}, "g")
    mixed = D.compare_feature(flat, varied, "a", spec)
    assert 0 <= mixed.oa <= 1 and math.isfinite(mixed.kl) and mixed.oa_generated < 0.5
    fd, n_a, n_b = D.fd_features(flat, flat, D.ReferenceStats.of(flat, ["a"]))
    assert (fd, n_a, n_b) == (0.0, 50, 50)


def test_order_and_reruns_do_not_change_the_result() -> None:
    rng = np.random.default_rng(5)
    a = _with_hist(_set({"a": rng.normal(0, 1, 400), "b": rng.gamma(2, 1, 400)}, "g"), rng)
    b = _with_hist(_set({"a": rng.normal(0.3, 1, 300), "b": rng.gamma(2, 1, 300)}), rng)
    first = D.compare_sets(a, b, SPEC)
    shuffled = D.compare_sets(a.sample(frac=1, random_state=1), b.iloc[::-1], SPEC)
    pd.testing.assert_frame_equal(first, shuffled)
    other_seed = D.compare_sets(a, b, D.DistributionSpec(**{**SPEC.__dict__, "seed": 99}))
    assert not np.allclose(first["oa"].iloc[:2], other_seed["oa"].iloc[:2])  # pairs sampled


def test_undefined_values_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(6)
    values = rng.normal(0, 1, 100)
    values[:30] = np.nan
    result = D.compare_feature(
        _set({"a": values}, "g"),
        _set({"a": rng.normal(0, 1, 80)}),
        "a",
        D.DistributionSpec(("a",), ("a",), ("a",), 512, 3000, 7, 2),
    )
    assert (result.n_generated, result.n_reference) == (70, 80)
    too_few = D.compare_feature(
        _set({"a": [np.nan, 1.0]}, "g"),
        _set({"a": values}),
        "a",
        D.DistributionSpec(("a",), ("a",), ("a",), 512, 3000, 7, 2),
    )
    assert math.isnan(too_few.oa) and too_few.n_generated == 1


def test_sampled_pairs_are_distinct_pairs_of_distinct_pieces() -> None:
    rng = np.random.default_rng(8)
    i, j = D._pairs_within(300, 5000, rng)
    assert (i < j).all() and (j < 300).all()
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == 5000
    i, j = D._pairs_within(20, 5000, rng)  # all 190 pairs
    assert len(i) == 190


def test_frechet_distance_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(200, 4)), rng.normal(0.5, 2, size=(150, 4))
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    textbook = np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(
        cov_x + cov_y - 2 * np.real(linalg.sqrtm(cov_x @ cov_y))
    )
    ours = D.frechet_distance(x.mean(0), cov_x, y.mean(0), cov_y)
    assert ours == pytest.approx(textbook, rel=1e-9)


def test_data_row_draws_as_many_train_pieces_as_test_pieces() -> None:
    rng = np.random.default_rng(10)
    train = _with_hist(_set({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)}, "t"), rng)
    test = _with_hist(_set({"a": rng.normal(0, 1, 120), "b": rng.normal(0, 1, 120)}), rng)
    row = D.data_against_data(train, test, SPEC, D.ReferenceStats.of(test, SPEC.fd_features))
    assert (row["n_generated"].iloc[:3] == 120).all()
    headline = row.set_index("feature").loc["mean_oa_headline", "oa"]
    assert headline > 0.85
