"""Throughput on the GPU: proxy, refine and exact on CUDA tensors, against the CPU.

    python -m benchmarks.bench_gpu [--quick] [--out PATH]       # on a machine with a CUDA GPU
    python -m benchmarks.bench_gpu --device cpu --quick         # the same code paths on the CPU
    python -m benchmarks.bench_gpu --sanitize                   # a tiny workload for compute-sanitizer

Checks before it times: CUDA and CPU results agree (max difference of the four atoms, bits,
recorded as cpu_gpu_max_diff_bits) and every bound is honest. Each row is
{method, shape, batch, dtype, tol, dist_per_s, max_bound, converged_fraction}: the median of
three timed runs after a warm-up, the device synchronised around each. `cpu_rows` are the same
workloads on this machine's CPU with 2 OpenMP threads (the CPU of the GPU machine, not the
project's 2-core machine; results/batch.json has that one). Writes results/gpu-<device>.json
(or --out).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np

import fastpid
from fastpid.families import dense, histogram

from .harness import RESULTS, machine, progress, table

ATOMS = ("redundancy", "unique1", "unique2", "synergy")


def pool(kind, shape, count, seed):
    rng = np.random.default_rng(seed)
    if kind == "hist":
        return np.stack([histogram(rng, *shape, samples=1000) for _ in range(count)])
    return np.stack([dense(rng, *shape) for _ in range(count)])


def timed(fn, sync, repeats=3):
    fn()  # warm-up: module load, first launch, allocator
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def row(method, label, batch, dtype, tol, seconds, r):
    bound = np.asarray(r.bound.cpu() if hasattr(r.bound, "cpu") else r.bound)
    converged = np.asarray(r.converged.cpu() if hasattr(r.converged, "cpu") else r.converged)
    return {"method": method, "shape": label, "batch": int(batch), "dtype": dtype, "tol": tol,
            "seconds": seconds, "dist_per_s": batch / seconds, "max_bound": float(bound.max()),
            "converged_fraction": float(converged.mean())}


def agreement(torch, device, quick):
    """Max |atom difference| (bits) between the device and the CPU, every method, tol 1e-10."""
    worst = {}
    for method in ("proxy", "refine", "exact"):
        diffs = []
        for kind, shape in (("hist", (20, 20, 6)), ("hist", (20, 20, 28)), ("dense", (10, 10, 10))):
            count = 50 if quick else (100 if method == "exact" and shape[2] == 28 else 500)  # the CPU side's time
            P = torch.tensor(pool(kind, shape, count, seed=11))
            cpu = fastpid.decompose(P, method=method, tol=1e-10)
            dev = fastpid.decompose(P.to(device), method=method, tol=1e-10)
            for atom in ATOMS:
                diffs.append(float((getattr(dev, atom).cpu() - getattr(cpu, atom)).abs().max()))
        worst[method] = max(diffs)
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to exercise the script without a GPU")
    parser.add_argument("--out", default=None, help="JSON path (default results/gpu-<device>.json)")
    parser.add_argument("--sanitize", action="store_true", help="run a tiny workload only (for compute-sanitizer)")
    args = parser.parse_args(argv)
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device (use --device cpu to exercise the script)")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.sanitize:
        for method in ("proxy", "refine", "exact"):
            for kind, shape in (("hist", (6, 5, 3)), ("dense", (40, 36, 8))):
                P = torch.tensor(pool(kind, shape, 3, seed=5), device=device)
                r = fastpid.decompose(P, method=method, tol=1e-9, return_coupling=True)
                sync()
                print(method, shape, [round(float(v), 9) for v in r.synergy.cpu()], bool(r.converged.all()))
        return None

    info = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, multiprocessors=props.multi_processor_count, memory_bytes=props.total_memory)
        name = props.name
    else:
        name = "cpu"
    progress(f"checking agreement with the CPU on {name}")
    agree = agreement(torch, device, args.quick)

    big = 10000 if args.quick else 100000
    workloads = [  # (method, kind, shape, batch, tol)
        ("proxy", "hist", (20, 20, 6), big, 1e-5),
        ("refine", "hist", (20, 20, 6), big, 1e-5),
        ("refine", "hist", (20, 20, 6), big // 10, 1e-7),
        ("refine", "hist", (20, 20, 28), big // 10, 1e-5),
        ("refine", "dense", (10, 10, 10), big // 10, 1e-5),
        ("exact", "hist", (20, 20, 6), 10000, 1e-7),
        ("exact", "hist", (20, 20, 6), big, 1e-7),
        ("exact", "hist", (20, 20, 28), big // 10, 1e-7),
        ("exact", "dense", (10, 10, 10), big // 10, 1e-7),
    ]
    workloads = list(dict.fromkeys(workloads))  # --quick makes two exact rows the same
    if args.quick and device.type == "cpu":
        workloads = [(m, k, s, max(b // 20, 10), t) for m, k, s, b, t in workloads]
    rows, cpu_rows = [], []
    for method, kind, shape, batch, tol in workloads:
        label = f"{kind} {'x'.join(map(str, shape))}"
        P = torch.tensor(pool(kind, shape, min(batch, 2000), seed=3))
        P = P.repeat((batch + len(P) - 1) // len(P), 1, 1, 1)[:batch].contiguous()
        Pd = P.to(device)
        progress(f"{method} {label} batch {batch} tol {tol} on {name}")
        repeats = 1 if method == "exact" and batch >= 10000 else 3  # keeps gpu_run.sh within its 10 minutes
        seconds, r = timed(lambda: fastpid.decompose(Pd, method=method, tol=tol), sync, repeats=repeats)
        rows.append(row(method, label, batch, "float64", tol, seconds, r))
        if not any(c["method"] == method and c["shape"] == label and c["tol"] == tol for c in cpu_rows):
            n_cpu = min(batch, {"refine": 200, "exact": 400, "proxy": 20000}[method])
            progress(f"  the same on the CPU, 2 threads, batch {n_cpu}")
            seconds, r = timed(lambda: fastpid.decompose(P[:n_cpu].numpy(), method=method, tol=tol, threads=2),
                               lambda: None, repeats=1)
            cpu_rows.append(row(method, label, n_cpu, "float64", tol, seconds, r))
    for r in rows:
        match = [c for c in cpu_rows if c["method"] == r["method"] and c["shape"] == r["shape"] and c["tol"] == r["tol"]]
        r["speedup_vs_cpu_2_threads"] = r["dist_per_s"] / match[0]["dist_per_s"] if match else None

    payload = {"machine": machine(), "gpu": info, "cpu_gpu_max_diff_bits": agree, "rows": rows, "cpu_rows": cpu_rows}
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    path = Path(args.out) if args.out else RESULTS / (f"gpu-{slug}" + ("-quick" if args.quick else "") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(table(rows, ["method", "shape", "batch", "tol", "dist_per_s", "max_bound", "converged_fraction", "speedup_vs_cpu_2_threads"],
                {"dist_per_s": ",.0f", "max_bound": ".1e", "converged_fraction": ".3f", "speedup_vs_cpu_2_threads": ".1f"}))
    print(f"CPU/GPU max atom difference (bits, tol 1e-10): {agree}")
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
