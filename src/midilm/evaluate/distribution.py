"""Set-level comparison of two sets of pieces: Yang & Lerch's (2018, "MGEval") method, without its
reference code's faults, and a Frechet distance between standardized feature vectors.

For each feature: the intra-set distances of each set (pairs within it) and the inter-set
distances (pairs across; a piece is never paired with itself), each smoothed by a Gaussian KDE,
all three on one common grid with one common bandwidth (Scott's rule on their pooled distances,
so OA differs only where the distances do, not the smoothing); then the overlap area (OA, the
integral of min(p, q)) and KL(p || q) of an intra-set density against the inter-set density.
OA near 1: pieces of one set lie as far from the other set's pieces as from each other.

What MGEval's code gets wrong and this does not: its KL evaluates the two densities on different
grids; its KDE fails on constant features; its inputs come in unsorted glob order. Here the
densities share one grid, a constant feature is handled (identical constant sets: OA 1, KL 0),
pieces are sorted by id and pair sampling (above `max_pairs`) is seeded per feature.

"FD-features" is the Frechet distance between Gaussians fitted to the two sets' feature vectors,
standardized by the reference set. It is not the Frechet Music Distance (FMD), which embeds
pieces with CLaMP models this project cannot load offline.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from midilm.specs.evaluate import DistributionSpec

KL_FLOOR = 1e-12  # probability floor of q in KL(p || q), so disjoint sets give a finite KL


@dataclass(frozen=True)
class FeatureComparison:
    """One feature of one comparison (generated set against the reference set)."""

    feature: str
    oa: float  # OA(intra-reference, inter): generated pieces as close as real ones are
    kl: float  # KL(intra-reference || inter)
    oa_generated: float  # OA(intra-generated, inter): low when the set collapses or scatters
    kl_generated: float
    n_generated: int  # pieces on each side where the feature is defined
    n_reference: int


def feature_matrix(frame: pd.DataFrame, feature: str) -> np.ndarray:
    """(n, d) values of a scalar feature (d = 1) or of a vector feature's columns name_0..."""
    if feature in frame.columns:
        return frame[[feature]].to_numpy(dtype=float)
    columns = [
        c for c in frame.columns if c.startswith(f"{feature}_") and c[len(feature) + 1 :].isdigit()
    ]
    if not columns:
        raise KeyError(f"feature {feature!r} is not a column (nor name_0, name_1...) of the set")
    columns.sort(key=lambda c: int(c[len(feature) + 1 :]))
    return frame[columns].to_numpy(dtype=float)


def _defined(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values).any(axis=1)]


