"""From samples to a decomposition: discretisation, joint histograms, bootstrap intervals.

Plug-in estimates from few samples are biased: the mutual informations (and with them
redundancy, unique informations and synergy) of an empirical histogram over-estimate the
truth by roughly (cells - 1) / (2 n ln 2) bits for n samples (Miller-Madow), which for a
20 x 20 x 6 histogram of 1,000 samples is large. ``bias_correction="shuffle"`` estimates the
part of every atom that survives when Y is permuted (no real dependence) and subtracts it;
it is a heuristic, stated as such, and the uncorrected values are kept too.

Bootstrap intervals are percentile intervals of the resampled atoms. They cover the truth at
about their nominal rate when the atom is away from the edge of its range; for an atom whose
true value is 0 or pinned by the boundary (the AND gate's unique informations, say) the
plug-in estimate is biased and the interval covers less (seen: 65% for a nominal 90% on the
AND gate's synergy from 3,000 samples).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .core import decompose
from .result import ATOMS, PIDResult


class Discretiser:
    """Continuous features (n_samples, dim) -> integer codes, the way the multimodal PID
    literature does it: L2-normalise every row, project on the first ``components`` principal
    components, cluster with k-means into ``clusters`` groups (scikit-learn). Fit once, then
    reuse ``transform`` on new samples (e.g. later checkpoints or a test set)."""

    def __init__(self, clusters: int = 20, components: int = 5, seed: Optional[int] = 0):
        if clusters < 1 or components < 1:
            raise ValueError("clusters and components must be >= 1")
        self.clusters, self.components, self.seed = clusters, components, seed
        self._pca = self._kmeans = None

    @staticmethod
    def _rows(features):
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must have shape (n_samples, dim), got {x.shape}")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)

    def fit(self, features) -> "Discretiser":
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        x = self._rows(features)
        k = min(self.components, x.shape[1], x.shape[0])
        self._pca = PCA(n_components=k, random_state=self.seed).fit(x)
        z = self._pca.transform(x)
        self._kmeans = KMeans(n_clusters=min(self.clusters, len(x)), n_init=4, random_state=self.seed).fit(z)
        return self

    def transform(self, features) -> np.ndarray:
        if self._kmeans is None:
            raise ValueError("Discretiser.transform before fit")
        return self._kmeans.predict(self._pca.transform(self._rows(features))).astype(np.int64)

    def fit_transform(self, features) -> np.ndarray:
        return self.fit(features).transform(features)

    @property
    def n_codes(self) -> int:
        return int(self._kmeans.n_clusters) if self._kmeans is not None else self.clusters


def _codes(x, discretiser: Optional[Discretiser], clusters, components, seed) -> Tuple[np.ndarray, int, Optional[Discretiser]]:
    x = np.asarray(x)
    if x.ndim == 1:
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError("1-D inputs must be integer codes; pass continuous features as (n_samples, dim)")
        values, codes = np.unique(x, return_inverse=True)
        return codes.astype(np.int64), len(values), None
    if discretiser is None:
        discretiser = Discretiser(clusters, components, seed).fit(x)
    return discretiser.transform(x), discretiser.n_codes, discretiser


def joint_histogram(c1, c2, y, shape) -> np.ndarray:
    """Counts of (c1, c2, y) triples as an array of ``shape``."""
    counts = np.zeros(shape)
    np.add.at(counts, (c1, c2, y), 1.0)
    return counts


@dataclass(frozen=True)
class Estimate:
    """Result of :func:`estimate`.

    Attributes:
        pid: decomposition of the plug-in joint distribution (bits unless asked otherwise).
        joint: the joint distribution P(X1, X2, Y) it was computed from (n1, n2, ny).
        discretisers: the fitted :class:`Discretiser` of each source (None for discrete input).
        intervals: atom -> (low, high) bootstrap percentile interval, when ``bootstrap`` > 0.
        bootstrap: the batched decomposition of the resamples, when ``bootstrap`` > 0.
        shuffle_baseline: atom -> mean value under permuted Y, when ``bias_correction="shuffle"``.
        corrected: atom -> plug-in value minus its shuffle baseline, when corrected.
    """

    pid: PIDResult
    joint: np.ndarray
    discretisers: Tuple[Optional[Discretiser], Optional[Discretiser]]
    intervals: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    bootstrap: Optional[PIDResult] = None
    shuffle_baseline: Dict[str, float] = field(default_factory=dict)
    corrected: Dict[str, float] = field(default_factory=dict)


def estimate(
    x1, x2, y, *, clusters: int = 20, components: int = 5, discretisers=(None, None), bootstrap: int = 0,
    confidence: float = 0.95, bias_correction: Optional[str] = None, shuffles: int = 20, seed: Optional[int] = 0,
    tol: float = 1e-7, base=2,
) -> Estimate:
    """PID of two sources and a target given as samples.

    Args:
        x1, x2: per-sample codes (1-D integer arrays) or continuous features (n_samples, dim),
            which are discretised with :class:`Discretiser` (``clusters``, ``components``), or
            with the fitted ``discretisers`` given (to reuse them on new samples).
        y: integer labels (n_samples,).
        bootstrap: number of resamples; all of them are decomposed in one batched call, and
            ``intervals`` holds the percentile interval at ``confidence`` of every atom.
        bias_correction: None or ``"shuffle"`` (see module doc), with ``shuffles`` permutations.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError("y must be a 1-D array of integer labels")
    n = len(y)
    if len(x1) != n or len(x2) != n:
        raise ValueError(f"x1, x2 and y must have the same number of samples, got {len(x1)}, {len(x2)}, {n}")
    if bias_correction not in (None, "shuffle"):
        raise ValueError("bias_correction must be None or 'shuffle'")
    c1, n1, d1 = _codes(x1, discretisers[0], clusters, components, seed)
    c2, n2, d2 = _codes(x2, discretisers[1], clusters, components, seed)
    labels, cy = np.unique(y, return_inverse=True)
    shape = (n1, n2, len(labels))
    counts = joint_histogram(c1, c2, cy, shape)
    pid = decompose(counts, normalize=True, tol=tol, base=base)
    rng = np.random.default_rng(seed)
    intervals, boot, baseline, corrected = {}, None, {}, {}
    if bootstrap > 0:
        idx = rng.integers(0, n, size=(bootstrap, n))
        batch = np.zeros((bootstrap,) + shape)
        for b in range(bootstrap):
            np.add.at(batch[b], (c1[idx[b]], c2[idx[b]], cy[idx[b]]), 1.0)
        boot = decompose(batch, normalize=True, tol=tol, base=base)
        lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
        for atom in ATOMS:
            v = np.asarray(getattr(boot, atom))
            intervals[atom] = (float(np.percentile(v, lo)), float(np.percentile(v, hi)))
    if bias_correction == "shuffle":
        batch = np.stack([joint_histogram(c1, c2, rng.permutation(cy), shape) for _ in range(shuffles)])
        null = decompose(batch, normalize=True, tol=tol, base=base)
        for atom in ATOMS:
            baseline[atom] = float(np.mean(getattr(null, atom)))
            corrected[atom] = float(getattr(pid, atom)) - baseline[atom]
    return Estimate(pid, counts / counts.sum(), (d1, d2), intervals, boot, baseline, corrected)


__all__ = ["Discretiser", "Estimate", "estimate", "joint_histogram"]
