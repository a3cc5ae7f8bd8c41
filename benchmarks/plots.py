"""Plots of the benchmark results (PNG, committed beside the JSON):

    python -m benchmarks.plots [--quick]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from .harness import RESULTS

COLORS = {
    "fastpid exact": "C0", "fastpid refine": "C8", "fastpid proxy": "C9", "cvxpy clarabel strong": "C1", "cvxpy clarabel common": "C3",
    "cvxpy scs strong": "C4", "cvxpy ecos strong": "C5", "dit broja": "C6", "fastpid paper": "C2", "cvxpy clarabel dpp": "C7",
}


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish_loglog(fig, ax, out, *, xlabel, ylabel, title, legend_size=None):
    """Log-log axes, labels, legend, save and close: the ending every single-panel plot shares."""
    plt = _plt()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def time_vs_size(size, out):
    plt = _plt()
    panels = [("dense", "n (dense n x n x n)"), ("hist", "|Y| (20 x 20 x |Y| histograms, 1,000 samples)")]
    if any(r["family"] == "large" for r in size["records"]):
        panels.append(("large", "entries of P (dense 64^3, 128x128x16, 256x256x8)"))
    if any(r["family"] == "labels" for r in size["records"]):
        panels.append(("labels", "|Y| (dense 4 x 4 x |Y|: solid; 20 x 20 x |Y| histograms of 50,000 samples: dashed)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2))
    limit = size["limit_s"]
    for ax, (family, xlabel) in zip(axes, panels):
        recs_family = [r for r in size["records"] if r["family"] == family or (family == "large" and r["case"] == "dense 64x64x64")]
        for method, color in COLORS.items():
            recs = [r for r in recs_family if r["method"] == method]
            if not recs:
                continue
            x = (lambda r: r["size"] ** 3 if r["family"] == "dense" else r["size"]) if family == "large" else (lambda r: r["size"])
            # the labels panel has two series per method, told apart by the line style
            series = [(recs, "-")] if family != "labels" else [
                ([r for r in recs if r["case"].startswith("dense")], "-"), ([r for r in recs if r["case"].startswith("hist")], "--")]
            for part, style in series:
                ok = [(x(r), r["seconds"]) for r in part if r["status"] == "ok"]
                slow = [(x(r), r.get("limit_s", limit)) for r in part if r["status"] == "timeout"]
                if ok:
                    ax.plot(*zip(*ok), marker="o", ms=4, color=color, ls=style, label=method if style == "-" else None)
                if slow:
                    ax.plot(*zip(*slow), ls="none", marker="x", ms=8, color=color)
        for panel_limit in sorted({r.get("limit_s", limit) for r in recs_family if r["family"] == family}):
            ax.axhline(panel_limit, color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if family != "large":
            sizes = sorted({r["size"] for r in recs_family})
            ax.set_xticks(sizes)
            ax.set_xticklabels([str(v) for v in sizes])
            ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per distribution")
    axes[0].set_title(f"time vs size (x: over the {limit:g} s limit)")
    large_tol = next((r["tol_bits"] for r in size["records"] if r["family"] == "large"), None)
    if large_tol is not None:
        axes[2].set_title(f"large alphabets at tol {large_tol:g} bits (64^3: default tol)", fontsize=9)
    if any(r["family"] == "labels" for r in size["records"]):
        axes[-1].set_title("large label alphabets", fontsize=9)
        axes[-1].xaxis.label.set_fontsize(7)
    legend = {}  # every method of any panel, once
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), fontsize=7, loc="lower center", ncol=5)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)


def error_vs_time(size, out):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method, color in COLORS.items():
        pts = [(r["seconds"], max(r["max_error_bits"], 1e-12)) for r in size["records"]
               if r["method"] == method and r["status"] == "ok" and r["max_error_bits"] is not None]
        if pts:
            ax.scatter(*zip(*pts), s=18, color=color, label=method)
    _finish_loglog(fig, ax, out, xlabel="seconds per distribution", ylabel="max error of the atoms (bits; floor 1e-12)",
                   title="error vs time, every case of the size benchmark", legend_size=7)


def throughput(batch, out):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, color in (("exact", "C0"), ("refine", "C8"), ("proxy", "C9")):
        recs = [r for r in batch["records"] if r["method"] == method]
        if not recs:
            continue
        ax.plot([r["batch"] for r in recs], [r["per_second"] for r in recs], marker="o", color=color, label=f"fastpid {method}")
    _finish_loglog(fig, ax, out, xlabel="batch size (20 x 20 x 6 histograms)", ylabel="distributions per second",
                   title=f"CPU throughput, {batch['threads']} threads")


def bound_vs_error(bound, out):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    b = np.array([max(r["bound"], 1e-16) for r in bound["records"]])
    e = np.array([max(r["error"], 1e-16) for r in bound["records"]])
    ax.scatter(b, e, s=10, c=np.log10([r["tol"] for r in bound["records"]]), cmap="viridis")
    lo, hi = 1e-16, max(b.max(), e.max()) * 2
    ax.plot([lo, hi], [lo, hi], color="gray", ls="--", lw=1, label="error = bound")
    _finish_loglog(fig, ax, out, xlabel="certified bound (bits)", ylabel="true error vs tol-1e-12 solve (bits; floor 1e-16)",
                   title="the bound holds: every point under the diagonal")


def estimation(est, out):
    """Bias of synergy and the worst coverage over the four atoms against samples per occupied
    cell, per estimator (colour) and population (marker)."""
    from fastpid.estimate import MIN_SAMPLES_PER_CELL

    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))
    estimators = list(dict.fromkeys(r["estimator"] for r in est["records"]))
    pops = list(dict.fromkeys(r["population"] for r in est["records"]))
    markers = dict(zip(pops, "osD^v<>"))
    for k, name in enumerate(estimators):
        color = f"C{k}"
        for pop in pops:
            recs = sorted((r for r in est["records"] if r["estimator"] == name and r["population"] == pop),
                          key=lambda r: r["samples_per_occupied_cell"])
            x = [r["samples_per_occupied_cell"] for r in recs]
            left.plot(x, [r["bias"]["synergy"] for r in recs], marker=markers[pop], ms=4, color=color, lw=1)
            right.plot(x, [min(r["coverage"].values()) for r in recs], marker=markers[pop], ms=4, color=color, lw=1)
    from matplotlib.ticker import NullFormatter

    for ax in (left, right):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(MIN_SAMPLES_PER_CELL, color="gray", ls=":", lw=1)
        ax.set_xlabel("samples per occupied cell (dotted: 5, below which estimate warns)")
    left.set_yscale("symlog", linthresh=1e-3)
    left.axhline(0, color="gray", lw=0.8)
    left.set_ylabel("bias of synergy (bits)")
    left.set_title("bias")
    right.axhline(est["nominal"], color="gray", ls="--", lw=1)
    right.axhline(0.85, color="gray", ls=":", lw=1)
    right.set_ylabel(f"coverage of the {est['nominal']:.0%} interval (worst {'term' if est.get('sources') == 3 else 'atom'})")
    right.set_ylim(-0.02, 1.02)
    right.set_title("coverage")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{k}", label=name) for k, name in enumerate(estimators)]
    handles += [Line2D([], [], color="k", ls="none", marker=markers[p], label=p) for p in pops]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=4)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    made = []
    size = _load(f"size{suffix}.json")
    if size:
        time_vs_size(size, RESULTS / f"time_vs_size{suffix}.png")
        error_vs_time(size, RESULTS / f"error_vs_time{suffix}.png")
        made += [f"time_vs_size{suffix}.png", f"error_vs_time{suffix}.png"]
    batch = _load(f"batch{suffix}.json")
    if batch:
        throughput(batch, RESULTS / f"throughput{suffix}.png")
        made.append(f"throughput{suffix}.png")
    bound = _load(f"bound{suffix}.json")
    if bound:
        bound_vs_error(bound, RESULTS / f"bound_vs_error{suffix}.png")
        made.append(f"bound_vs_error{suffix}.png")
    for name in ("estimate", "estimate3"):
        est = _load(f"{name}{suffix}.json")
        if est:
            estimation(est, RESULTS / f"{name}{suffix}.png")
            made.append(f"{name}{suffix}.png")
    print("plots:", ", ".join(made) or "none (run the benchmarks first)")


if __name__ == "__main__":
    main()
