"""``fastpid estimate FILE.csv`` on raw samples and ``fastpid decompose`` on a .csv of counts."""
import json

import numpy as np
import pytest

from fastpid.cli import main


def write_samples(path, rng, n=4000):
    # x1: a categorical column; x2: two columns whose combination is the source; y: labels as
    # words. y = x1 XOR (x2a AND x2b) style mix: every atom well defined.
    a = rng.integers(0, 2, n)
    b, c = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y = np.where(rng.random(n) < 0.9, a ^ (b & c), a)
    colour = np.array(["red", "blue"])[a]
    lines = ["id,colour,shape,size,label"]
    lines += [f"{k},{colour[k]},{'round' if b[k] else 'square'},{c[k]}.0,{'cat' if y[k] else 'dog'}" for k in range(n)]
    path.write_text("\n".join(lines) + "\n")
    # the codes the command assigns: each column's values in sorted order ("blue" < "red",
    # ("round", "0.0") < ... < ("square", "1.0"), "cat" < "dog")
    return 1 - a, (1 - b) * 2 + c, 1 - y


def test_estimate_csv_with_header_and_categorical_columns(tmp_path, capsys, rng):
    from fastpid.estimate import estimate

    path = tmp_path / "samples.csv"
    a, bc, y = write_samples(path, rng)
    capsys.readouterr()  # the rng fixture prints its seed
    assert main(["estimate", str(path), "--x1", "colour", "--x2", "shape,size", "--y", "label", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == [2, 4, 2] and out["samples"] == 4000 and out["bias_correction"] == "extrapolation"
    # the same numbers as the library on the same integer codes
    ref = estimate(a, bc, y)
    for atom, value in ref.values.items():
        assert out["values"][atom] == pytest.approx(value, abs=1e-9), atom
        assert out["intervals"][atom][0] <= value <= out["intervals"][atom][1]
    assert main(["estimate", str(path), "--x1", "colour", "--x2", "shape,size", "--y", "label"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Estimate(extrapolation-corrected, bits; 4,000 samples, 2x4x2 histogram") and "95% interval" in text


def test_estimate_csv_numeric_features_with_clusters(tmp_path, capsys, rng):
    n = 1500
    y = rng.integers(0, 3, n)
    f = np.array([[8.0, 0.0], [0.0, 8.0], [-8.0, -8.0]])[y] + rng.normal(size=(n, 2))  # three separated blobs
    g = rng.normal(size=(n, 2))
    path = tmp_path / "features.csv"
    capsys.readouterr()
    path.write_text("f0,f1,g0,g1,y\n" + "\n".join(f"{f[k,0]},{f[k,1]},{g[k,0]},{g[k,1]},{y[k]}" for k in range(n)) + "\n")
    assert main(["estimate", str(path), "--x1", "f0,f1", "--x2", "g0,g1", "--y", "y", "--clusters", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == [3, 3, 3]
    assert out["values"]["unique1"] > 1.4 and abs(out["values"]["unique2"]) < 0.05  # log2(3) = 1.58


def test_estimate_csv_bad_input_gives_clear_errors(tmp_path, capsys, rng):
    path = tmp_path / "samples.csv"
    write_samples(path, rng, n=50)
    assert main(["estimate", str(path), "--x1", "colour", "--x2", "weight", "--y", "label"]) == 2
    assert "no column weight; the columns are id, colour, shape, size, label" in capsys.readouterr().err
    assert main(["estimate", str(path), "--x1", "colour", "--x2", "shape", "--y", "label,size"]) == 2
    assert "--y names one column" in capsys.readouterr().err
    assert main(["estimate", str(path), "--x1", "colour", "--x2", "shape", "--y", "label", "--clusters", "4"]) == 2
    assert "--clusters needs numeric columns: neither --x1 nor --x2" in capsys.readouterr().err
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,y\n1,2,3\n1,2\n")
    assert main(["estimate", str(ragged), "--x1", "a", "--x2", "b", "--y", "y"]) == 2
    assert "row 3: 2 fields, the first row has 3" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["estimate", str(empty), "--x1", "a", "--x2", "b", "--y", "y"]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["estimate", str(tmp_path / "missing.csv"), "--x1", "a", "--x2", "b", "--y", "y"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_estimate_csv_too_few_samples_warns(tmp_path, capsys, rng):
    path = tmp_path / "few.csv"
    x = rng.integers(0, 8, (200, 3))
    path.write_text("a,b,y\n" + "\n".join(",".join(map(str, row)) for row in x) + "\n")
    assert main(["estimate", str(path), "--x1", "a", "--x2", "b", "--y", "y"]) == 0
    captured = capsys.readouterr()
    assert "fastpid: warning: 200 samples over" in captured.err and "[too few samples]" in captured.out


def test_decompose_csv_of_counts_normalises_itself(tmp_path, capsys):
    csv = tmp_path / "xor.csv"
    csv.write_text("x1,x2,y,count\n0,0,0,5\n0,1,1,5\n1,0,1,5\n1,1,0,5\n")
    assert main(["decompose", str(csv), "--json"]) == 0  # counts summing to 20, no --normalize
    assert abs(json.loads(capsys.readouterr().out)["synergy"] - 1.0) < 1e-6
    for text, message in (("0,0,0,5\n0,1,1\n", "row 2: 3 fields"), ("0,0,0,5\n0,-1,1,5\n", "integers >= 0"),
                          ("0,0,0,5\n0,1,1,-5\n", "counts must be finite and >= 0"), ("a,b\n1,2\n", "4 columns"),
                          ("0,0,0,5\n0,x,1,5\n", "non-numeric field")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        assert main(["decompose", str(bad)]) == 2
        assert message in capsys.readouterr().err, message
