"""Throughput on the GPU: proxy, refine and exact on CUDA tensors, against the CPU.

    python -m benchmarks.bench_gpu [--quick] [--out PATH] [--budget S]   # on a machine with a CUDA GPU
    python -m benchmarks.bench_gpu --device cpu --quick                  # the same code paths on the CPU
    python -m benchmarks.bench_gpu --smoke                               # one small solve of each method, GPU against CPU
    python -m benchmarks.bench_gpu --sanitize                            # a small workload for compute-sanitizer
    python -m benchmarks.bench_gpu --check [--rehearse]                  # the GPU machine's assumptions

Order, by value (benchmarks/gpu_run.sh gives it a few minutes of a 10-minute call): the device
rows first, each after a warm-up on a small slice of its own batch and written to the JSON as
soon as it is measured, so a run cut short keeps what it measured; then the CPU rows (the same
workloads on a small fixed batch, 2 OpenMP threads: the CPU of the GPU machine, not the
project's 2-core one, which results/batch.json has); then the agreement check: CPU and device
on the same distributions at tol 1e-10 bits must agree within the sum of their bounds + 1e-9
bits, atom by atom, and every result must be converged with a finite bound. A failed check
exits non-zero after its rows are written. Each device row records the launch plan (blocks,
threads per block, workspace per block, registers and local bytes per thread) and the
iterations (mean and largest). --budget stops starting new rows once that many seconds have
passed. Writes results/gpu-<device>.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import fastpid
from fastpid.families import dense, histogram

from .harness import RESULTS, machine, progress, table

ATOMS = ("redundancy", "unique1", "unique2", "synergy")
AGREEMENT_SLACK_BITS = 1e-9  # beyond the sum of the two bounds
CPU_BATCH = {"refine": 100, "exact": 200, "proxy": 20000}  # the CPU rows' fixed batches


def pool(kind, shape, count, seed):
    rng = np.random.default_rng(seed)
    if kind == "hist":
        return np.stack([histogram(rng, *shape, samples=1000) for _ in range(count)])
    return np.stack([dense(rng, *shape) for _ in range(count)])


def to_numpy(x):
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)


def timed(fn, sync, repeats):
    times, result = [], None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def row(method, label, batch, tol, seconds, r, plan=None):
    bound, converged, iterations = to_numpy(r.bound), to_numpy(r.converged), to_numpy(r.iterations)
    return {"method": method, "shape": label, "batch": int(batch), "dtype": "float64", "tol": tol,
            "seconds": seconds, "dist_per_s": batch / seconds, "max_bound": float(bound.max()),
            "converged_fraction": float(converged.mean()), "iterations_mean": float(iterations.mean()),
            "iterations_max": int(iterations.max()), "launch": plan}


def workloads(quick):
    big = 10000 if quick else 100000
    rows = [  # (method, kind, shape, batch, tol): the targets first
        ("exact", "hist", (20, 20, 6), big, 1e-7),
        ("refine", "hist", (20, 20, 6), big, 1e-5),
        ("proxy", "hist", (20, 20, 6), big, 1e-5),
        ("refine", "hist", (20, 20, 6), big // 10, 1e-7),
        ("exact", "hist", (20, 20, 28), big // 10, 1e-7),
        ("refine", "hist", (20, 20, 28), big // 10, 1e-5),
        ("exact", "dense", (10, 10, 10), big // 10, 1e-7),
        ("refine", "dense", (10, 10, 10), big // 10, 1e-5),
    ]
    return list(dict.fromkeys(rows))


def launch_plan(torch, method, Pd):
    if Pd.device.type != "cuda":
        return None
    from fastpid import torch_ops

    return torch_ops.cuda_launch_plan(method, Pd)


def agreement(torch, device, quick):
    """CPU against the device on the same distributions, every method, tol 1e-10 bits: the
    largest atom difference and whether every difference is within the two bounds + slack and
    every result converged with a finite bound."""
    report = {}
    for method in ("proxy", "refine", "exact"):
        worst, ok = 0.0, True
        for kind, shape in (("hist", (20, 20, 6)), ("hist", (20, 20, 28)), ("dense", (10, 10, 10))):
            P = torch.tensor(pool(kind, shape, 4 if quick else 64, seed=11))
            cpu = fastpid.decompose(P, method=method, tol=1e-10)
            dev = fastpid.decompose(P.to(device), method=method, tol=1e-10)
            allowed = to_numpy(cpu.bound) + to_numpy(dev.bound) + AGREEMENT_SLACK_BITS
            for atom in ATOMS:
                diff = np.abs(to_numpy(getattr(dev, atom)) - to_numpy(getattr(cpu, atom)))
                worst = max(worst, float(diff.max()))
                ok &= bool((diff <= allowed).all())
            if method != "proxy":  # the proxy's bound is its own, not a tolerance
                ok &= bool(to_numpy(dev.converged).all() and to_numpy(cpu.converged).all())
            ok &= bool(np.isfinite(to_numpy(dev.bound)).all())
        report[method] = {"max_diff_bits": worst, "within_bounds": ok}
    return report


def smoke(torch, device):
    """One small solve of each method on the device against the CPU, printed; exits 1 on a
    disagreement beyond the bounds."""
    P = torch.tensor(pool("hist", (6, 5, 4), 3, seed=1))
    bad = 0
    for method in ("proxy", "refine", "exact"):
        cpu = fastpid.decompose(P, method=method, tol=1e-9)
        dev = fastpid.decompose(P.to(device), method=method, tol=1e-9)
        diff = max(float(np.abs(to_numpy(getattr(dev, a)) - to_numpy(getattr(cpu, a))).max()) for a in ATOMS)
        allowed = float((to_numpy(cpu.bound) + to_numpy(dev.bound)).max()) + AGREEMENT_SLACK_BITS
        bad += not diff <= allowed
        print(f"smoke {method}: synergy cpu {to_numpy(cpu.synergy).round(9)} {device.type} {to_numpy(dev.synergy).round(9)} "
              f"max diff {diff:.1e} bits (allowed {allowed:.1e}) converged {bool(to_numpy(dev.converged).all())}")
    ok, diff = three_sources_agree(torch, device, count=3)
    bad += not ok
    print(f"smoke sources=3: max diff {diff:.1e} bits, within the bounds {ok}")
    return 1 if bad else 0


def pool3(shape, count, seed):
    """Histograms of 2,000 samples of (n1, n2, n3, ny) populations, as bench_three's."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        base = rng.dirichlet(np.full(int(np.prod(shape)), 0.5))
        counts = rng.multinomial(2000, base).reshape(shape)
        out.append(counts / counts.sum())
    return np.stack(out)


