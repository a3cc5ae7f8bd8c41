import os

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
        assert "90" in info["cuda_architectures"] and "80" in info["cuda_architectures"]


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
