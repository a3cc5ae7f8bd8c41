"""benchmarks/gpu_run.sh, the one call on a GPU machine, kept working without one: its budget,
its syntax, and the benchmark's modes on the CPU device (the full rehearsal is marked slow)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_run.sh"


def test_budget_is_the_sum_of_the_step_limits_and_at_most_480_s():
    text = SCRIPT.read_text()
    limits = {name: int(value) for name, value in re.findall(r"\b(L_[A-Z]+)=(\d+)", text)}
    assert set(limits) == {"L_CHECK", "L_BUILD", "L_SMOKE", "L_BENCH", "L_TESTS", "L_MEMCHECK", "L_INITCHECK", "L_SYNCCHECK", "L_RACECHECK"}
    assert sum(limits.values()) <= 480
    # every step goes through run(), which puts it under `timeout`
    for line in text.splitlines():
        if re.search(r'"\$PY" -m (benchmarks|pip|pytest)', line):
            assert line.lstrip().startswith("run ") or "run " in line, line


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def bench_gpu(*args):
    pytest.importorskip("torch")
    return subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_smoke_on_the_cpu_device():
    done = bench_gpu("--smoke", "--device", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["smoke proxy", "smoke refine", "smoke exact", "smoke sources=3"]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="the check wants nvcc, as the GPU machine has")
def test_machine_check_in_a_rehearsal():
    done = bench_gpu("--check", "--rehearse")
    assert done.returncode == 0, done.stdout
    assert "torch:" in done.stdout and "scikit_build_core:" in done.stdout


def test_benchmark_rows_are_written_as_they_are_measured(tmp_path):
    # a budget of 0 s: no row is started, and the JSON (written before any row) says incomplete
    # until the agreement check has run
    done = bench_gpu("--device", "cpu", "--quick", "--budget", "0", "--out", str(tmp_path / "gpu.json"))
    assert done.returncode == 0, done.stderr
    import json

    payload = json.loads((tmp_path / "gpu.json").read_text())
    assert payload["rows"] == [] and payload["complete"] is True
    assert all(a["within_bounds"] for a in payload["agreement"].values())


@pytest.mark.slow
def test_rehearsal_passes(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path))
    done = subprocess.run(["bash", str(SCRIPT), "--rehearse"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) <= 8 and "summary.txt" in files and any(f.startswith("gpu-") and f.endswith(".json") for f in files)
    assert done.stdout.startswith("budget: ")
