"""Large jobs: a million histograms in one call, the memory a call needs above its input, the
chunk-size rule, and fastpid.dask on 1 and 2 workers.

    python -m benchmarks.bench_large [--quick] [--only large,memory,chunks,dask]

* large: 1,000,000 float32 20x20x6 histograms (numpy and torch; 9.6 GB each) in one
  decompose call: time, throughput against a 100,000-histogram call on the same process and
  data (goal: within 10%), and peak RSS.
* memory: the peak RSS of a call above its input, for numpy and torch, float32 and float64, and
  torch with grad (the forward call, and the backward above the gradient it returns, which is
  input-sized by definition). Goal: <= 0.5x the input + 256 MiB.
* chunks: throughput against the chunk rule's target time (fastpid._run.CHUNK_SECONDS) and a
  memory-only rule, on a microsecond case (2x2x2, proxy) and a millisecond one (histograms,
  default method): the measurement behind CHUNK_SECONDS.
* dask: fastpid.dask.decompose on a LocalCluster of 1 and 2 single-threaded worker processes
  against the in-process call on 1 and 2 threads.

Each memory figure comes from a fresh process (peak RSS reset with /proc/self/clear_refs after
the input is built, read from VmHWM after the call; Linux only). The histograms are 20,000
distinct draws of fastpid.families.histogram (1,000 samples each, about 4% of the cells
occupied: what clustered embeddings give), tiled in random order to the batch size: drawing a
million takes 5 minutes here and changes nothing measured. Writes results/large[-quick].json
and large_memory.png.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from .harness import RESULTS, machine, progress, table, write_json

SHAPE = (20, 20, 6)
POOL = 20_000
MEMORY_GOAL = 0.5      # peak above the input, as a multiple of the input ...
MEMORY_SLACK = 256 << 20  # ... plus this
THROUGHPUT_GOAL = 0.10  # the large call's time per histogram within 10% of the 100,000 call's


def histograms(batch: int, dtype, seed: int = 0) -> np.ndarray:
    """``batch`` float histograms 20x20x6: POOL distinct ones tiled in random order."""
    from fastpid.families import histogram

    rng = np.random.default_rng(seed)
    pool = np.stack([histogram(rng, *SHAPE) for _ in range(min(POOL, batch))]).astype(dtype)
    out = np.empty((batch,) + SHAPE, dtype=dtype)
    block = 50_000
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        out[start:stop] = pool[rng.integers(0, len(pool), stop - start)]
    return out


# --- one measurement in a fresh process -------------------------------------------------------

def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> None:
    """Frees what the allocator holds (building the input leaves hundreds of MB of small freed
    blocks in glibc's heap, which a call would reuse unseen) and resets VmHWM to the RSS now."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(spec: dict) -> dict:
    """Runs in its own process: builds the input, times decompose on all of it with the peak RSS
    reset before, then on its first ``compare`` histograms; returns the figures."""
    import fastpid

    dtype = np.dtype(spec["dtype"])
    P = histograms(spec["batch"], dtype)
    library, grad = spec["library"], spec["grad"]
    if library == "torch":
        import torch

        P = torch.from_numpy(P)

    def call(part):
        if grad:
            part = part.detach().requires_grad_(True)
        began = time.perf_counter()
        r = fastpid.decompose(part, progress=False)
        seconds = time.perf_counter() - began
        return r, seconds, part

    call(P[:64])  # first-call work (the torch op's registration, OpenMP's pool) out of the figures
    out = {"batch": len(P), "input_bytes": int(P.nbytes) if library == "numpy" else int(P.numel() * P.element_size())}
    _reset_peak()
    rss_before = _status_kib("VmRSS") << 10
    out["rss_before_call_bytes"] = rss_before
    r, out["seconds"], leaf = call(P)
    out["peak_rss_bytes"] = _status_kib("VmHWM") << 10
    out["call_peak_above_input_bytes"] = out["peak_rss_bytes"] - rss_before
    out["method"] = r.method
    out["converged"] = float(np.asarray(r.converged).mean())
    if spec["compare"]:  # after the large call, so that its memory is measured from a process that had made no other
        small, out["compare_seconds"], _ = call(P[:spec["compare"]])
        out["compare_batch"] = spec["compare"]
        host = [x.detach().numpy() if hasattr(x, "detach") else x for x in (small.synergy, r.synergy[:spec["compare"]])]
        out["compare_equal"] = bool(np.array_equal(*host))  # the same distributions, the same answers
    if grad:
        objective = (r.synergy + r.unique1).sum()
        del r
        _reset_peak()
        rss_before = _status_kib("VmRSS") << 10
        began = time.perf_counter()
        objective.backward()
        out["backward_seconds"] = time.perf_counter() - began
        grad_bytes = leaf.grad.numel() * leaf.grad.element_size()
        out["backward_peak_above_gradient_bytes"] = (_status_kib("VmHWM") << 10) - rss_before - grad_bytes
    return out


def measure(library: str, dtype: str, batch: int, grad: bool = False, compare: int = 0) -> dict:
    spec = dict(library=library, dtype=dtype, batch=batch, grad=grad, compare=compare)
    progress(f"{library} {dtype}{' grad' if grad else ''}: {batch:,} histograms in a fresh process")
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_large", "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{done.stderr[-4000:]}")
    row = dict(spec, **json.loads(done.stdout.strip().splitlines()[-1]))
    row["per_histogram_us"] = 1e6 * row["seconds"] / batch
    row["peak_above_input_x"] = row["call_peak_above_input_bytes"] / row["input_bytes"]
    row["memory_goal_met"] = row["call_peak_above_input_bytes"] <= MEMORY_GOAL * row["input_bytes"] + MEMORY_SLACK
    if grad:
        row["memory_goal_met"] &= row["backward_peak_above_gradient_bytes"] <= MEMORY_GOAL * row["input_bytes"] + MEMORY_SLACK
    if compare:
        row["throughput_ratio"] = (row["seconds"] / batch) / (row["compare_seconds"] / compare)
        row["throughput_goal_met"] = abs(row["throughput_ratio"] - 1) <= THROUGHPUT_GOAL
    return row


# --- in-process measurements -------------------------------------------------------------------

def chunk_rule(quick: bool) -> list:
    import fastpid
    from fastpid import _run

    cases = [("2x2x2 proxy", np.random.default_rng(1).dirichlet(np.ones(8), size=200_000 if quick else 2_000_000).reshape(-1, 2, 2, 2), "proxy"),
             ("20x20x6 histograms", histograms(4000 if quick else 20_000, np.float64, seed=2), "auto")]
    settings = [("0.02 s", 0.02), ("0.1 s", 0.1), ("0.25 s (default)", 0.25), ("1 s", 1.0), ("memory cap only", None)]
    rows = []
    default_seconds = _run.CHUNK_SECONDS
    for label, P, method in cases:
        for name, target in settings:
            progress(f"chunks: {label}, target {name}")
            best = np.inf
            for _ in range(3):
                _run.CHUNK_SECONDS = target if target is not None else 1e9  # huge target: chunks grow to the cap
                try:
                    began = time.perf_counter()
                    fastpid.decompose(P, method=method, progress=False)
                    best = min(best, time.perf_counter() - began)
                finally:
                    _run.CHUNK_SECONDS = default_seconds
            rows.append({"case": label, "target": name, "seconds": best, "per_distribution_us": 1e6 * best / len(P)})
    for label, _, _ in cases:
        group = [r for r in rows if r["case"] == label]
        fastest = min(r["seconds"] for r in group)
        for r in group:
            r["vs_fastest"] = r["seconds"] / fastest
    return rows


def dask_scaling(quick: bool) -> list:
    import dask.array as da
    from dask.distributed import Client, LocalCluster, wait

    import fastpid
    import fastpid.dask

    batch, chunk = (8000, 1000) if quick else (40_000, 2000)
    P = histograms(batch, np.float64, seed=3)
    rows = []
    for threads in (1, 2):
        progress(f"dask: in-process reference on {threads} thread(s)")
        began = time.perf_counter()
        ref = fastpid.decompose(P, threads=threads, progress=False)
        rows.append({"how": f"fastpid.decompose, threads={threads}", "seconds": time.perf_counter() - began})
    for workers in (1, 2):
        progress(f"dask: LocalCluster of {workers} worker process(es)")
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            lazy_P = client.persist(da.from_array(P, chunks=(chunk,) + SHAPE))  # on the workers before the clock starts
            wait(lazy_P)
            began = time.perf_counter()
            r = fastpid.dask.compute(fastpid.dask.decompose(lazy_P))
            seconds = time.perf_counter() - began
        worst = max(float(np.max(np.abs(getattr(r, a) - getattr(ref, a)))) for a in ("redundancy", "unique1", "unique2", "synergy"))
        rows.append({"how": f"fastpid.dask, {workers} worker(s) x 1 thread, chunks of {chunk}", "seconds": seconds,
                     "max_difference_bits": worst})
    for r in rows:
        r["per_histogram_us"] = 1e6 * r["seconds"] / batch
    return rows


def plot(rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = [f"{r['library']} {r['dtype']}{' grad' if r['grad'] else ''}\n{r['batch']:,}" for r in rows]
    above = [r["call_peak_above_input_bytes"] / 2**30 for r in rows]
    goal = [(MEMORY_GOAL * r["input_bytes"] + MEMORY_SLACK) / 2**30 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["input_bytes"] / 2**30 for r in rows], 0.4, label="input", color="0.8")
    ax.bar(x + 0.2, above, 0.4, label="peak above the input (call)")
    ax.scatter(x + 0.2, goal, marker="_", s=400, color="k", label="goal: 0.5x input + 256 MiB")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("GiB")
    ax.set_title("fastpid.decompose: memory of a call above its input (20x20x6 histograms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 for the million, smaller elsewhere")
    parser.add_argument("--only", default="large,memory,chunks,dask")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    parts = set(args.only.split(","))
    large, compare = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
    memory_batch = 20_000 if args.quick else 100_000
    payload = {"machine": machine(), "shape": SHAPE, "distinct_histograms": POOL,
               "memory_goal": f"peak above the input <= {MEMORY_GOAL}x the input + {MEMORY_SLACK >> 20} MiB",
               "throughput_goal": f"time per histogram within {THROUGHPUT_GOAL:.0%} of the {compare:,} call's"}
    failed = []
    rows = []
    if "large" in parts:
        for library in ("numpy", "torch"):
            rows.append(measure(library, "float32", large, compare=compare))
    if "memory" in parts:
        for library, dtype, grad in (("numpy", "float64", False), ("torch", "float64", False), ("torch", "float32", True),
                                     ("torch", "float64", True)):
            rows.append(measure(library, dtype, memory_batch, grad=grad))
    if rows:
        payload["calls"] = rows
        print(table(rows, ["library", "dtype", "grad", "batch", "method", "seconds", "per_histogram_us", "throughput_ratio",
                           "peak_rss_bytes", "peak_above_input_x", "memory_goal_met"]))
        failed += [r for r in rows if not r["memory_goal_met"] or not r.get("throughput_goal_met", True)
                   or not r.get("compare_equal", True)]
        payload["plot"] = str(plot(rows, RESULTS / f"large_memory{'-quick' if args.quick else ''}.png"))
    if "chunks" in parts:
        payload["chunk_rule"] = chunk_rule(args.quick)
        print(table(payload["chunk_rule"], ["case", "target", "seconds", "per_distribution_us", "vs_fastest"]))
    if "dask" in parts:
        payload["dask"] = dask_scaling(args.quick)
        print(table(payload["dask"], ["how", "seconds", "per_histogram_us", "max_difference_bits"]))
        failed += [r for r in payload["dask"] if r.get("max_difference_bits", 0) > 1e-12]
    payload["goals_met"] = not failed
    print("wrote", write_json(f"large{'-quick' if args.quick else ''}.json", payload))
    if failed:
        print("goals missed:", failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
