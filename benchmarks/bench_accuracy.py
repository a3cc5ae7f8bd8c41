"""Accuracy: max and median error in bits of every method against a high-precision
reference on each input family, degenerate ones included.

    python -m benchmarks.bench_accuracy [--quick]

Reference: CVXPY + Clarabel, strong formulation, tight tolerances (1e-12), cross-checked
by fastpid at tol 1e-11 whose certified bound says how far it can be from the optimum: the
table shows the reference's own disagreement with that certificate. Writes
results/accuracy[-quick].json.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid
from fastpid.families import FAMILIES
from fastpid.reference import decompose_cvxpy

from .harness import machine, progress, table, write_json
from .peers import ATOMS, METHODS, available, solve_with_limit

SHAPES = [(3, 3, 2), (4, 5, 3), (6, 6, 4)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(11)
    per_family = 1 if args.quick else 3
    shapes = SHAPES[:2] if args.quick else SHAPES
    limit = 3.0 if args.quick else 20.0
    skipped = {m: why for m in METHODS if (why := available(m))}
    errors = {}
    ref_vs_cert = []
    for family, gen in FAMILIES.items():
        for shape in shapes:
            for _ in range(per_family):
                P = gen(rng, *shape)
                progress(f"{family} {shape}")
                ref = decompose_cvxpy(P)
                ref_atoms = {a: float(getattr(ref, a)) for a in ATOMS}
                cert = fastpid.decompose(P, tol=1e-11)
                ref_vs_cert.append(max(abs(ref_atoms[a] - float(getattr(cert, a))) for a in ATOMS))
                for method in METHODS:
                    if method in skipped:
                        continue
                    if method.startswith("fastpid"):  # in-process: fastpid's own methods
                        status, atoms = "ok", METHODS[method](P)
                    else:
                        status, _, atoms = solve_with_limit(method, P, limit)
                    key = (method, family)
                    errors.setdefault(key, [])
                    errors[key].append(max(abs(atoms[a] - ref_atoms[a]) for a in ATOMS) if status == "ok" else float("nan"))
    rows, records = [], []
    for (method, family), errs in errors.items():
        e = np.array(errs)
        ok = e[~np.isnan(e)]
        rec = {"method": method, "family": family, "max_error_bits": float(ok.max()) if ok.size else None,
               "median_error_bits": float(np.median(ok)) if ok.size else None, "failed_or_timeout": int(np.isnan(e).sum()), "n": len(e)}
        records.append(rec)
        rows.append({"family": family, "method": method, "max err": rec["max_error_bits"], "median err": rec["median_error_bits"],
                     "failed": rec["failed_or_timeout"]})
    payload = {"machine": machine(), "reference": "CVXPY+Clarabel strong, tol 1e-12",
               "reference_vs_fastpid_certified_max_bits": float(np.max(ref_vs_cert)), "records": records, "skipped": skipped}
    path = write_json("accuracy-quick.json" if args.quick else "accuracy.json", payload)
    print(table(rows, ["family", "method", "max err", "median err", "failed"], {"max err": ".1e", "median err": ".1e"}))
    print(f"reference vs fastpid (tol 1e-11, certified): max {payload['reference_vs_fastpid_certified_max_bits']:.1e} bits")
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