def _pairs_within(
    n: int, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j: all of them, or `max_pairs` drawn without replacement."""
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = np.triu_indices(n, k=1)
        return i, j
    flat = np.sort(rng.choice(total, size=max_pairs, replace=False))
    # row i holds pairs [start(i), start(i) + n - 1 - i) in the upper triangle, row by row
    starts = np.arange(n) * (2 * n - np.arange(n) - 1) // 2
    i = np.searchsorted(starts, flat, side="right") - 1
    j = flat - starts[i] + i + 1
    return i, j


def intra_set_distances(values: np.ndarray, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Euclidean distances between pieces of one set (every unordered pair, or a sample)."""
    i, j = _pairs_within(len(values), max_pairs, rng)
    return np.linalg.norm(values[i] - values[j], axis=1)


def inter_set_distances(
    a: np.ndarray,
    b: np.ndarray,
    max_pairs: int,
    rng: np.random.Generator,
    same: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distances between a piece of `a` and a piece of `b` (every pair, or a sample);
    `same[i, j]` True marks the same piece on both sides, a pair left out."""
    total = len(a) * len(b)
    flat = np.arange(total) if total <= max_pairs else rng.choice(total, max_pairs, replace=False)
    flat = np.sort(flat)
    i, j = np.divmod(flat, len(b))
    if same is not None:
        keep = ~same[i, j]
        i, j = i[keep], j[keep]
    return np.linalg.norm(a[i] - b[j], axis=1)


def scott_bandwidth(samples: np.ndarray) -> float:
    """scipy.stats.gaussian_kde's bandwidth for 1-D data: sample sd (ddof 1) * n^(-1/5)."""
    if samples.size < 2:
        return 0.0
    return float(np.std(samples, ddof=1) * samples.size ** (-1 / 5))


def kde_on_grid(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel density of `samples` on an evenly spaced grid, by linear binning onto
    the grid and a convolution with the kernel (the binned KDE of Wand 1994): exact for samples
    on grid points, within ~(step / bandwidth)^2 of scipy's gaussian_kde otherwise."""
    step = float(grid[1] - grid[0])
    position = np.clip((samples - grid[0]) / step, 0, grid.size - 1)
    left = np.minimum(np.floor(position).astype(np.int64), grid.size - 2)
    right_share = position - left
    counts = np.bincount(left, weights=1 - right_share, minlength=grid.size)
    counts += np.bincount(left + 1, weights=right_share, minlength=grid.size)
    offsets = np.arange(-(grid.size - 1), grid.size) * step
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2)
    density = np.convolve(counts, kernel, mode="valid")
    return density / (samples.size * bandwidth * math.sqrt(2 * math.pi))


def common_grid_densities(
    samples: Sequence[np.ndarray], grid_points: int
) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """KDEs of several distance samples on one grid covering all of them (4 bandwidths beyond)
    with one bandwidth: Scott's rule on the pooled samples, at least two grid steps of their
    range. Each density is normalized to integrate to 1 on the grid. None when every sample is
    the same single value (nothing to smooth: the densities are identical)."""
    pooled = np.concatenate(samples)
    low, high = float(pooled.min()), float(pooled.max())
    if high == low:
        return None
    bandwidth = max(scott_bandwidth(pooled), 2 * (high - low) / (grid_points - 1))
    pad = 4 * bandwidth
    grid = np.linspace(low - pad, high + pad, grid_points)
    densities = []
    for sample in samples:
        density = kde_on_grid(sample, grid, bandwidth)
        densities.append(density / np.trapezoid(density, grid))
    return grid, densities


def overlap_area(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """Integral of min(p, q) over the grid (1 for equal densities, 0 for disjoint ones)."""
    return float(np.clip(np.trapezoid(np.minimum(p, q), grid), 0.0, 1.0))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats of two densities on the same grid (as probabilities per grid point),
    q floored at KL_FLOOR."""
    p = p / p.sum()
    q = np.maximum(q / q.sum(), KL_FLOOR)
    keep = p > 0
    return float(max(np.sum(p[keep] * np.log(p[keep] / q[keep])), 0.0))


def _rng(seed: int, feature: str) -> np.random.Generator:
    """A stream per (seed, feature): adding a feature never changes another one's pairs."""
    return np.random.default_rng([seed, zlib.crc32(feature.encode())])


def compare_feature(
    generated: pd.DataFrame, reference: pd.DataFrame, feature: str, spec: DistributionSpec
) -> FeatureComparison:
    """MGEval's comparison of one feature between two sets (rows sorted by `id` first)."""
    generated, reference = _sorted(generated), _sorted(reference)
    values_a, values_b = feature_matrix(generated, feature), feature_matrix(reference, feature)
    ok_a, ok_b = ~np.isnan(values_a).any(axis=1), ~np.isnan(values_b).any(axis=1)
    a, b = values_a[ok_a], values_b[ok_b]
    nan = FeatureComparison(feature, math.nan, math.nan, math.nan, math.nan, len(a), len(b))
    if min(len(a), len(b)) < spec.min_pieces:
        return nan
    ids_a = generated["id"].to_numpy()[ok_a]
    ids_b = reference["id"].to_numpy()[ok_b]
    same = ids_a[:, None] == ids_b[None, :] if np.intersect1d(ids_a, ids_b).size else None
    rng = _rng(spec.seed, feature)
    intra_a = intra_set_distances(a, spec.max_pairs, rng)
    intra_b = intra_set_distances(b, spec.max_pairs, rng)
    inter = inter_set_distances(a, b, spec.max_pairs, rng, same)
    densities = common_grid_densities([intra_a, intra_b, inter], spec.grid_points)
    if densities is None:  # every distance is the same: the three densities coincide
        return FeatureComparison(feature, 1.0, 0.0, 1.0, 0.0, len(a), len(b))
    grid, (p_a, p_b, p_inter) = densities
    return FeatureComparison(
        feature,
        oa=overlap_area(p_b, p_inter, grid),
        kl=kl_divergence(p_b, p_inter),
        oa_generated=overlap_area(p_a, p_inter, grid),
        kl_generated=kl_divergence(p_a, p_inter),
        n_generated=len(a),
        n_reference=len(b),
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if "id" not in frame.columns:
        raise KeyError("a set of pieces needs an `id` column (pieces are sorted by it)")
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ReferenceStats:
    """The reference set's mean and sd of the FD-features columns (to standardize both sets)."""

    columns: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, reference: pd.DataFrame, columns: Sequence[str]) -> ReferenceStats:
        values = _defined(reference[list(columns)].to_numpy(dtype=float))
        if len(values) < 2:
            raise ValueError(f"FD-features needs >= 2 reference pieces with {list(columns)}")
        std = values.std(axis=0, ddof=1)
        return cls(tuple(columns), values.mean(axis=0), np.where(std > 0, std, 1.0))


def frechet_distance(
    mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """||mu_a - mu_b||^2 + Tr(A + B - 2 (A B)^(1/2)) between two Gaussians. The trace of the
    root is taken as Tr((A^(1/2) B A^(1/2))^(1/2)), symmetric and positive semi-definite, so a
    singular covariance (a constant feature) needs no nudging."""
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root, 0.0))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def fd_features(
    generated: pd.DataFrame, reference: pd.DataFrame, stats: ReferenceStats
) -> tuple[float, int, int]:
    """(FD-features, pieces used on each side): pieces with every column defined, standardized
    by the reference statistics; nan with fewer than two pieces on a side."""
    columns = list(stats.columns)
    a = _defined(generated[columns].to_numpy(dtype=float))
    b = _defined(reference[columns].to_numpy(dtype=float))
    if min(len(a), len(b)) < 2:
        return math.nan, len(a), len(b)
    a = (a - stats.mean) / stats.std
    b = (b - stats.mean) / stats.std
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    return frechet_distance(a.mean(axis=0), cov_a, b.mean(axis=0), cov_b), len(a), len(b)


def compare_sets(
    generated: pd.DataFrame,
    reference: pd.DataFrame,
    spec: DistributionSpec,
    stats: ReferenceStats | None = None,
) -> pd.DataFrame:
    """One row per feature (OA, KL both ways, pieces per side) plus the FD-features row and the
    headline row (mean OA over `headline_features`)."""
    rows = [compare_feature(generated, reference, f, spec).__dict__ for f in spec.features]
    frame = pd.DataFrame(rows)
    stats = stats or ReferenceStats.of(reference, spec.fd_features)
    fd, n_a, n_b = fd_features(generated, reference, stats)
    head = frame[frame["feature"].isin(spec.headline_features)]
    extra = [
        {
            "feature": "fd_features",
            "oa": math.nan,
            "kl": math.nan,
            "oa_generated": math.nan,
            "kl_generated": math.nan,
            "n_generated": n_a,
            "n_reference": n_b,
            "fd": fd,
        },
        {
            "feature": "mean_oa_headline",
            "oa": float(head["oa"].mean()),
            "kl": math.nan,
            "oa_generated": float(head["oa_generated"].mean()),
            "kl_generated": math.nan,
            "n_generated": int(head["n_generated"].min()) if len(head) else 0,
            "n_reference": int(head["n_reference"].min()) if len(head) else 0,
        },
    ]
    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)


def draw_pieces(count: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` of `count` pieces (all when fewer), drawn with `seed`: the train
    pieces of the data row (the same draw whether rows or files are drawn)."""
    if count <= size:
        return np.arange(count)
    rng = np.random.default_rng([seed, zlib.crc32(b"data_against_data")])
    return np.sort(rng.choice(count, size=size, replace=False))


def data_against_data(
    train: pd.DataFrame, test: pd.DataFrame, spec: DistributionSpec, stats: ReferenceStats
) -> pd.DataFrame:
    """The ceiling row: as many train pieces as there are test pieces (drawn with `seed`, from
    the train pieces sorted by id), compared with the test pieces like a model's samples."""
    train = _sorted(train)
    picked = draw_pieces(len(train), len(test), spec.seed)
    return compare_sets(train.iloc[picked], test, spec, stats)
