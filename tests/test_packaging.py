"""Packaging: the sdist holds what a build needs and builds a wheel that imports (slow: about a
minute of compiling; run with -m slow)."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_sdist_builds_a_wheel_that_runs(tmp_path):
    for module in ("build", "scikit_build_core", "pybind11"):  # --no-isolation: the build tools must be here
        pytest.importorskip(module)
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sdist = next(tmp_path.glob("fastpid-*.tar.gz"))
    names = tarfile.open(sdist).getnames()
    for needed in ("CMakeLists.txt", "pyproject.toml", "csrc/bindings.cpp", "csrc/cpu_features.cpp", "python/fastpid/_C.py"):
        assert any(n.endswith("/" + needed) for n in names), needed
    env = dict(os.environ, FASTPID_CUDA="OFF", FASTPID_NATIVE="OFF")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(tmp_path), str(sdist)],
                          capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    wheel = next(tmp_path.glob("fastpid-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    probe = subprocess.run([sys.executable, "-c", "import fastpid; i = fastpid.build_info(); print(i['cpu_path'], i['cpu_paths'])"],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(target)), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert "native" not in probe.stdout  # a portable build: one core per level (or the baseline)
