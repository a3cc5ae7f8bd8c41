"""Robustness: how often each solver (exact, refine) reaches tol on distributions that mix
exact zeros with probabilities spanning 12 orders of magnitude (the harshest inputs we know),
and how often the default call does on the structured family (what users try first).

    python -m benchmarks.bench_robustness [--quick]
    python -m benchmarks.bench_robustness --sweep 1000:1400 [--tag NAME]
    python -m benchmarks.bench_robustness --structured 100000 [--workers 2]

Each of the trials draws a shape (1..4 per axis) and entries from {0, 1e-12, 1e-9, 1e-6, 0.5, 1}
times a uniform factor, solved by exact and refine alone (each at its default cap, without the
hand-off to the other) and by the default call. Writes results/robustness[-quick].json with the
count that stopped short of tol (those are returned with converged=False and a valid bound).

--sweep runs the exact solver alone on 1,500 draws for each seed of a range (the size of
tests/test_elimination.py's harsh test; 400 seeds are about 600,000 distributions, a minute),
re-solves every one that stops short with max_iter=400 and with the default call, and writes
results/robustness-sweep[-NAME].json: per stop, its seed, shape, bound, iterations, smallest
positive probability and whether 400 iterations reach tol.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid
from fastpid.families import STRUCTURED_KINDS, harsh, structured_case, structured_shape

from .harness import machine, progress, table, write_json


def sweep(seeds, tag, tol=1e-8, draws=1500, cap=None):
    """The exact solver on `draws` harsh inputs for each seed (see the module's docstring), alone
    at `cap` iterations (default: the default call's cap, fastpid.core.DEFAULT_MAX_ITER)."""
    from fastpid.core import DEFAULT_MAX_ITER

    cap = cap or DEFAULT_MAX_ITER["exact"]
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
            r = fastpid.decompose(P, method="exact", tol=tol, max_iter=cap)  # exact alone (no hand-off)
            if bool(r.converged):
                continue
            longer = fastpid.decompose(P, method="exact", tol=tol, max_iter=400)
            default = fastpid.decompose(P, tol=tol)
            short.append({"seed": seed, "shape": P.shape, "bound_bits": float(r.bound), "iterations": int(r.iterations),
                          "smallest_probability": float(P[P > 0].min()), "converged_in_400": bool(longer.converged),
                          "iterations_400": int(longer.iterations), "bound_bits_400": float(longer.bound),
                          "default_call_converged": bool(default.converged), "default_call_bound_bits": float(default.bound),
                          "default_call_method": default.method})
    payload = {"machine": machine(), "tol_bits": tol, "max_iter": cap, "seeds": [seeds[0], seeds[-1] + 1], "draws_per_seed": draws,
               "distributions": total, "stopped_short": len(short),
               "converged_in_400": sum(s["converged_in_400"] for s in short),
               "seeds_with_more_than_one": sum(1 for seed in seeds if sum(s["seed"] == seed for s in short) > 1),
               "default_call_short": sum(not s["default_call_converged"] for s in short), "short": short}
    path = write_json(f"robustness-sweep{'-' + tag if tag else ''}.json", payload)
    print(f"exact: {len(short)} of {total} stopped short of {tol:g} bits within {cap} iterations; "
          f"{payload['converged_in_400']} of them reach it within 400; "
          f"{payload['seeds_with_more_than_one']} seeds have more than one; the default call (with the hand-off to refine) "
          f"leaves {payload['default_call_short']} short")
    print(f"wrote {path}")
    return payload


def _structured_chunk(args):
    """Draws `count` members of the structured family from `seed` (kinds in turn, shapes from
    structured_shape up to 40 per source) and solves each with the default call at the default
    tol and at 1e-10 nats, on one thread; returns the counts and the stops."""
    seed, count = args
    rng = np.random.default_rng(seed)
    by_kind = {k: {"draws": 0, "short": 0, "short_1e-10_nats": 0, "seconds": 0.0} for k in STRUCTURED_KINDS}
    short, tight_short, methods = [], [], {}
    import time

    for i in range(count):
        kind = STRUCTURED_KINDS[i % len(STRUCTURED_KINDS)]
        shape = structured_shape(rng, kind)
        P, about = structured_case(rng, *shape, kind=kind)
        t0 = time.perf_counter()
        r = fastpid.decompose(P, threads=1)
        by_kind[kind]["seconds"] += time.perf_counter() - t0
        by_kind[kind]["draws"] += 1
        methods[r.method] = methods.get(r.method, 0) + 1
        if not bool(r.converged):
            by_kind[kind]["short"] += 1
            short.append({"seed": seed, "index": i, "shape": shape, "about": about, "bound_bits": float(r.bound)})
        tight = fastpid.decompose(P, tol=1e-10, base=np.e, threads=1)
        if not bool(tight.converged):
            by_kind[kind]["short_1e-10_nats"] += 1
            tight_short.append({"seed": seed, "index": i, "shape": shape, "about": about, "bound_nats": float(tight.bound)})
    return by_kind, short, tight_short, methods


def structured(total, workers, seed=0, chunk=500):
    """The default call on `total` draws of the structured family (see _structured_chunk), in
    `workers` processes; writes results/robustness-structured.json."""
    import multiprocessing

    jobs = [(seed * 100000 + k, min(chunk, total - k * chunk)) for k in range((total + chunk - 1) // chunk)]
    by_kind = {k: {"draws": 0, "short": 0, "short_1e-10_nats": 0, "seconds": 0.0} for k in STRUCTURED_KINDS}
    short, tight_short, methods = [], [], {}
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, (kinds, s, t, m) in enumerate(pool.imap_unordered(_structured_chunk, jobs), 1):
            for k, v in kinds.items():
                for key in v:
                    by_kind[k][key] += v[key]
            short += s
            tight_short += t
            for name, n in m.items():
                methods[name] = methods.get(name, 0) + n
            if done % 10 == 0:
                progress(f"{done}/{len(jobs)} chunks: {len(short)} short of the default tol, {len(tight_short)} of 1e-10 nats")
    draws = sum(v["draws"] for v in by_kind.values())
    payload = {"machine": machine(), "draws": draws, "tol_bits": 1e-7, "largest_side": 40, "methods_chosen": methods,
               "stopped_short": len(short), "worst_bound_bits": max([s["bound_bits"] for s in short], default=0.0),
               "stopped_short_1e-10_nats": len(tight_short),
               "worst_bound_1e-10_nats": max([s["bound_nats"] for s in tight_short], default=0.0),
               "by_kind": by_kind, "short": short, "short_1e-10_nats": tight_short}
    path = write_json("robustness-structured.json", payload)
    rows = [{"kind": k, "draws": v["draws"], "short": v["short"], "short at 1e-10 nats": v["short_1e-10_nats"],
             "ms per draw": 1e3 * v["seconds"] / max(v["draws"], 1)} for k, v in by_kind.items()]
    print(table(rows, ["kind", "draws", "short", "short at 1e-10 nats", "ms per draw"], {"ms per draw": ".3g"}))
    print(f"default call: {len(short)} of {draws} stopped short of 1e-7 bits (worst bound {payload['worst_bound_bits']:.2g}); "
          f"at 1e-10 nats: {len(tight_short)} (worst {payload['worst_bound_1e-10_nats']:.2g} nats); methods {methods}")
    print(f"wrote {path}")
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sweep", metavar="FIRST:END", help="seeds of the exact solver's sweep (see above)")
    parser.add_argument("--tag", default="", help="suffix of the sweep's results file")
    parser.add_argument("--structured", type=int, metavar="DRAWS", help="the default call on this many structured draws")
    parser.add_argument("--workers", type=int, default=2, help="processes for --structured")
    args = parser.parse_args(argv)
    if args.structured:
        return structured(args.structured, args.workers)
    if args.sweep:
        first, end = (int(v) for v in args.sweep.split(":"))
        if not end > first:
            parser.error("--sweep: END must exceed FIRST")
        return sweep(list(range(first, end)), args.tag)
    rng = np.random.default_rng(0)
    trials = 300 if args.quick else 3000
    tol = 1e-8
    # each method alone (its default cap given explicitly: no hand-off), and the default call
    methods = ("exact", "refine", "default")
    from fastpid.core import DEFAULT_MAX_ITER

    caps = {"exact": DEFAULT_MAX_ITER["exact"], "refine": DEFAULT_MAX_ITER["refine"], "default": None}
    solved, short = {m: 0 for m in methods}, {m: [] for m in methods}
    total = 0
    for _ in range(trials):
        P = harsh(rng)
        if P is None:
            continue
        total += 1
        for method in methods:
            r = fastpid.decompose(P, method="auto" if method == "default" else method, tol=tol, max_iter=caps[method])
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
