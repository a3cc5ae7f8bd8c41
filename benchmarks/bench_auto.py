"""method="auto" against the faster of exact and refine: the three timed on the same inputs in
one run (every case of bench_size, more dense cubes and structured inputs), with the cost
model's view of each (fastpid.core.structure_of: exact's work over refine's scaling phase, and
the density) and the method auto chose.

    python -m benchmarks.bench_auto [--quick]

Writes results/auto_cpu[-quick].json; the thresholds of fastpid.core.choose_method are set by
hand from it. Exits non-zero when the default call is more than 1.3x slower than the faster
method on a case of bench_size (the others are reported: auto does not see everything, e.g.
that refine's Newton phase solves a large sum gate in a few steps).
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid
from fastpid import core
from fastpid.families import dense, deterministic, dependent_sources, histogram

from . import bench_size
from .harness import machine, progress, table, time_call, write_json

LIMIT = 1.3  # the default call's slowdown allowed against the faster method


def cases(quick, rng):
    # (label, P, tol): the large alphabets at bench_size's tol, as there (refine needs minutes for
    # 1e-7 bits on 256 x 256 x 8, and then hands its distribution to exact)
    out = [(label, P, bench_size.LARGE_TOL if family == "large" else None, True) for label, family, _, P in bench_size.inputs(quick, rng)]
    extra = [(f"dense {n}^3", dense(rng, n, n, n)) for n in (() if quick else (12, 20, 24, 28, 40, 48, 50, 56))]
    extra += [("dense 2x2x500", dense(rng, 2, 2, 500))]
    if not quick:
        extra += [("sum gate 40x40x79", deterministic(rng, 40, 40, 79, "sum", True)),
                  ("min 40x40x40", deterministic(rng, 40, 40, 40, "min", False)),
                  ("duplicate 40x40x40", dependent_sources(rng, 40, 40, 40, False)),
                  ("near copy 32x32x32 (flip 1e-3)", dependent_sources(rng, 32, 32, 32, False, 1e-3)),
                  ("hist 64x64x64 (20k samples)", histogram(rng, 64, 64, 64, samples=20000))]
    return out + [(label, P, None, False) for label, P in extra]


def seconds(P, tol):
    """Time per call of exact, refine and auto: small cases by the fastest of up to 100 calls in
    a quarter of a second, in five alternating rounds (the minimum over everything: the three
    run the same code where auto chooses, and this machine's speed drifts by up to 1.5x on
    sub-millisecond calls, which medians of a round did not hide: dense 2x2x2 came out 1.5x
    apart on identical paths), larger ones by one call each."""
    small = P.size < 50000
    best = {}
    for _ in range(5 if small else 1):
        for method in ("exact", "refine", "auto"):
            t = time_call(lambda: fastpid.decompose(P, method=method, tol=tol or 1e-7), repeats=100 if small else 1,
                          warmup=1 if small else 0, budget_s=0.25 if small else None)
            best[method] = min(best.get(method, np.inf), t["min_s"] if small else t["median_s"])
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(17)
    records = []
    for label, P, tol, in_size in cases(args.quick, rng):
        progress(label)
        times = seconds(P, tol)
        cost, density = (float(v[0]) for v in core.structure_of(P[None]))
        chosen = fastpid.decompose(P).method
        faster = min(times["exact"], times["refine"])
        records.append({"case": label, "bench_size_case": in_size, "shape": P.shape, "tol_bits": tol or 1e-7, "exact_s": times["exact"], "refine_s": times["refine"],
                        "auto_s": times["auto"], "auto_method": chosen, "slowdown": times["auto"] / faster,
                        "exact_work_over_scaling": cost / core.refine_cost(*P.shape), "density": density})
    worst = max(r["slowdown"] for r in records if r["bench_size_case"])
    payload = {"machine": machine(), "limit": LIMIT, "worst_slowdown_bench_size": worst,
               "worst_slowdown_all": max(r["slowdown"] for r in records), "records": records}
    path = write_json("auto_cpu-quick.json" if args.quick else "auto_cpu.json", payload)
    print(table([{"case": r["case"], "exact": f"{r['exact_s'] * 1e3:.3g} ms", "refine": f"{r['refine_s'] * 1e3:.3g} ms",
                  "auto": f"{r['auto_s'] * 1e3:.3g} ms", "chose": r["auto_method"], "slowdown": r["slowdown"],
                  "work ratio": r["exact_work_over_scaling"], "density": r["density"]} for r in records],
                ["case", "exact", "refine", "auto", "chose", "slowdown", "work ratio", "density"],
                {"slowdown": ".2f", "work ratio": ".3g", "density": ".2f"}))
    print(f"worst slowdown of the default call against the faster method on bench_size's cases: {worst:.2f}x (limit {LIMIT}x); "
          f"on all: {payload['worst_slowdown_all']:.2f}x")
    print(f"wrote {path}")
    if worst > LIMIT:
        raise SystemExit(1)
    return payload


if __name__ == "__main__":
    main()
