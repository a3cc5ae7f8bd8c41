"""Estimating PID from samples: bias, RMSE and coverage of the 95% intervals of every
estimator of ``fastpid.estimate``, on known populations.

    python -m benchmarks.bench_estimate [--quick] [--sources 3]

Populations (the truth is the exact PID of P, and samples are drawn from P itself):
- Dirichlet 4x4x3 and 8x8x4 (concentration 0.7): the cases of the estimation issue;
- "clustered" 20x20x6 and 20x20x10: P is the histogram of 10^6 draws of two noisy embeddings
  of two latent variables a, b (y = a + b mod K with probability 0.6, else y = a; the second
  embedding also carries a little of a), each
  discretised the way users do (L2-normalise, PCA to 5, k-means into 20 clusters): sparse,
  structured and synergistic like the histograms of real multimodal features.

With ``--sources 3`` the eight terms of the trivariate decomposition (``estimate(..., x3=...)``)
on three-source populations: Dirichlet 3x3x3x3 and 4x4x4x3 (concentration 0.7), and the noisy
xor of three bits of examples/three_modalities.py (5% of labels flipped; on a fourth of the
samples Y is X1), with the extrapolation default and the plug-in.

For every population, sample size (200 to 100,000) and estimator it records, per atom, the
bias, the RMSE, the coverage of the nominal 95% interval and its mean width, and how often the
few-samples warning fired, over ``--reps`` samples. Writes results/estimate[3][-quick].json;
the plot (benchmarks/plots.py) shows bias and coverage against samples per occupied cell.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

import fastpid
from fastpid.estimate import Discretiser, FewSamplesWarning, estimate
from fastpid.result import ATOMS, TERMS3

from .harness import machine, progress, table, write_json

ESTIMATORS = {
    "plug-in, percentile bootstrap": dict(bias_correction=None, bootstrap=100),
    "bootstrap-corrected, basic bootstrap": dict(bias_correction="bootstrap", bootstrap=100),
    "jackknife": dict(bias_correction="jackknife"),
    "extrapolation": dict(bias_correction="extrapolation"),
}


def clustered(rng, K, n=1_000_000, clusters=20, dim=8, noise=0.6):
    """P(x1, x2, y) built like the clustered features of a multimodal model (see module doc)."""
    a, b = rng.integers(0, K, n), rng.integers(0, K, n)
    y = np.where(rng.random(n) < 0.6, (a + b) % K, a)
    c1, c2, shared = rng.normal(size=(K, dim)), rng.normal(size=(K, dim)), rng.normal(size=(K, dim))
    e1 = c1[a] + noise * rng.normal(size=(n, dim))
    e2 = c2[b] + 0.7 * shared[a] + noise * rng.normal(size=(n, dim))  # x2 also sees a little of a
    fit = slice(0, 50_000)  # k-means on a subsample, applied to all
    x1 = Discretiser(clusters, 5, seed=0).fit(e1[fit]).transform(e1)
    x2 = Discretiser(clusters, 5, seed=1).fit(e2[fit]).transform(e2)
    P = np.zeros((clusters, clusters, K))
    np.add.at(P, (x1, x2, y), 1.0)
    return P / n


def populations(quick, rng):
    pops = {"dirichlet 4x4x3": rng.dirichlet(np.full(48, 0.7)).reshape(4, 4, 3),
            "dirichlet 8x8x4": rng.dirichlet(np.full(256, 0.7)).reshape(8, 8, 4)}
    if not quick:
        pops["clustered 20x20x6"] = clustered(rng, 6)
        pops["clustered 20x20x10"] = clustered(rng, 10)
    return pops


def xor3_population(flip=0.05, alone=0.25):
    """P(x1, x2, x3, y): y = x1 xor x2 xor x3 of uniform bits, a fraction ``flip`` of labels
    flipped, and on a fraction ``alone`` of the samples y = x1 (examples/three_modalities.py)."""
    P = np.zeros((2, 2, 2, 2))
    for a in range(2):
        for b in range(2):
            for c in range(2):
                x = a ^ b ^ c
                P[a, b, c, x] += (1 - alone) * (1 - flip) / 8
                P[a, b, c, 1 - x] += (1 - alone) * flip / 8
                P[a, b, c, a] += alone / 8
    return P


def populations3(rng):
    return {"dirichlet 3x3x3x3": rng.dirichlet(np.full(81, 0.7)).reshape(3, 3, 3, 3),
            "dirichlet 4x4x4x3": rng.dirichlet(np.full(192, 0.7)).reshape(4, 4, 4, 3),
            "noisy xor of three 2x2x2x2": xor3_population()}


def samples_from(rng, P, n):
    idx = rng.choice(P.size, size=n, p=P.ravel())
    return np.unravel_index(idx, P.shape)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None, help="samples drawn per population and size")
    parser.add_argument("--sources", type=int, default=2, choices=[2, 3], help="2 (default) or 3: see the module docstring")
    args = parser.parse_args(argv)
    reps = args.reps or (12 if args.quick else 40)
    sizes = [500, 3000] if args.quick else [200, 1000, 3000, 10000, 100000]
    rng = np.random.default_rng(11)
    three = args.sources == 3
    atoms = TERMS3 if three else ATOMS
    estimators = {name: ESTIMATORS[name] for name in ("plug-in, percentile bootstrap", "extrapolation")} if three else ESTIMATORS
    records = []
    for pop, P in (populations3(rng) if three else populations(args.quick, rng)).items():
        truth = fastpid.decompose(P, tol=1e-10, sources=args.sources)
        true = np.array([float(getattr(truth, a)) for a in atoms])
        for n in sizes:
            progress(f"{pop}: {n} samples x {reps}")
            acc = {name: {"err": [], "covered": [], "width": [], "contains_own": [], "warned": 0} for name in estimators}
            per_cell = []
            for _ in range(reps):
                *xs, y = samples_from(rng, P, n)
                seed = int(rng.integers(1 << 31))
                for name, kwargs in estimators.items():
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", FewSamplesWarning)
                        est = estimate(xs[0], xs[1], y, x3=xs[2] if three else None, seed=seed, **kwargs)
                    a = acc[name]
                    v = np.array([est.values[k] for k in atoms])
                    lo = np.array([est.intervals[k][0] for k in atoms])
                    hi = np.array([est.intervals[k][1] for k in atoms])
                    a["err"].append(v - true)
                    a["covered"].append((lo <= true) & (true <= hi))
                    a["width"].append(hi - lo)
                    a["contains_own"].append((lo <= v) & (v <= hi))
                    a["warned"] += any(issubclass(w.category, FewSamplesWarning) for w in caught)
                per_cell.append(est.samples_per_cell)
            for name, a in acc.items():
                err = np.array(a["err"])
                rec = {"population": pop, "shape": list(P.shape), "samples": n, "estimator": name, "reps": reps,
                       "samples_per_occupied_cell": float(np.mean(per_cell)), "warned_fraction": a["warned"] / reps,
                       "truth": dict(zip(atoms, true.tolist())),
                       "bias": dict(zip(atoms, err.mean(0).tolist())),
                       "rmse": dict(zip(atoms, np.sqrt((err ** 2).mean(0)).tolist())),
                       "coverage": dict(zip(atoms, np.mean(a["covered"], 0).tolist())),
                       "mean_width": dict(zip(atoms, np.mean(a["width"], 0).tolist())),
                       "contains_own_estimate": dict(zip(atoms, np.mean(a["contains_own"], 0).tolist()))}
                records.append(rec)
    payload = {"machine": machine(), "nominal": 0.95, "sources": args.sources,
               "estimators": {k: {kk: vv for kk, vv in v.items()} for k, v in estimators.items()}, "records": records}
    path = write_json(f"estimate{'3' if three else ''}{'-quick' if args.quick else ''}.json", payload)
    rows = [{"population": r["population"], "n": r["samples"], "per cell": r["samples_per_occupied_cell"], "estimator": r["estimator"],
             "bias S": r["bias"]["synergy"], "rmse S": r["rmse"]["synergy"],
             ("coverage CI/SI/U1/U2/U3/S12/S13/S23" if three else "coverage R/U1/U2/S"): "/".join(f"{r['coverage'][a]:.2f}" for a in atoms),
             "warned": r["warned_fraction"]}
            for r in records]
    print(table(rows, list(rows[0]), {"per cell": ".1f", "bias S": "+.4f", "rmse S": ".4f", "warned": ".2f"}))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
