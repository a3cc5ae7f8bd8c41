"""The command line as a new user meets it: errors in the command's own terms, one exit code per
kind of outcome, no tracebacks, convergence shown, --version, help for every option, early size
checks, and the Python API's discretisation of numeric columns."""
import json
import subprocess
import sys

import numpy as np
import pytest

import fastpid
from fastpid import cli
from fastpid.cli import EXIT_INTERRUPTED, EXIT_NOT_CONVERGED, EXIT_OK, EXIT_USAGE, main


def run(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def and_gate(tmp_path):
    path = tmp_path / "and.npy"
    np.save(path, fastpid.families.gates()["and"][0])
    return path


def test_errors_speak_the_command_s_flags(tmp_path, capsys, rng):
    counts = tmp_path / "counts.npy"
    np.save(counts, np.full((2, 2, 2), 3.0))
    code, _, err = run(capsys, "decompose", str(counts))
    assert code == EXIT_USAGE and "pass --normalize" in err and "normalize=True" not in err
    samples = tmp_path / "s.csv"
    samples.write_text("a,b,y\n" + "\n".join(f"{i % 2},{i % 3},{i % 2}" for i in range(60)) + "\n")
    code, _, err = run(capsys, "estimate", str(samples), "--x1", "a", "--x2", "b", "--y", "y", "--correction", "bootstrap")
    assert code == EXIT_USAGE and "--correction bootstrap needs --bootstrap B" in err and "bias_correction" not in err
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("a,b,y\n0,0,0\n1,1,1\n0,1,1\n")
    code, _, err = run(capsys, "estimate", str(tiny), "--x1", "a", "--x2", "b", "--y", "y")
    assert code == EXIT_USAGE and "need at least 5 samples for --correction 'extrapolation'" in err
    assert "--correction jackknife or none work from 2" in err
    code, _, err = run(capsys, "decompose", str(counts), "--tol", "-1")
    assert code == EXIT_USAGE and "--tol must be positive" in err


def test_file_problems_are_one_line_and_one_exit_code(tmp_path, capsys):
    for missing in ("missing.npy", "missing.npz", "missing.csv"):
        code, _, err = run(capsys, "decompose", str(tmp_path / missing))
        assert code == EXIT_USAGE and "no such file" in err, missing
    code, _, err = run(capsys, "estimate", str(tmp_path / "missing.csv"), "--x1", "a", "--x2", "b", "--y", "y")
    assert code == EXIT_USAGE and "cannot read" in err
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"\x93NUMPY not really")
    code, _, err = run(capsys, "decompose", str(corrupt))
    assert code == EXIT_USAGE and "cannot load" in err and str(corrupt) in err
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "decompose", str(pickled))
    assert code == EXIT_USAGE and "cannot load" in err
    binary = tmp_path / "image.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = run(capsys, "estimate", str(binary), "--x1", "a", "--x2", "b", "--y", "y")
    assert code == EXIT_USAGE and "is not a text .csv file" in err
    code, _, err = run(capsys, "decompose", str(tmp_path / "P.txt"))
    assert code == EXIT_USAGE and "unsupported file type" in err
    several = tmp_path / "several.npz"
    np.savez(several, a=np.full((2, 2, 2), 1 / 8), b=np.full((2, 2, 2), 1 / 8))
    code, _, err = run(capsys, "decompose", str(several))
    assert code == EXIT_USAGE and "2 arrays (a, b) and none named P" in err
    named = tmp_path / "named.npz"
    np.savez(named, other=-np.ones((2, 2, 2)), P=np.full((2, 2, 2), 1 / 8))
    assert run(capsys, "decompose", str(named))[0] == 0
    alone = tmp_path / "alone.npz"
    np.savez(alone, np.full((2, 2, 2), 1 / 8))
    assert run(capsys, "decompose", str(alone))[0] == 0
    bad_values = tmp_path / "negative.npy"
    np.save(bad_values, -np.ones((2, 2, 2)))
    code, _, err = run(capsys, "decompose", str(bad_values))
    assert code == EXIT_USAGE and "negative entry" in err