def three_sources_agree(torch, device, count):
    """decompose(P, sources=3) on the device (the k-source kernel and the pairs' kernels) against
    the CPU: (every term within the two bounds + slack and converged, the largest difference)."""
    from fastpid.result import TERMS3

    P = torch.tensor(pool3((4, 3, 3, 4), count, seed=7))
    cpu = fastpid.decompose(P, sources=3)
    dev = fastpid.decompose(P.to(device), sources=3)
    allowed = to_numpy(cpu.bound) + to_numpy(dev.bound) + AGREEMENT_SLACK_BITS
    diffs = [np.abs(to_numpy(getattr(dev, t)) - to_numpy(getattr(cpu, t))) for t in TERMS3]
    ok = all(bool((d <= allowed).all()) for d in diffs) and bool(to_numpy(dev.converged).all())
    return ok, float(max(d.max() for d in diffs))


def sanitize(torch, device):
    """A workload for compute-sanitizer: every method on more distributions than blocks (the
    grid capped at 4 blocks, so each walks several with one workspace), with couplings, and
    the backward kernel."""
    from fastpid import torch_ops

    torch_ops.MAX_CUDA_BLOCKS = 4  # the k-source kernel's grid too
    P = torch.tensor(pool3((4, 3, 3, 4), 12, seed=5), device=device, requires_grad=True)
    r = fastpid.decompose(P, sources=3)
    r.synergy.sum().backward()
    torch.cuda.synchronize() if device.type == "cuda" else None
    print("sources=3", [round(float(v), 9) for v in r.synergy.detach().cpu()[:3]], bool(r.converged.all()), float(P.grad.abs().sum()))
    for method in ("proxy", "refine", "exact"):
        for kind, shape in (("hist", (6, 5, 3)), ("dense", (20, 18, 6))):
            P = torch.tensor(pool(kind, shape, 12, seed=5), device=device, requires_grad=True)
            r = fastpid.decompose(P, method=method, tol=1e-9, return_coupling=True)
            r.synergy.sum().backward()
            torch.cuda.synchronize() if device.type == "cuda" else None
            print(method, shape, [round(float(v), 9) for v in r.synergy.detach().cpu()[:3]], bool(r.converged.all()),
                  float(P.grad.abs().sum()))
    return 0


