"""From samples to a decomposition: discretisation, joint histograms, bias correction and
intervals.

The plug-in PID of an empirical histogram is biased: its mutual informations over-estimate
the truth by roughly (cells - 1) / (2 n ln 2) bits for n samples (Miller-Madow), and synergy,
which collects what neither source explains on its own, takes most of that. Intervals built
around the plug-in (percentile bootstrap) then miss the truth: from 3,000 samples of an
8 x 8 x 4 Dirichlet population the 95% percentile interval of synergy covered the true value
0 times in 40. ``estimate`` corrects the bias and builds its intervals around the corrected
value (``benchmarks/bench_estimate.py`` measures bias, RMSE and coverage of every option):

``bias_correction=`` (the correction of the point estimate and, with it, the interval)

- ``"extrapolation"`` (default): quadratic extrapolation in 1/n (Strong et al. 1998; Treves
  and Panzeri 1995): the PID of the full sample, of random halves and of random quarters
  (averaged over ``repeats`` random partitions) is fitted with a + b/n + c/n^2, and a (its
  value at infinite n) is the estimate. It assumes the bias has that expansion, which holds
  once most of the probability mass sits in cells with several samples. The interval is
  ``value +- t * se`` with the delete-a-group jackknife standard error of the extrapolated
  estimator (``groups`` groups, Student's t with groups - 1 degrees of freedom); it is
  symmetric about the estimate, so it always contains it. Cost: (groups + 1)(1 + 6 repeats)
  decompositions, in one batched call.
- ``"jackknife"``: delete-a-group jackknife of the plug-in, ``g * plug_in - (g - 1) *
  mean(leave-one-group-out)``, which removes the 1/n term of the bias only; interval as above
  from the jackknife standard error. Cost: groups + 1 decompositions. Measured: as good as
  extrapolation on Dirichlet populations, but it leaves a bias of several standard errors in
  synergy on clustered 20 x 20 x K histograms with 5 to 15 samples per occupied cell.
- ``"bootstrap"``: bootstrap bias correction ``2 * plug_in - mean(resamples)`` and the basic
  bootstrap interval (the percentile interval reflected about the plug-in). It assumes the
  bias at the empirical distribution equals the bias at the truth, which under-corrects when
  the histogram is sparse (cells unseen in the sample contribute nothing to the resamples'
  bias). Needs ``bootstrap`` resamples.
- ``"shuffle"``: subtracts the mean PID of ``shuffles`` histograms with Y permuted (what is
  found when there is no dependence at all). A heuristic: it measures the bias of an
  independent population, not of the one sampled. Intervals: the percentile intervals of
  ``None``, shifted by the same baseline.
- ``None``: the plug-in estimate; with ``bootstrap`` resamples, percentile intervals, which
  inherit the bias (they can exclude the plug-in itself; ``notes`` says so when they do).

When the samples are too few for the histogram, ``estimate`` warns with the numbers
(:class:`FewSamplesWarning`) and sets ``Estimate.too_few_samples``; use fewer clusters or more
samples. Two conditions, each measured to precede under-coverage in
``benchmarks/bench_estimate.py``: fewer than ``MIN_SAMPLES_PER_CELL`` samples per occupied
cell, or a bias correction larger than ``MAX_CORRECTION_IN_SE`` standard errors of the plug-in
for some atom (the bias is then large against the statistical error, and what the expansion
leaves of it is too), unless there are at least ``ASYMPTOTIC_SAMPLES_PER_CELL`` samples per
occupied cell, where the terms the expansion drops are negligible (and at the independence
boundary, where atoms are 0, the plug-in's spread is far below its bias: 3,000 samples of three
independent bits, 375 per cell, tripped the second condition in 1 of 150 seeds).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ._backend import is_torch
from .core import decompose
from .result import ATOMS, INFORMATIONS3, TERMS3, PID3Result, PIDResult

CORRECTIONS = ("extrapolation", "jackknife", "bootstrap", "shuffle", None)
MIN_SAMPLES_PER_CELL = 5.0
MAX_CORRECTION_IN_SE = 4.0
ASYMPTOTIC_SAMPLES_PER_CELL = 100.0


class FewSamplesWarning(UserWarning):
    """The samples are too few for the histogram: the PID estimate and its intervals are not
    to be trusted (see :data:`MIN_SAMPLES_PER_CELL` and :data:`MAX_CORRECTION_IN_SE`)."""


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


def _category_codes(x, name: str) -> Tuple[np.ndarray, int]:
    """Per-sample categories (integers, integer-valued floats, bools, strings, pandas
    categoricals, any hashable objects) -> codes 0..k-1 and k. NaN or None is not a category:
    it is an error naming the first sample that has it."""
    values = getattr(x, "array", x)  # a pandas Series: its array (a Categorical keeps its categories)
    codes = getattr(values, "codes", None)
    if codes is not None and getattr(values, "categories", None) is not None:  # pandas Categorical
        codes = np.asarray(codes)
        if (codes < 0).any():
            raise ValueError(f"{name} has a missing value (NaN) at sample {int(np.argmax(codes < 0))}")
        used, codes = np.unique(codes, return_inverse=True)
        return codes.astype(np.int64), len(used)
    arr = np.asarray(values)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        missing = ~np.isfinite(arr)
        if missing.any():
            raise ValueError(f"{name} has a missing or infinite value at sample {int(np.argmax(missing))}")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name}: 1-D float values that are not whole numbers are not categories; pass continuous "
                             "features as an array of shape (n_samples, dim), e.g. x.reshape(-1, 1), to be clustered")
    elif arr.dtype == object:
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and not math.isfinite(v))]
        if missing:
            raise ValueError(f"{name} has a missing value (None or NaN) at sample {missing[0]}")
        try:
            used, codes = np.unique(arr, return_inverse=True)
        except TypeError:  # values of mixed types: order them by their text
            used, codes = np.unique(arr.astype(str), return_inverse=True)
        return codes.reshape(-1).astype(np.int64), len(used)
    used, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), len(used)


def _codes(x, discretiser: Optional[Discretiser], clusters, components, seed, name) -> Tuple[np.ndarray, int, Optional[Discretiser]]:
    if np.ndim(getattr(x, "array", x)) == 1 or getattr(x, "categories", None) is not None:
        codes, k = _category_codes(x, name)
        return codes, k, None
    if np.ma.isMaskedArray(x):
        raise ValueError(f"{name} is a masked array: drop the masked samples first")
    if discretiser is None:
        discretiser = Discretiser(clusters, components, seed).fit(x)
    return discretiser.transform(x), discretiser.n_codes, discretiser


def min_samples(bias_correction: Optional[str], groups: int) -> int:
    """The fewest samples ``estimate`` can work with: 2, and for "extrapolation" enough that
    every quarter of every jackknife sample (all but one of ``groups`` groups) holds one."""
    if bias_correction != "extrapolation":
        return 2
    n = 2
    while n - -(-n // min(groups, n)) < 4:  # the smallest jackknife sample, split in quarters
        n += 1
    return n


def joint_histogram(c1, c2, y, shape) -> np.ndarray:
    """Counts of (c1, c2, y) triples as an array of ``shape``."""
    return _histogram((c1, c2, y), shape)


def _histogram(codes, shape) -> np.ndarray:
    """Counts of the tuples of ``codes`` (one array of codes per axis) as an array of ``shape``."""
    counts = np.zeros(shape)
    np.add.at(counts, tuple(codes), 1.0)
    return counts


def _split(rng, counts: np.ndarray, parts: int) -> List[np.ndarray]:
    """A uniformly random partition of the samples behind ``counts`` into ``parts`` groups of
    (nearly) equal size, drawn in count space (multivariate hypergeometric)."""
    rest = counts.astype(np.int64).ravel()
    n = int(rest.sum())
    groups = []
    for k in range(parts, 1, -1):
        g = rng.multivariate_hypergeometric(rest, n // k)
        groups.append(g.reshape(counts.shape))
        rest = rest - g
        n -= n // k
    groups.append(rest.reshape(counts.shape))
    return groups


class _Estimator:
    """An estimator of the atoms (or terms) from a count array, written as the count arrays it needs
    decomposed (``pieces``) and how their atoms combine, so that many evaluations (jackknife
    replicates) go to the solver in one batched call."""

    def __init__(self, pieces: Callable[[np.ndarray], List[np.ndarray]], combine: Callable[[np.ndarray], np.ndarray]):
        self.pieces, self.combine = pieces, combine

    def evaluate(self, count_arrays: List[np.ndarray], solve) -> Tuple[np.ndarray, np.ndarray]:
        """The estimates for each count array, and the plug-in values of each (the first
        piece is always the count array itself)."""
        per = [self.pieces(c) for c in count_arrays]
        values = solve(np.stack([p for ps in per for p in ps]))
        out, plug, k = [], [], 0
        for ps in per:
            out.append(self.combine(values[k : k + len(ps)]))
            plug.append(values[k])
            k += len(ps)
        return np.stack(out), np.stack(plug)


def _plug_in() -> _Estimator:
    return _Estimator(lambda c: [c], lambda v: v[0])


def _extrapolated(rng, repeats: int) -> _Estimator:
    # th(N) = a + b/N + c/N^2 through (N, th), (N/2, mean of halves), (N/4, mean of quarters):
    # a = (8 th - 6 halves + quarters) / 3.
    def pieces(c):
        halves = [h for _ in range(repeats) for h in _split(rng, c, 2)]
        quarters = [q for _ in range(repeats) for q in _split(rng, c, 4)]
        return [c] + halves + quarters

    def combine(v):
        return (8 * v[0] - 6 * v[1 : 1 + 2 * repeats].mean(0) + v[1 + 2 * repeats :].mean(0)) / 3

    return _Estimator(pieces, combine)


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom (numpy and the standard library
    only). Exact closed forms for df = 1, 2 and 4 (Hill 1970); otherwise the Cornish-Fisher
    expansion around the normal quantile to 1/df^4 (Abramowitz and Stegun 26.7.5), within 3e-4
    of the exact value for df >= 9 (p <= 0.995) and for df >= 5 (p <= 0.975); for df = 3 it is
    slightly too small (p = 0.975: by 4e-3)."""
    from statistics import NormalDist

    if not 0 < p < 1 or df < 1:
        raise ValueError(f"need 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    if df == 4:
        alpha = 4 * p * (1 - p)
        q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
        return math.copysign(2 * math.sqrt(max(q - 1, 0.0)), p - 0.5)
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def _jackknife_se(loo: np.ndarray) -> np.ndarray:
    groups = len(loo)
    return np.sqrt((groups - 1) / groups * ((loo - loo.mean(0)) ** 2).sum(0))


def _jackknife(rng, counts, groups: int, estimator: _Estimator, solve):
    """Delete-a-group jackknife of ``estimator``: (its value, the bias-corrected value, its
    standard error, the standard error of the plug-in)."""
    parts = _split(rng, counts, groups)
    values, plug = estimator.evaluate([counts] + [counts - p for p in parts], solve)
    full, loo = values[0], values[1:]
    corrected = groups * full - (groups - 1) * loo.mean(0)
    return full, corrected, _jackknife_se(loo), _jackknife_se(plug[1:])


@dataclass(frozen=True)
class Estimate:
    """Result of :func:`estimate`.

    With three sources (``estimate(..., x3=...)``) the atoms are the eight terms of
    :class:`~fastpid.result.PID3Result` (``terms`` names them).

    Attributes:
        values: atom -> the estimate (bias-corrected as ``bias_correction`` says; the plug-in
            value when it is None).
        intervals: atom -> (low, high) interval at ``confidence`` (see the module doc for how
            each correction builds it); empty without correction and without bootstrap.
        standard_errors: atom -> standard error of ``values`` (jackknife, or the spread of the
            bootstrap resamples); empty when not computed.
        bias_correction: the correction applied (None for the plug-in).
        confidence: the nominal coverage of ``intervals``.
        pid: decomposition of the plug-in joint distribution (all measures, uncorrected): a
            PIDResult, or a PID3Result with three sources.
        joint: the joint distribution P(X1, X2, Y) it was computed from (n1, n2, ny), or
            P(X1, X2, X3, Y) (n1, n2, n3, ny).
        samples: number of samples.
        occupied_cells: cells (x1, x2, y) of the histogram with at least one sample.
        samples_per_cell: samples / occupied_cells.
        too_few_samples: True when the samples are too few for the histogram (fewer than
            MIN_SAMPLES_PER_CELL per occupied cell, or a correction of more than
            MAX_CORRECTION_IN_SE standard errors of the plug-in; a :class:`FewSamplesWarning`
            says which).
        discretisers: the fitted :class:`Discretiser` of each source (None for discrete input).
        bootstrap: the batched decomposition of the resamples, when ``bootstrap`` > 0.
        shuffle_baseline: atom -> mean value under permuted Y, when ``bias_correction="shuffle"``.
        corrected: atom -> the corrected value (same as ``values``), empty without correction.
        notes: anything the caller should know about these numbers (e.g. an interval that
            excludes its estimate, and why; decompositions that stopped short of tol).
        converged: True when every decomposition behind the numbers (plug-in, replicates,
            resamples) reached tol; otherwise a note says how many did not and their largest
            certified bound.
    """

    pid: Union[PIDResult, PID3Result]
    joint: np.ndarray
    discretisers: Tuple[Optional[Discretiser], ...]
    values: Dict[str, float] = field(default_factory=dict)
    intervals: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    standard_errors: Dict[str, float] = field(default_factory=dict)
    bias_correction: Optional[str] = None
    confidence: float = 0.95
    samples: int = 0
    occupied_cells: int = 0
    samples_per_cell: float = 0.0
    too_few_samples: bool = False
    bootstrap: Optional[Union[PIDResult, PID3Result]] = field(default=None, repr=False)
    shuffle_baseline: Dict[str, float] = field(default_factory=dict)
    corrected: Dict[str, float] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()
    converged: bool = True

    @property
    def shape(self) -> Tuple[int, ...]:
        """(n1, n2, ny) of the histogram; (n1, n2, n3, ny) with three sources."""
        return tuple(self.joint.shape)

    @property
    def terms(self) -> Tuple[str, ...]:
        """The names of the estimated atoms: ATOMS, or TERMS3 with three sources."""
        return TERMS3 if isinstance(self.pid, PID3Result) else ATOMS

    def to_dict(self) -> dict:
        """Plain Python values for logging or JSON (the plug-in PID under "plug_in")."""
        return {
            "values": dict(self.values), "intervals": {k: list(v) for k, v in self.intervals.items()},
            "standard_errors": dict(self.standard_errors), "bias_correction": self.bias_correction,
            "confidence": self.confidence, "unit": self.pid.unit, "shape": list(self.shape), "samples": self.samples,
            "occupied_cells": self.occupied_cells, "samples_per_cell": self.samples_per_cell,
            "too_few_samples": self.too_few_samples, "converged": self.converged, "notes": list(self.notes),
            "plug_in": {k: float(getattr(self.pid, k)) for k in self.terms + (INFORMATIONS3 if self.terms == TERMS3 else ("mi_x1", "mi_x2", "mi_joint"))},
        }

    def __repr__(self) -> str:
        how = f"{self.bias_correction}-corrected" if self.bias_correction else "plug-in"
        lines = [f"Estimate({how}, {self.pid.unit}; {self.samples:,} samples, {'x'.join(map(str, self.shape))} histogram, "
                 f"{self.samples_per_cell:.1f} per occupied cell{'  [too few samples]' if self.too_few_samples else ''})"]
        for atom in self.terms:
            line = f"  {atom:<10} {self.values[atom]:9.4f}"
            if atom in self.intervals:
                lo, hi = self.intervals[atom]
                line += f"   {self.confidence:.0%} interval [{lo:.4f}, {hi:.4f}]"
            if self.bias_correction:
                line += f"   plug-in {float(getattr(self.pid, atom)):.4f}"
            lines.append(line)
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def estimate(
    x1, x2, y, *, clusters: int = 20, components: int = 5, discretisers=(None, None),
    bias_correction: Optional[str] = "extrapolation", bootstrap: int = 0, confidence: float = 0.95,
    groups: int = 20, repeats: int = 2, shuffles: int = 20, seed: Optional[int] = 0, tol: float = 1e-7, base=2,
    warn: bool = True, threads: Optional[int] = None, progress=None, x3=None,
) -> Estimate:
    """PID of two sources and a target given as samples (or of three: ``x3``), with a bias
    correction and intervals.

    Args:
        x1, x2: per-sample categories (1-D: integers, whole-number floats, bools, strings,
            pandas categoricals or Series, any values that compare) or continuous features
            (n_samples, dim), which are discretised with :class:`Discretiser` (``clusters``,
            ``components``), or with the fitted ``discretisers`` given (to reuse them on new
            samples). numpy arrays, lists, pandas objects or CPU torch tensors.
        y: labels (n_samples,), categories as for x1.
        bias_correction: ``"extrapolation"`` (default), ``"jackknife"``, ``"bootstrap"``,
            ``"shuffle"`` or None; what each assumes and how it builds its interval is in the
            module documentation.
        bootstrap: number of resamples (required by ``"bootstrap"``; with None or "shuffle"
            they give percentile intervals; with the jackknife corrections they are only
            kept in ``Estimate.bootstrap``). All resamples are decomposed in one batched call.
        confidence: nominal coverage of the intervals.
        groups: jackknife groups (at most the number of samples).
        repeats: random partitions averaged into the halves and quarters of "extrapolation".
        shuffles: permutations of Y for "shuffle".
        warn: issue :class:`FewSamplesWarning` when the samples are too few for the
            histogram (the ``too_few_samples`` field is set either way).
        threads, progress: as in :func:`fastpid.decompose`, for each of the batched solves
            (the resamples, jackknife groups and shuffles).
        x3: a third source (as x1): the eight terms of the trivariate maximum-entropy
            decomposition (``decompose(P, sources=3)``) are estimated, with the same
            corrections and intervals; ``discretisers`` then has three entries.
    """
    sources = {"x1": x1, "x2": x2} if x3 is None else {"x1": x1, "x2": x2, "x3": x3}
    for name, x in (*sources.items(), ("y", y)):
        if np.ma.isMaskedArray(x):
            raise ValueError(f"{name} is a masked array: drop the masked samples first (e.g. x[~x.mask] for each input)")
    sources = {name: x.detach().cpu().numpy() if is_torch(x) else x for name, x in sources.items()}
    y = y.detach().cpu().numpy() if is_torch(y) else y
    if np.ndim(getattr(y, "array", y)) != 1:
        raise ValueError(f"y must be 1-D, one label per sample, got shape {np.shape(y)}")
    n = len(y)
    if any(len(x) != n for x in sources.values()):
        raise ValueError(f"{', '.join(sources)} and y must have the same number of samples, got "
                         f"{', '.join(str(len(x)) for x in sources.values())}, {n}")
    discretisers = tuple(discretisers) + (None,) * (len(sources) - len(tuple(discretisers)))
    if len(discretisers) != len(sources):
        raise ValueError(f"discretisers must have one entry per source ({len(sources)}), got {len(discretisers)}")
    if bias_correction not in CORRECTIONS:
        raise ValueError(f"bias_correction must be one of {CORRECTIONS}, got {bias_correction!r}")
    fewest = min_samples(bias_correction, groups)
    if n < fewest:
        raise ValueError(f"need at least {fewest} samples for bias_correction={bias_correction!r}, got {n}"
                         + ("; bias_correction='jackknife' or None work from 2" if fewest > 2 else ""))
    if bias_correction == "bootstrap" and bootstrap < 2:
        raise ValueError("bias_correction='bootstrap' needs bootstrap >= 2 resamples")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if groups < 2 or repeats < 1 or bootstrap < 0:
        raise ValueError("groups must be >= 2, repeats >= 1 and bootstrap >= 0")
    groups = min(groups, n)
    coded = [_codes(x, d, clusters, components, seed, name) for (name, x), d in zip(sources.items(), discretisers)]
    codes = [c for c, _, _ in coded]
    cy, n_labels = _category_codes(y, "y")
    shape = tuple(k for _, k, _ in coded) + (n_labels,)
    counts = _histogram(codes + [cy], shape)
    terms = ATOMS if x3 is None else TERMS3
    occupied = int(np.count_nonzero(counts))
    per_cell = n / occupied

    def atoms_of(r):
        return np.stack([np.asarray(getattr(r, a), dtype=np.float64) for a in terms], axis=-1)

    # Every internal solve goes through run(), which counts those that stopped short of tol
    # (after decompose's hand-off between its methods): Estimate.converged and a note say so.
    solves = {"total": 0, "short": 0, "worst_bound": 0.0}

    def run(batch):
        r = decompose(batch, normalize=True, tol=tol, base=base, threads=threads, progress=progress, sources=len(sources))
        converged, bound = np.asarray(r.converged).ravel(), np.asarray(r.bound, dtype=np.float64).ravel()
        solves["total"] += converged.size
        solves["short"] += int((~converged).sum())
        if (~converged).any():
            solves["worst_bound"] = max(solves["worst_bound"], float(np.nanmax(np.where(converged, 0.0, bound))))
        return r

    def solve(batch):
        return atoms_of(run(batch))

    pid = run(counts)
    plug = atoms_of(pid)
    rng = np.random.default_rng(seed)
    value, lo, hi, se, plug_se, boot, baseline, notes = plug, None, None, None, None, None, {}, []
    if bootstrap > 0:
        batch = rng.multinomial(n, (counts / n).ravel(), size=bootstrap).reshape((bootstrap,) + shape).astype(np.float64)
        boot = run(batch)
        reps = atoms_of(boot)
        q_lo, q_hi = np.percentile(reps, 50 * (1 - confidence), axis=0), np.percentile(reps, 50 * (1 + confidence), axis=0)
        se = plug_se = reps.std(axis=0, ddof=1)
        if bias_correction == "bootstrap":
            value, lo, hi = 2 * plug - reps.mean(0), 2 * plug - q_hi, 2 * plug - q_lo
        elif bias_correction in (None, "shuffle"):
            lo, hi = q_lo, q_hi
    if bias_correction in ("jackknife", "extrapolation"):
        estimator = _plug_in() if bias_correction == "jackknife" else _extrapolated(rng, repeats)
        full, jack, se, plug_se = _jackknife(rng, counts, groups, estimator, solve)
        value = jack if bias_correction == "jackknife" else full
        half = t_quantile(0.5 + confidence / 2, groups - 1) * se
        lo, hi = value - half, value + half
    if bias_correction == "shuffle":
        batch = np.stack([_histogram(codes + [rng.permutation(cy)], shape) for _ in range(shuffles)])
        null = solve(batch).mean(0)
        baseline = dict(zip(terms, map(float, null)))
        value = plug - null
        if lo is not None:  # the percentile interval, shifted by the same baseline
            lo, hi = lo - null, hi - null
    reasons = []
    if per_cell < MIN_SAMPLES_PER_CELL:
        reasons.append(f"{per_cell:.1f} samples per occupied cell, fewer than {MIN_SAMPLES_PER_CELL:g}")
    if plug_se is not None and bias_correction in ("extrapolation", "jackknife", "bootstrap") and per_cell < ASYMPTOTIC_SAMPLES_PER_CELL:
        # corrections under 1e-3 bits do not count (deterministic gates: se 0, correction ~1e-4)
        correction_bits = np.abs(plug - value) * np.log2(base)
        # A standard error at the solver's accuracy (the resamples agree to tol: deterministic
        # data) makes the ratio meaningless; such a correction counts as large, said in bits only.
        no_spread = plug_se <= np.maximum(10 * tol, 1e-9 * np.abs(plug))
        ratio = np.where(correction_bits > 1e-3, np.where(no_spread, np.inf, np.abs(plug - value) / np.maximum(plug_se, 1e-300)), 0.0)
        worst = int(np.argmax(ratio))
        if ratio[worst] > MAX_CORRECTION_IN_SE:
            what = f"the bias correction of {terms[worst]} ({plug[worst] - value[worst]:+.3g} {pid.unit}) is "
            reasons.append(what + ("large while the plug-in's standard error is 0 (its resamples agree to the solver's tol)" if no_spread[worst]
                                   else f"{ratio[worst]:.1f} standard errors of the plug-in, more than {MAX_CORRECTION_IN_SE:g}"))
    too_few = bool(reasons)
    if too_few and warn:
        warnings.warn(
            f"{n:,} samples over {occupied:,} occupied cells of the {'x'.join(map(str, shape))} histogram: {'; '.join(reasons)}. "
            "The PID estimate is biased and its intervals are not trustworthy; use fewer clusters or more samples.",
            FewSamplesWarning, stacklevel=2)
    if lo is not None:
        outside = [a for a, v, l, h in zip(terms, value, lo, hi) if not l <= v <= h]
        if outside and bias_correction == "bootstrap":
            notes.append(f"the corrected value of {', '.join(outside)} lies outside its basic bootstrap interval: the resamples "
                         "are skewed about the plug-in (atoms near 0 are); the default bias_correction='extrapolation' gives "
                         "intervals symmetric about the estimate")
        elif outside:
            notes.append(f"the {'plug-in' if bias_correction is None else 'corrected'} value of {', '.join(outside)} lies outside its "
                         "interval: the bootstrap resamples are biased away from it (the default bias_correction='extrapolation' corrects it)")
    if solves["short"]:
        notes.append(f"{solves['short']:,} of the {solves['total']:,} decompositions behind these numbers stopped short of tol "
                     f"{tol:g} (largest certified bound {solves['worst_bound']:.2g} {pid.unit}): the values can be off by up "
                     "to that much")
    values = dict(zip(terms, map(float, value)))
    return Estimate(
        pid, counts / n, tuple(d for _, _, d in coded), values,
        {a: (float(l), float(h)) for a, l, h in zip(terms, lo, hi)} if lo is not None else {},
        dict(zip(terms, map(float, se))) if se is not None else {},
        bias_correction, confidence, n, occupied, per_cell, too_few, boot, baseline,
        values if bias_correction else {}, tuple(notes), solves["short"] == 0,
    )


__all__ = ["ASYMPTOTIC_SAMPLES_PER_CELL", "CORRECTIONS", "MAX_CORRECTION_IN_SE", "MIN_SAMPLES_PER_CELL", "Discretiser", "Estimate", "FewSamplesWarning", "estimate", "joint_histogram"]
