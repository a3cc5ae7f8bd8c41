"""Robustness: how often each solver (exact, refine) reaches tol on distributions that mix
exact zeros with probabilities spanning 12 orders of magnitude (the harshest inputs we know).

    python -m benchmarks.bench_robustness [--quick]

Each of the trials draws a shape (1..4 per axis) and entries from {0, 1e-12, 1e-9, 1e-6, 0.5, 1}
times a uniform factor. Writes results/robustness[-quick].json with the count that stopped
short of tol (those are returned with converged=False and a valid bound).
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid

from .harness import machine, write_json


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    trials = 300 if args.quick else 3000
    tol = 1e-8
    methods = ("exact", "refine")
    solved, short = {m: 0 for m in methods}, {m: [] for m in methods}
    total = 0
    for _ in range(trials):
        shape = tuple(int(n) for n in rng.integers(1, 5, 3))
        w = rng.choice([0.0, 1e-9, 1e-12, 1e-6, 1.0, 0.5], size=shape) * rng.random(shape)
        if w.sum() <= 0:
            continue
        total += 1
        for method in methods:
            r = fastpid.decompose(w / w.sum(), method=method, tol=tol)
            if bool(r.converged):
                solved[method] += 1
            else:
                short[method].append({"shape": shape, "bound_bits": float(r.bound), "iterations": int(r.iterations)})
    payload = {"machine": machine(), "tol_bits": tol, "distributions": total,
               "converged": solved["exact"], "stopped_short": short["exact"],  # the exact solver (earlier format)
               "by_method": {m: {"converged": solved[m], "stopped_short": short[m]} for m in methods}}
    path = write_json("robustness-quick.json" if args.quick else "robustness.json", payload)
    for m in methods:
        print(f"{m}: {solved[m]}/{total} reached tol {tol:g} bits; {len(short[m])} stopped short (largest bound "
              f"{max([s['bound_bits'] for s in short[m]], default=0):.1e} bits)")
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