def test_text_output_shows_convergence_and_the_exit_code_says_it(and_gate, capsys):
    code, out, err = run(capsys, "decompose", str(and_gate))
    assert code == EXIT_OK and "converged" in out.splitlines()[1] and out.splitlines()[2].rstrip().endswith("yes")
    assert err == ""
    dense = and_gate.parent / "dense.npy"  # the proxy is certified, not optimal: short of tol
    np.save(dense, np.random.default_rng(5).dirichlet(np.ones(48)).reshape(4, 4, 3))
    code, out, err = run(capsys, "decompose", str(dense), "--method", "proxy")
    assert code == EXIT_NOT_CONVERGED
    assert out.splitlines()[2].rstrip().endswith("NO")
    assert "1 of 1 distribution(s) stopped short of --tol 1e-07 bits; the largest certified bound is" in err
    code, out, _ = run(capsys, "decompose", str(dense), "--method", "proxy", "--json")
    assert code == EXIT_NOT_CONVERGED and json.loads(out)["converged"] is False


def test_version_and_help_for_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"fastpid {fastpid.__version__}"
    parser = cli._parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"fastpid {name} {action.option_strings or action.dest} has no help text"
        assert "exit codes" in sub.format_help()
    assert "exit codes: 0 done; 1" in parser.format_help()


def test_absurd_codes_are_refused_before_allocating(tmp_path, capsys):
    csv = tmp_path / "huge.csv"
    csv.write_text("x1,x2,y,count\n0,0,0,5\n1000000,1000000,1,5\n")
    code, _, err = run(capsys, "decompose", str(csv))
    assert code == EXIT_USAGE and "1,000,001x1,000,001x2 histogram" in err and "GiB" in err


def test_numeric_columns_are_clustered_like_the_python_api(tmp_path, capsys, rng):
    """32 integer pixel columns (the digits data set's kind) were each row its own category
    (1797x1797x10 at one sample per cell, 2.5 minutes and MemoryError); now clustered into 20,
    as fastpid.estimate clusters features."""
    n, y = 400, rng.integers(0, 4, 400)
    pixels = np.clip(rng.poisson(3, (n, 32)) + 6 * (y[:, None] == np.arange(32)[None, :] % 4), 0, 16)
    other = rng.normal(size=n)
    path = tmp_path / "digits.csv"
    names = [f"p{k}" for k in range(32)]
    path.write_text(",".join(names + ["noise", "label"]) + "\n"
                    + "\n".join(",".join(map(str, list(pixels[i]) + [other[i], y[i]])) for i in range(n)) + "\n")
    code, out, _ = run(capsys, "estimate", str(path), "--x1", ",".join(names), "--x2", "noise", "--y", "label", "--json")
    assert code in (EXIT_OK, EXIT_NOT_CONVERGED)
    assert json.loads(out)["shape"] == [20, 20, 4]
    code, out, _ = run(capsys, "estimate", str(path), "--x1", ",".join(names[:16]), "--x2", "noise", "--y", "label",
                       "--clusters", "5", "--json")
    assert json.loads(out)["shape"] == [5, 5, 4]
    code, _, err = run(capsys, "estimate", str(path), "--x1", ",".join(names), "--x2", "noise", "--y", "label", "--categories")
    assert code == EXIT_USAGE and "--x1: 400 distinct values in 400 samples, too many categories" in err


def test_ctrl_c_exits_130_without_a_traceback(and_gate, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "decompose", interrupted)
    code, _, err = run(capsys, "decompose", str(and_gate))
    assert code == EXIT_INTERRUPTED and err.strip() == "fastpid: interrupted"


def test_json_into_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / "batch.npy"
    np.save(path, np.full((300, 2, 2, 2), 0.125))
    done = subprocess.run(f'"{sys.executable}" -m fastpid.cli decompose "{path}" --json | head -n 2', shell=True,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[0] == "{"
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
