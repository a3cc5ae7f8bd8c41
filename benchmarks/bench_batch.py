"""Batch throughput on the CPU: distributions per second vs batch size, 20x20x6 histograms.

    python -m benchmarks.bench_batch [--quick]

Writes results/batch[-quick].json.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastpid
from fastpid.families import histogram

from .harness import machine, progress, table, time_call, write_json


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(3)
    sizes = [1, 10, 100, 1000] if args.quick else [1, 10, 100, 1000, 10000]
    pool = np.stack([histogram(rng, 20, 20, 6, samples=1000) for _ in range(max(sizes))])
    check = fastpid.decompose(pool[:50])
    assert np.all(check.converged) and float(np.max(check.bound)) <= 1e-7
    rows, records = [], []
    for method in ("exact", "refine", "proxy"):
        for n in sizes:
            progress(f"{method} batch {n}")
            batch = pool[:n]
            slow = n >= 1000 or (method == "refine" and n >= 100)
            t = time_call(lambda: fastpid.decompose(batch, method=method), repeats=1 if method == "refine" and n >= 10000 else (3 if slow else 7), warmup=1)
            rec = {"method": method, "batch": n, "seconds": t["median_s"], "per_second": n / t["median_s"]}
            records.append(rec)
            rows.append({"method": method, "batch": n, "time (s)": t["median_s"], "dist/s": n / t["median_s"]})
    payload = {"machine": machine(), "threads": fastpid.build_info()["max_threads"], "records": records}
    path = write_json("batch-quick.json" if args.quick else "batch.json", payload)
    print(table(rows, ["method", "batch", "time (s)", "dist/s"], {"time (s)": ".4g", "dist/s": ",.0f"}))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
