"""Robustness: how often each solver (exact, refine) reaches tol on distributions that mix
exact zeros with probabilities spanning 12 orders of magnitude (the harshest inputs we know).

    python -m benchmarks.bench_robustness [--quick]
    python -m benchmarks.bench_robustness --sweep 1000:1400 [--tag NAME]

Each of the trials draws a shape (1..4 per axis) and entries from {0, 1e-12, 1e-9, 1e-6, 0.5, 1}
times a uniform factor. Writes results/robustness[-quick].json with the count that stopped
short of tol (those are returned with converged=False and a valid bound).

--sweep runs the exact solver alone on 1,500 draws for each seed of a range (the size of
tests/test_elimination.py's harsh test; 400 seeds are about 600,000 distributions, a minute),
re-solves every one that stops short with max_iter=400, and writes
results/robustness-sweep[-NAME].json: per stop, its seed, shape, bound, iterations, smallest
positive probability and whether 400 iterations reach tol.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid
from fastpid.families import harsh

from .harness import machine, progress, write_json


def sweep(seeds, tag, tol=1e-8, draws=1500):
    """The exact solver on `draws` harsh inputs for each seed (see the module's docstring)."""
    total, short = 0, []
    for i, seed in enumerate(seeds):
        if i % 50 == 0:
            progress(f"seed {seed} ({i}/{len(seeds)}): {len(short)} short of {total} so far")
        rng = np.random.default_rng(seed)
        for _ in range(draws):
            P = harsh(rng)
            if P is None:
                continue
            total += 1
            r = fastpid.decompose(P, method="exact", tol=tol)
            if bool(r.converged):
                continue
            longer = fastpid.decompose(P, method="exact", tol=tol, max_iter=400)
            short.append({"seed": seed, "shape": P.shape, "bound_bits": float(r.bound), "iterations": int(r.iterations),
                          "smallest_probability": float(P[P > 0].min()), "converged_in_400": bool(longer.converged),
                          "iterations_400": int(longer.iterations), "bound_bits_400": float(longer.bound)})
    payload = {"machine": machine(), "tol_bits": tol, "seeds": [seeds[0], seeds[-1] + 1], "draws_per_seed": draws,
               "distributions": total, "stopped_short": len(short),
               "converged_in_400": sum(s["converged_in_400"] for s in short),
               "seeds_with_more_than_one": sum(1 for seed in seeds if sum(s["seed"] == seed for s in short) > 1),
               "short": short}
    path = write_json(f"robustness-sweep{'-' + tag if tag else ''}.json", payload)
    print(f"exact: {len(short)} of {total} stopped short of {tol:g} bits within 100 iterations; "
          f"{payload['converged_in_400']} of them reach it within 400; "
          f"{payload['seeds_with_more_than_one']} seeds have more than one")
    print(f"wrote {path}")
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sweep", metavar="FIRST:END", help="seeds of the exact solver's sweep (see above)")
    parser.add_argument("--tag", default="", help="suffix of the sweep's results file")
    args = parser.parse_args(argv)
    if args.sweep:
        first, end = (int(v) for v in args.sweep.split(":"))
        if not end > first:
            parser.error("--sweep: END must exceed FIRST")
        return sweep(list(range(first, end)), args.tag)
    rng = np.random.default_rng(0)
    trials = 300 if args.quick else 3000
    tol = 1e-8
    methods = ("exact", "refine")
    solved, short = {m: 0 for m in methods}, {m: [] for m in methods}
    total = 0
    for _ in range(trials):
        P = harsh(rng)
        if P is None:
            continue
        total += 1
        for method in methods:
            r = fastpid.decompose(P, method=method, tol=tol)
            if bool(r.converged):
                solved[method] += 1
            else:
                short[method].append({"shape": P.shape, "bound_bits": float(r.bound), "iterations": int(r.iterations)})
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
