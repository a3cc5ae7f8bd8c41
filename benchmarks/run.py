"""Regenerate every benchmark result and plot:

    python -m benchmarks.run --quick   # minute-scale subset, results/*-quick.json
    python -m benchmarks.run           # the full run, results/*.json (about an hour on 2 cores)
    python -m benchmarks.run --only size,refine   # some of them (the plots are always redrawn)
"""
from __future__ import annotations

import argparse
import sys
import time

from . import bench_accuracy, bench_batch, bench_bound, bench_cpu, bench_estimate, bench_grad, bench_refine, bench_robustness, bench_size, plots

BENCHMARKS = {"accuracy": bench_accuracy, "bound": bench_bound, "batch": bench_batch, "size": bench_size, "cpu": bench_cpu,
              "grad": bench_grad, "robustness": bench_robustness, "refine": bench_refine, "estimate": bench_estimate}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    flags = ["--quick"] if args.quick else []
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in names:
        module = BENCHMARKS[name]
        start = time.perf_counter()
        print(f"\n=== {name} ===", flush=True)
        module.main(flags)
        print(f"({name}: {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    plots.main(flags)


if __name__ == "__main__":
    main()
