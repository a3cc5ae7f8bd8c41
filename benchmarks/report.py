"""Markdown tables of the committed results, for README (so its numbers are the JSON's):

    python -m benchmarks.report
"""
from __future__ import annotations

import json

from .harness import RESULTS


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _ms(s):
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def cpu_table(cpu):
    dpp = all("cvxpy dpp" in methods for methods in cpu["cases"].values())
    lines = ["| case | method | time / distribution | speed-up vs CVXPY strong | vs CVXPY common |" + (" vs CVXPY DPP |" if dpp else "") +
             " max error (bits) |", "|---|---|---|---|---|" + ("---|" if dpp else "") + "---|"]
    for case, methods in cpu["cases"].items():
        strong = methods["cvxpy strong"]["time_per_distribution_s"]
        common = methods["cvxpy common"]["time_per_distribution_s"]
        for method, r in methods.items():
            t = r["time_per_distribution_s"]
            err = r["max_error_bits"]
            vs_dpp = f" {methods['cvxpy dpp']['time_per_distribution_s'] / t:.1f}x |" if dpp else ""
            lines.append(f"| {case} | {method} | {_ms(t)} | {strong / t:.1f}x | {common / t:.1f}x |{vs_dpp} " +
                         (f"{err:.1e} |" if err is not None else "- |"))
    b = cpu["batch"]
    lines.append("")
    lines.append(f"Batch of {b['batch']} 20x20x6 histograms: fastpid exact {b['fastpid exact s']:.2f} s, proxy {b['fastpid proxy s']:.3f} s "
                 f"(all {b['converged']} converged, max bound {b['max_certified_bound_bits']:.1e} bits); CVXPY strong "
                 f"{b['cvxpy strong s (extrapolated)']:.0f} s and the FastPID-paper solver {b['fastpid paper s (extrapolated)']:.0f} s, "
                 "extrapolated from their per-distribution medians.")
    return "\n".join(lines)


def size_table(size, labels=False):
    """The size benchmark's cases (labels=True: only the label-alphabet sweep, else all others)."""
    records = [r for r in size["records"] if (r["family"] == "labels") == labels]
    methods = list(dict.fromkeys(r["method"] for r in records))
    cases = list(dict.fromkeys(r["case"] for r in records))
    lines = ["| case | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for case in cases:
        cells = []
        for m in methods:
            r = next((r for r in records if r["case"] == case and r["method"] == m), None)
            if r is None:
                cells.append("-")
            elif r["status"] == "ok" and r["max_error_bits"] is None:  # large alphabets: no reference, the certified bound
                cells.append(f"{_ms(r['seconds'])} (<= {r['bound_bits']:.0e})")
            elif r["status"] == "ok":
                cells.append(f"{_ms(r['seconds'])} ({r['max_error_bits']:.0e})")
            elif r["status"] == "timeout":
                cells.append(f"> {r.get('limit_s', size['limit_s']):g} s")
            else:
                cells.append("error")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_table(acc):
    lines = ["| family | method | max error (bits) | median error (bits) | failed / timed out |", "|---|---|---|---|---|"]
    for r in acc["records"]:
        fmt = lambda v: f"{v:.1e}" if v is not None else "-"  # noqa: E731
        lines.append(f"| {r['family']} | {r['method']} | {fmt(r['max_error_bits'])} | {fmt(r['median_error_bits'])} | {r['failed_or_timeout']}/{r['n']} |")
    return "\n".join(lines)


def batch_table(batch):
    lines = ["| method | batch | time | distributions / s |", "|---|---|---|---|"]
    for r in batch["records"]:
        lines.append(f"| {r['method']} | {r['batch']} | {_ms(r['seconds'])} | {r['per_second']:,.0f} |")
    return "\n".join(lines)


def refine_tables(refine):
    lines = ["| case | tol (bits) | time | certified bound (bits) | converged | iterations | peak memory / size of P |",
             "|---|---|---|---|---|---|---|"]
    for r in refine.get("large", []):
        lines.append(f"| {r['case']} | {r['tol_bits']:.0e} | {_ms(r['seconds'])} | {r['bound_bits']:.1e} | {r['converged']} | "
                     f"{r['iterations']} | {r['peak_over_P']:.1f} |")
    lines += ["", "| case | FastPID paper: time | its error (bits) | refine within that time: time | its error (bits) | error ratio |",
              "|---|---|---|---|---|---|"]
    for c in refine.get("paper", []):
        p, best = c["paper_default"], c["refine_at_paper_time"]
        lines.append(f"| {c['case']} | {_ms(p['seconds'])} | {p['error_bits']:.1e} | {_ms(best['seconds'])} | {best['error_bits']:.1e} | "
                     f"{c['error_ratio']:.1e} |")
    lines += ["", "| penalty start | growth | converged | time (s) |", "|---|---|---|---|"]
    for r in refine.get("schedule", []):
        lines.append(f"| {r['penalty']:g} | {r['growth']:g} | {r['converged']}/{r['distributions']} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def estimate_table(est, estimators=("plug-in, percentile bootstrap", "jackknife")):
    """Per population and sample size: samples per occupied cell, how often the few-samples
    warning fired, and for each estimator the bias and RMSE of synergy and the coverage of
    every atom (R / U1 / U2 / S)."""
    head = "| population | samples | per occupied cell | warned |"
    rule = "|---|---|---|---|"
    for e in estimators:
        head += f" {e}: bias S | RMSE S | coverage R / U1 / U2 / S |"
        rule += "---|---|---|"
    lines = [head, rule]
    keys = list(dict.fromkeys((r["population"], r["samples"]) for r in est["records"]))
    for pop, n in keys:
        recs = {r["estimator"]: r for r in est["records"] if r["population"] == pop and r["samples"] == n}
        first = recs[estimators[0]]
        line = f"| {pop} | {n:,} | {first['samples_per_occupied_cell']:.1f} | {recs[estimators[-1]]['warned_fraction']:.0%} |"
        for e in estimators:
            r = recs[e]
            cov = " / ".join(f"{r['coverage'][a]:.2f}" for a in ("redundancy", "unique1", "unique2", "synergy"))
            line += f" {r['bias']['synergy']:+.3f} | {r['rmse']['synergy']:.3f} | {cov} |"
        lines.append(line)
    return "\n".join(lines)


def main():
    for name, fn in (("cpu.json", cpu_table), ("size.json", size_table), ("size.json", lambda size: size_table(size, labels=True)),
                     ("accuracy.json", accuracy_table), ("batch.json", batch_table),
                     ("refine.json", refine_tables), ("estimate.json", estimate_table)):
        data = _load(name)
        if data:
            print(f"\n### {name}  ({data['machine']['cpu']}, {data['machine']['cores']} cores)\n")
            print(fn(data))


if __name__ == "__main__":
    main()
