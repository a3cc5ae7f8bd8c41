"""Regenerate every benchmark result and plot:

    python -m benchmarks.run --quick   # minute-scale subset, results/*-quick.json
    python -m benchmarks.run           # the full run, results/*.json (tens of minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import sys
import time

from . import bench_accuracy, bench_batch, bench_bound, bench_cpu, bench_grad, bench_refine, bench_robustness, bench_size, plots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    flags = ["--quick"] if args.quick else []
    for name, module in (("accuracy", bench_accuracy), ("bound", bench_bound), ("batch", bench_batch),
                         ("size", bench_size), ("cpu", bench_cpu), ("grad", bench_grad),
                         ("robustness", bench_robustness), ("refine", bench_refine)):
        start = time.perf_counter()
        print(f"\n=== {name} ===", flush=True)
        module.main(flags)
        print(f"({name}: {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    plots.main(flags)


if __name__ == "__main__":
    main()
