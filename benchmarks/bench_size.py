"""Speed vs size: time per distribution of every method, dense n x n x n (n = 2 .. 64),
20 x 20 x |Y| histograms of 1,000 samples (|Y| in 2, 6, 10, 28, 101), large alphabets
(dense 128 x 128 x 16 and 256 x 256 x 8, fastpid's solvers only, at tol 1e-6 bits), and a
sweep of the label alphabet ("labels": dense 4 x 4 x |Y| and 20 x 20 x |Y| histograms of
50,000 samples, |Y| from 2 to 1,000; peers there: the strongest CVXPY formulation and its
DPP-compiled form, the others being slower on every smaller case).

    python -m benchmarks.bench_size [--quick] [--families labels,...]

With --families, only those families run and their records replace the same families' in
the existing results file (the others are kept).

Peers run in a child process with a per-distribution time limit (reported as "> limit", not
waited on); answers are checked against fastpid's certified exact result at tol 1e-10 before
times are recorded. On the large alphabets no solver reaches a tighter reference in useful time
(exact does not fit, refine stalls near 1e-8 bits on 128x128x16 and needs minutes for 1e-7 on
256x256x8), so fastpid's solvers run there at tol 1e-6 in a child with a 4x longer limit and
their certified bound is recorded instead of an error. Writes results/size[-quick].json.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

import fastpid
from fastpid.families import dense, histogram

from .harness import load_json, machine, progress, table, time_call, write_json
from .peers import ATOMS, METHODS, available, solve_with_limit

LARGE_TOL = 1e-6  # bits, fastpid's solvers on the large alphabets


FAMILIES = ("dense", "hist", "large", "labels")
LABEL_PEERS = ("cvxpy clarabel strong", "cvxpy clarabel dpp")  # the peers of the labels sweep


def inputs(quick, rng):
    dense_sizes = [2, 4, 8] if quick else [2, 4, 8, 16, 32, 64]
    labels = [2, 6] if quick else [2, 6, 10, 28, 101]
    cases = [(f"dense {n}x{n}x{n}", "dense", n, dense(rng, n, n, n)) for n in dense_sizes]
    cases += [(f"hist 20x20x{k}", "hist", k, histogram(rng, 20, 20, k, samples=1000)) for k in labels]
    if not quick:
        cases += [(f"dense {a}x{b}x{c}", "large", a * b * c, dense(rng, a, b, c)) for a, b, c in ((128, 128, 16), (256, 256, 8))]
    sweep = [2, 100] if quick else [2, 10, 30, 100, 300, 1000]
    cases += [(f"dense 4x4x{k}", "labels", k, dense(rng, 4, 4, k)) for k in sweep]
    cases += [(f"hist 20x20x{k} (50k samples)", "labels", k, histogram(rng, 20, 20, k, samples=50000)) for k in sweep]
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--limit", type=float, default=None, help="seconds per distribution and method")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated subset of {FAMILIES}")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    if not set(families) <= set(FAMILIES):
        parser.error(f"--families: choose from {FAMILIES}")
    limit = args.limit or (3.0 if args.quick else 30.0)
    rng = np.random.default_rng(7)
    skipped = {m: why for m in METHODS if (why := available(m))}
    for m, why in skipped.items():
        print(f"skipping {m}: {why}")
    rows, records = [], []
    for label, family, size, P in inputs(args.quick, rng):
        if family not in families:
            continue
        large = family == "large"
        if not large:
            ref = fastpid.decompose(P, method="exact", tol=1e-10)
            assert bool(ref.converged), f"{label}: the reference stopped at bound {float(ref.bound):.2g} bits"
            ref_atoms = {a: float(getattr(ref, a)) for a in ATOMS}
        for method in METHODS:
            ours = method in ("fastpid exact", "fastpid refine", "fastpid proxy")
            if method in skipped or (large and not ours):  # peers: too slow for the large alphabets
                continue
            if family == "labels" and not ours and method not in LABEL_PEERS:
                continue
            progress(f"{label}: {method}")
            if large:
                status, seconds, atoms = solve_with_limit(method, P, 4 * limit, tol=LARGE_TOL)
            elif ours:  # timed in-process
                kind = method.split()[1]
                atoms = METHODS[method](P)
                # Small cases: the median of as many calls as fit in half a second (up to 200):
                # five calls of a fraction of a millisecond gave medians up to 1.6x off the
                # same-run A/B on the same inputs (results/exact_assembly_cpu.json).
                small = P.size < 50000
                t = time_call(lambda: fastpid.decompose(P, method=kind), repeats=200 if small else 1, warmup=1 if small else 0, budget_s=0.5 if small else None)
                status, seconds = "ok", t["median_s"]
            else:
                status, seconds, atoms = solve_with_limit(method, P, limit)
            err = max(abs(atoms[a] - ref_atoms[a]) for a in ATOMS) if status == "ok" and not large else None
            bound = atoms.get("bound") if status == "ok" else None
            rec = {"case": label, "family": family, "size": size, "method": method, "status": status,
                   "tol_bits": LARGE_TOL if large else None, "limit_s": 4 * limit if large else limit,
                   "seconds": seconds if status == "ok" else None, "max_error_bits": err, "bound_bits": bound,
                   "note": None if status == "ok" else str(atoms)}
            records.append(rec)
            rows.append({"case": label, "method": method,
                         "time": f"{seconds * 1e3:.3g} ms" if status == "ok" else (f"> {rec['limit_s']:g} s" if status == "timeout" else "error"),
                         "max err (bits)": err, "bound (bits)": bound})
    name = "size-quick.json" if args.quick else "size.json"
    if set(families) != set(FAMILIES):  # keep the other families' records of the last full run
        kept = [r for r in load_json(name).get("records", []) if r["family"] not in families]
        records = sorted(kept + records, key=lambda r: FAMILIES.index(r["family"]))  # stable: case order kept
    payload = {"machine": machine(), "limit_s": limit, "reference": "fastpid exact at tol 1e-10 (certified); none on the large alphabets",
               "records": records, "skipped": skipped}
    path = write_json(name, payload)
    print(table(rows, ["case", "method", "time", "max err (bits)", "bound (bits)"], {"max err (bits)": ".1e", "bound (bits)": ".1e"}))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