def check_machine(rehearse):
    """The GPU machine's assumptions (gpu_run.sh's first step), one line each: nvcc, the build
    tools' versions against pyproject.toml's, torch with a usable CUDA device (not in a rehearsal), a
    writable site-packages. Returns 1 if one fails."""
    import importlib
    import os
    import site

    import shutil
    import subprocess

    bad = 0
    if shutil.which("nvcc"):
        print(f"nvcc: {subprocess.run(['nvcc', '--version'], capture_output=True, text=True).stdout.strip().splitlines()[-1]}")
    else:
        print("check: nvcc not found (the CUDA build needs it)")
        bad = 1
    for name, least in (("scikit_build_core", (0, 10)), ("pybind11", (2, 12)), ("numpy", (1, 22))):
        try:
            version = importlib.import_module(name).__version__
        except Exception:  # reported as missing, one line
            version = None
        ok = version is not None and tuple(int(x) for x in re.findall(r"\d+", version)[:2]) >= least
        print(f"{name}: {version}" if ok else f"check: {name} {version or 'missing'}, need >= {'.'.join(map(str, least))}")
        bad |= not ok
    try:
        import torch

        usable = bool(torch.version.cuda) and torch.cuda.is_available()
        print(f"torch: {torch.__version__} (CUDA {torch.version.cuda}, device available: {torch.cuda.is_available()})")
        if not usable and not rehearse:
            print("check: torch has no usable CUDA device")
            bad = 1
    except Exception as exc:
        print(f"check: torch does not import: {exc}")
        bad = 1
    writable = [p for p in site.getsitepackages() if os.path.isdir(p) and os.access(p, os.W_OK)]
    print(f"site-packages: {writable[0]} (writable)" if writable else "site-packages: none writable, the build installs with --target (fallback)")
    return bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to exercise the script without a GPU")
    parser.add_argument("--out", default=None, help="JSON path (default results/gpu-<device>.json)")
    parser.add_argument("--out-dir", default=None, help="folder for gpu-<device>.json instead of results/")
    parser.add_argument("--check", action="store_true", help="check the GPU machine's assumptions (gpu_run.sh)")
    parser.add_argument("--rehearse", action="store_true", help="with --check: no GPU expected")
    parser.add_argument("--budget", type=float, default=None, help="seconds after which no new row is started")
    parser.add_argument("--smoke", action="store_true", help="one small solve of each method against the CPU")
    parser.add_argument("--sanitize", action="store_true", help="run a small workload only (for compute-sanitizer)")
    args = parser.parse_args(argv)
    if args.check:
        return check_machine(args.rehearse)
    import torch

    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device (use --device cpu to exercise the script)")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.smoke:
        return smoke(torch, device)
    if args.sanitize:
        return sanitize(torch, device)

    info = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, multiprocessors=props.multi_processor_count, memory_bytes=props.total_memory)
        name = props.name
    else:
        name = "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    name_json = f"gpu-{slug}" + ("-quick" if args.quick else "") + ".json"
    path = Path(args.out) if args.out else (Path(args.out_dir) if args.out_dir else RESULTS) / name_json
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "gpu": info, "complete": False, "rows": [], "cpu_rows": [], "agreement": None}

    def save():
        path.write_text(json.dumps(payload, indent=2, default=str))

    def over_budget():
        return args.budget is not None and time.perf_counter() - start > args.budget

    save()
    plan = workloads(args.quick)
    if args.quick and device.type == "cpu":
        plan = [(m, k, s, max(b // 20, 10), t) for m, k, s, b, t in plan]
    for method, kind, shape, batch, tol in plan:
        if over_budget():
            progress(f"budget of {args.budget:g} s spent: {method} {shape} and the rest not run")
            break
        label = f"{kind} {'x'.join(map(str, shape))}"
        P = torch.tensor(pool(kind, shape, min(batch, 2000), seed=3))
        Pd = P.repeat((batch + len(P) - 1) // len(P), 1, 1, 1)[:batch].contiguous().to(device)
        progress(f"{method} {label} batch {batch} tol {tol} on {name}")
        fastpid.decompose(Pd[:256], method=method, tol=tol)  # warm-up: module load, first launch, allocator
        sync()
        seconds, r = timed(lambda: fastpid.decompose(Pd, method=method, tol=tol), sync, repeats=1 if batch >= 10000 and method != "proxy" else 3)
        payload["rows"].append(row(method, label, batch, tol, seconds, r, launch_plan(torch, method, Pd)))
        save()
    for method, kind, shape, _, tol in plan:
        label = f"{kind} {'x'.join(map(str, shape))}"
        if over_budget() or any(c["method"] == method and c["shape"] == label and c["tol"] == tol for c in payload["cpu_rows"]):
            continue
        n_cpu = CPU_BATCH[method] // (20 if args.quick and device.type == "cpu" else 1)
        P = pool(kind, shape, n_cpu, seed=3)
        progress(f"{method} {label} batch {n_cpu} tol {tol} on the CPU, 2 threads")
        seconds, r = timed(lambda: fastpid.decompose(P, method=method, tol=tol, threads=2), lambda: None, repeats=1)
        payload["cpu_rows"].append(row(method, label, n_cpu, tol, seconds, r))
        save()
    for r in payload["rows"]:
        match = [c for c in payload["cpu_rows"] if c["method"] == r["method"] and c["shape"] == r["shape"] and c["tol"] == r["tol"]]
        r["speedup_vs_cpu_2_threads"] = r["dist_per_s"] / match[0]["dist_per_s"] if match else None
    save()
    if not over_budget():  # three sources: the k-source kernel and the pairs' on the device, against 2 CPU threads
        P = torch.tensor(pool3((6, 6, 6, 4), 200 if args.quick else 2000, seed=3))
        progress(f"sources=3 hist 6x6x6x4 batch {len(P)} on {name}, and 200 on the CPU")
        fastpid.decompose(P[:16].to(device), sources=3)  # warm-up
        seconds, r = timed(lambda: fastpid.decompose(P.to(device), sources=3), sync, repeats=1)
        cpu_seconds, _ = timed(lambda: fastpid.decompose(P[:200].numpy(), sources=3, threads=2), lambda: None, repeats=1)
        payload["three_sources"] = {"shape": "hist 6x6x6x4", "batch": len(P), "dist_per_s": len(P) / seconds,
                                    "cpu_2_threads_dist_per_s": 200 / cpu_seconds, "max_bound": float(to_numpy(r.bound).max()),
                                    "converged_fraction": float(to_numpy(r.converged).mean())}
        save()
    progress(f"checking agreement with the CPU on {name}")
    payload["agreement"] = agreement(torch, device, args.quick)
    ok3, diff3 = three_sources_agree(torch, device, count=4 if args.quick else 32)
    payload["agreement"]["sources=3"] = {"max_diff_bits": diff3, "within_bounds": ok3}
    payload["complete"] = True
    save()
    if payload["rows"]:
        print(table(payload["rows"], ["method", "shape", "batch", "tol", "dist_per_s", "max_bound", "converged_fraction",
                                          "iterations_mean", "speedup_vs_cpu_2_threads"],
                    {"dist_per_s": ",.0f", "max_bound": ".1e", "converged_fraction": ".3f", "iterations_mean": ".1f",
                     "speedup_vs_cpu_2_threads": ".1f"}))
    print(f"CPU/{device.type} agreement at tol 1e-10 bits: {payload['agreement']}")
    print(f"wrote {path}")
    failed = [m for m, a in payload["agreement"].items() if not a["within_bounds"]]
    if failed:
        print(f"bench_gpu: CPU and {device.type} disagree beyond their bounds for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
