import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import fastpid


def test_build_info_fields():
    info = fastpid.build_info()
    for key in ("version", "compiler", "openmp", "max_threads", "cuda", "cuda_architectures"):
        assert key in info
    assert info["version"] == fastpid.__version__
    assert info["max_threads"] >= 1


def test_cuda_compiled_when_ci_requires_it():
    # .ci/run sets this when nvcc is present: the CUDA sources must have been compiled.
    if os.environ.get("FASTPID_EXPECT_CUDA_BUILD"):
        info = fastpid.build_info()
        assert info["cuda"] is True
        if shutil.which("nvidia-smi") is None and not os.environ.get("FASTPID_CUDA_ARCHITECTURES"):
            # FASTPID_CUDA_ARCHITECTURES=auto without a visible GPU: Ampere, Hopper and Hopper's PTX
            assert info["cuda_architectures"] == "80-real,90-real,90-virtual"
        else:
            assert info["cuda_architectures"]


def test_cli_demo_runs(capsys):
    from fastpid.cli import main

    assert main(["demo", "--batch", "20"]) == 0
    out = capsys.readouterr().out
    assert "xor" in out and "converged: 20/20" in out


def test_cli_decompose_file(tmp_path, capsys):
    from fastpid.cli import main
    from fastpid.families import gates

    path = tmp_path / "and.npy"
    np.save(path, gates()["and"][0])
    assert main(["decompose", str(path), "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert abs(data["synergy"] - 0.5) < 1e-6
    assert main(["decompose", str(path), "--method", "refine", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["synergy"] - 0.5) < 1e-6
    csv = tmp_path / "xor.csv"
    csv.write_text("x1,x2,y,count\n0,0,0,5\n0,1,1,5\n1,0,1,5\n1,1,0,5\n")
    assert main(["decompose", str(csv), "--normalize", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["synergy"] - 1.0) < 1e-6
    bad = tmp_path / "bad.npy"
    np.save(bad, -np.ones((2, 2, 2)))
    assert main(["decompose", str(bad)]) == 2


def test_the_best_installed_core_this_cpu_supports_runs():
    from fastpid import _C

    info = fastpid.build_info()
    assert info["cpu_paths"] == _C.installed_paths() and info["cpu_paths"]
    assert info["cpu_path"] == next(p for p in info["cpu_paths"] if _C.supported(p))
    assert info["x86_64_level"] in ((1, 3, 4) if platform.machine().lower() in ("x86_64", "amd64") else (0,))
    assert _C.supported("baseline") and _C.supported("native")


def _core_answers(path):
    code = ("import json, numpy as np, fastpid, fastpid.families; rng = np.random.default_rng(0);"
            "P = np.stack([fastpid.families.FAMILIES[f](rng, 6, 5, 4) for f in ('dense', 'histogram', 'structured', 'tiny')]);"
            "r = fastpid.decompose(P, tol=1e-10, method='exact'); q = fastpid.decompose(P, tol=1e-10, method='refine');"
            "print(json.dumps([fastpid.build_info()['cpu_path'], r.synergy.tolist(), q.synergy.tolist(), r.unique1.tolist()]))")
    env = dict(os.environ, FASTPID_CPU_PATH=path)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    return done


def test_every_installed_core_computes_the_same_function():
    """A portable build has a core per x86-64 level: each gives the answers of the others to
    the certified tolerance (a native build has one core, compared with itself)."""
    from fastpid import _C

    runnable = [p for p in _C.installed_paths() if _C.supported(p)]
    answers = {}
    for path in runnable:
        done = _core_answers(path)
        assert done.returncode == 0, done.stderr
        answers[path] = json.loads(done.stdout)
        assert answers[path][0] == path
    first = answers[runnable[0]]
    for path, got in answers.items():
        for a, b in zip(first[1:], got[1:]):
            assert np.allclose(a, b, atol=2e-10, rtol=0), (path, a, b)


def test_an_unknown_cpu_path_is_refused():
    done = _core_answers("pentium_mmx")
    assert done.returncode != 0 and "FASTPID_CPU_PATH='pentium_mmx': this installation has" in done.stderr


def test_core_and_torch_ops_import_in_one_direction():
    """core.py imports torch_ops (lazily, for torch inputs); torch_ops never imports core."""
    import ast

    source = Path(fastpid.__file__).with_name("torch_ops.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                 for alias in node.names if node.module is None}
    assert "core" not in imported and "fastpid.core" not in imported, imported
