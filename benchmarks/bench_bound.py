"""The certified bound vs the true error: for tolerances 1e-2 .. 1e-10, the bound fastpid
reports (methods exact and refine) and the actual error of its atoms against an exact solve
at tol 1e-12.

    python -m benchmarks.bench_bound [--quick]

Writes results/bound[-quick].json. Every point must lie under the diagonal (error <= bound).
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid
from fastpid.families import FAMILIES

from .harness import machine, progress, table, write_json

ATOMS = ("redundancy", "unique1", "unique2", "synergy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(5)
    per = 3 if args.quick else 10
    tols = [1e-2, 1e-4, 1e-6, 1e-8, 1e-10]
    records = []
    for family, gen in FAMILIES.items():
        progress(family)
        for _ in range(per):
            P = gen(rng, *rng.integers(2, 9, 3))
            tight = fastpid.decompose(P, tol=1e-12, max_iter=300)
            for method in ("exact", "refine"):
                for tol in tols:
                    r = fastpid.decompose(P, method=method, tol=tol)
                    err = max(abs(float(getattr(r, a)) - float(getattr(tight, a))) for a in ATOMS)
                    records.append({"family": family, "method": method, "tol": tol, "bound": float(r.bound), "error": err,
                                    "reference_bound": float(tight.bound), "holds": err <= float(r.bound) + float(tight.bound)})
    rows = []
    for method in ("exact", "refine"):
        for tol in tols:
            sel = [r for r in records if r["tol"] == tol and r["method"] == method]
            rows.append({"method": method, "tol": tol, "max bound": max(r["bound"] for r in sel), "max error": max(r["error"] for r in sel),
                         "median error/bound": float(np.median([r["error"] / max(r["bound"], 1e-300) for r in sel])),
                         "bound holds": f"{sum(r['holds'] for r in sel)}/{len(sel)}"})
    payload = {"machine": machine(), "records": records}
    path = write_json("bound-quick.json" if args.quick else "bound.json", payload)
    print(table(rows, ["method", "tol", "max bound", "max error", "median error/bound", "bound holds"],
                {"tol": ".0e", "max bound": ".1e", "max error": ".1e", "median error/bound": ".2g"}))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
