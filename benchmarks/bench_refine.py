"""method="refine": large alphabets, the FastPID paper's solver at equal wall time, and the
penalty schedule of its augmented Lagrangian.

    python -m benchmarks.bench_refine [--quick]

1. large: dense 64x64x64 (tol 1e-6 and 1e-7 bits), 128x128x16 and 256x256x8 (tol 1e-6 bits),
   one distribution each on one thread; wall time, certified bound, iterations, and the peak
   memory of the whole decompose() call (resident-set growth in a fresh child process) against
   the size of P.
2. paper: error vs wall time of refine (capping max_iter) and of the FastPID paper's solver
   (benchmarks/peers.py; capping its Adam steps, and its own default stopping rule) on 20x20x6
   and 20x20x28 histograms and dense 32x32x32; errors are the largest atom error against a
   certified tol-1e-11 solve. The ratio column compares the paper's default run with refine at
   no more wall time.
3. schedule: penalty start and growth of the augmented Lagrangian on a fixed mixed set
   (converged fraction, total time); the library uses (100, 3).

Writes results/refine[-quick].json.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import fastpid
from fastpid import _C
from fastpid.families import FAMILIES, dense, histogram

from .harness import machine, progress, table, write_json
from .peers import ATOMS, available

LN2 = math.log(2)


def _max_error(r, ref):
    return max(abs(float(getattr(r, a)) - float(getattr(ref, a))) for a in ATOMS)


def _rss_peak_bytes():
    """VmHWM, the peak resident set of this process (Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _peak_child(shape, seed, tol, queue):
    import fastpid as fp
    from fastpid.families import dense as dense_

    P = dense_(np.random.default_rng(seed), *shape)
    fp.decompose(dense_(np.random.default_rng(0), 4, 4, 4), method="refine")  # code paths loaded
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak to the current resident set
    before = _rss_peak_bytes()
    start = time.perf_counter()
    r = fp.decompose(P, method="refine", tol=tol, threads=1)
    seconds = time.perf_counter() - start
    after = _rss_peak_bytes()
    queue.put({"seconds": seconds, "bound_bits": float(r.bound), "converged": bool(r.converged),
               "iterations": int(r.iterations), "peak_extra_bytes": after - before, "P_bytes": P.nbytes})


def large(quick):
    import multiprocessing as mp

    cases = [((32, 32, 32), 1e-6), ((64, 64, 16), 1e-6)] if quick else \
        [((64, 64, 64), 1e-6), ((64, 64, 64), 1e-7), ((128, 128, 16), 1e-6), ((256, 256, 8), 1e-6)]
    ctx = mp.get_context("spawn")
    records = []
    for shape, tol in cases:
        progress(f"large: dense {shape} tol {tol:g}")
        queue = ctx.Queue()
        proc = ctx.Process(target=_peak_child, args=(shape, 7, tol, queue))
        proc.start()
        rec = queue.get()
        proc.join()
        rec.update(case="dense " + "x".join(map(str, shape)), tol_bits=tol, workspace_bytes=8 * _C.workspace_doubles("refine", *shape),
                   peak_over_P=rec["peak_extra_bytes"] / rec["P_bytes"])
        records.append(rec)
    return records


def paper(quick):
    from .peers import fastpid_paper

    cases = [("hist 20x20x6", histogram(np.random.default_rng(1), 20, 20, 6, samples=1000)),
             ("hist 20x20x28", histogram(np.random.default_rng(2), 20, 20, 28, samples=1000)),
             ("dense 32x32x32", dense(np.random.default_rng(3), 32, 32, 32))]
    if quick:
        cases = cases[:1]
    refine_caps = [0, 50, 200, 205, 210, 215, 220, 230, 240, 260, 1000]
    paper_steps = [10, 30, 100, 300] if quick else [10, 30, 100, 300, 1000, 2000]
    out = []
    for label, P in cases:
        progress(f"paper: {label}")
        ref = fastpid.decompose(P, tol=1e-11)
        inf = fastpid.info.pid_informations(P, base=math.e)

        def paper_error(value):
            atoms = fastpid.core.atoms_from(value, inf)
            return max(abs(atoms[a] / LN2 - float(getattr(ref, a))) for a in ATOMS)

        curve_refine = []
        for cap in refine_caps:
            fastpid.decompose(P, method="refine", tol=1e-9, max_iter=cap)  # warm
            start = time.perf_counter()
            r = fastpid.decompose(P, method="refine", tol=1e-9, max_iter=cap, threads=1)
            curve_refine.append({"max_iter": cap, "seconds": time.perf_counter() - start, "error_bits": _max_error(r, ref),
                                 "bound_bits": float(r.bound)})
        curve_paper = []
        for steps in paper_steps:
            start = time.perf_counter()
            value, taken = fastpid_paper(P, tol=0.0, max_steps=steps)
            curve_paper.append({"steps": taken, "seconds": time.perf_counter() - start, "error_bits": paper_error(value)})
        start = time.perf_counter()
        value, taken = fastpid_paper(P)  # its own stopping rule: objective change < 1e-5
        default = {"steps": taken, "seconds": time.perf_counter() - start, "error_bits": paper_error(value)}
        within = [c for c in curve_refine if c["seconds"] <= default["seconds"]]
        best = min(within, key=lambda c: c["error_bits"]) if within else None
        out.append({"case": label, "refine": curve_refine, "paper": curve_paper, "paper_default": default,
                    "refine_at_paper_time": best,
                    "error_ratio": default["error_bits"] / max(best["error_bits"], 1e-16) if best else None})
    return out


def schedule(quick):
    rng = np.random.default_rng(2)
    cases = []
    for shape in [(20, 20, 6), (20, 20, 28), (10, 10, 10), (40, 33, 3)]:
        for fam in ("dense", "histogram", "sparse", "tiny", "near_deterministic"):
            cases.append(np.stack([FAMILIES[fam](rng, *shape) for _ in range(2 if quick else 6)]))
    if not quick:
        for shape in [(64, 64, 64), (128, 128, 8)]:
            for fam in ("dense", "sparse", "near_deterministic"):
                cases.append(FAMILIES[fam](rng, *shape)[None])
    grid = [(100.0, 1.0), (100.0, 3.0), (100.0, 10.0), (30.0, 3.0), (300.0, 3.0)]
    out = []
    for penalty, growth in grid:
        progress(f"schedule: penalty {penalty:g} growth {growth:g}")
        conv = total = 0
        seconds = 0.0
        for P in cases:
            start = time.perf_counter()
            r = _C.refine_cpu(P, 1e-7 * LN2, 1500, threads=1, penalty=penalty, penalty_growth=growth)
            seconds += time.perf_counter() - start
            conv += int(r["converged"].sum())
            total += len(P)
        out.append({"penalty": penalty, "growth": growth, "converged": conv, "distributions": total, "seconds": seconds})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default="large,paper,schedule")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    payload = {"machine": machine()}
    if "large" in sections:
        payload["large"] = large(args.quick)
        print(table(payload["large"], ["case", "tol_bits", "seconds", "bound_bits", "converged", "iterations", "peak_over_P"],
                    {"tol_bits": ".0e", "seconds": ".3g", "bound_bits": ".1e", "peak_over_P": ".1f"}))
    if "paper" in sections:
        if available("fastpid paper"):
            print(f"skipping paper: {available('fastpid paper')}")
        else:
            payload["paper"] = paper(args.quick)
            rows = [{"case": c["case"], "paper time": c["paper_default"]["seconds"], "paper error": c["paper_default"]["error_bits"],
                     "refine time": (c["refine_at_paper_time"] or {}).get("seconds"),
                     "refine error": (c["refine_at_paper_time"] or {}).get("error_bits"), "ratio": c["error_ratio"]}
                    for c in payload["paper"]]
            print(table(rows, ["case", "paper time", "paper error", "refine time", "refine error", "ratio"],
                        {"paper time": ".3g", "paper error": ".1e", "refine time": ".3g", "refine error": ".1e", "ratio": ".2g"}))
    if "schedule" in sections:
        payload["schedule"] = schedule(args.quick)
        print(table(payload["schedule"], ["penalty", "growth", "converged", "distributions", "seconds"], {"seconds": ".3g"}))
    path = write_json("refine-quick.json" if args.quick else "refine.json", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
