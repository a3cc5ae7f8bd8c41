"""Three sources from samples and on the command line: estimate(x1, x2, y, x3=...),
``fastpid decompose --sources 3`` and ``fastpid estimate --x3``."""
import itertools
import json
import math

import numpy as np
import pytest

import fastpid
from fastpid.cli import main
from fastpid.result import TERMS3


def noisy_xor3(rng, n, flip=0.05):
    x1, x2, x3 = rng.integers(0, 2, (3, n))
    y = np.where(rng.random(n) < flip, 1 - (x1 ^ x2 ^ x3), x1 ^ x2 ^ x3)
    return x1, x2, x3, y


def binary_entropy(p):
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_estimate_three_sources_covers_the_true_synergy(rng):
    x1, x2, x3, y = noisy_xor3(rng, 4000)
    e = fastpid.estimate(x1, x2, y, x3=x3)
    assert e.terms == TERMS3 and e.shape == (2, 2, 2, 2) and e.converged
    assert isinstance(e.pid, fastpid.PID3Result)
    truth = {t: 0.0 for t in TERMS3}
    truth["synergy"] = 1 - binary_entropy(0.05)  # all of I(X1X2X3;Y) is synergy of the three
    for t in TERMS3:  # within 4 standard errors (statistical: fails about once in 15,000 runs per term)
        assert abs(e.values[t] - truth[t]) <= 4 * e.standard_errors[t] + 1e-9, t
        low, high = e.intervals[t]
        assert low <= e.values[t] <= high and high - low < 0.1, t
    assert "2x2x2x2 histogram" in repr(e) and "shared23" in repr(e)
    d = e.to_dict()
    assert d["shape"] == [2, 2, 2, 2] and set(d["values"]) == set(TERMS3) and "mi_x12" in d["plug_in"]
    # pairwise, the same samples show nothing at all
    pair = fastpid.estimate(x1, x2, y)
    assert abs(pair.values["synergy"]) < 0.01


def test_estimate_three_sources_with_features_and_corrections(rng):
    n = 1500
    x1, x2, x3, y = noisy_xor3(rng, n, flip=0.1)
    features = np.column_stack([x3, 1 - x3]) + 0.05 * rng.normal(size=(n, 2))  # x3 as 2-D features (two directions)
    e = fastpid.estimate(x1, x2, y, x3=features, clusters=2, bias_correction="jackknife")
    assert e.shape == (2, 2, 2, 2) and e.discretisers[0] is None and e.discretisers[2] is not None
    # within 4 of its standard errors (a statistical check: fails about once in 15,000 runs)
    assert abs(e.values["synergy"] - (1 - binary_entropy(0.1))) <= 4 * e.standard_errors["synergy"]
    b = fastpid.estimate(x1, x2, y, x3=x3, bias_correction="bootstrap", bootstrap=20)
    assert b.bootstrap.synergy.shape == (20,) and set(b.intervals) == set(TERMS3)
    s = fastpid.estimate(x1, x2, y, x3=x3, bias_correction="shuffle", shuffles=5)
    assert set(s.shuffle_baseline) == set(TERMS3)


def test_estimate_three_sources_refuses_mismatches(rng):
    x1, x2, x3, y = noisy_xor3(rng, 100)
    with pytest.raises(ValueError, match="x1, x2, x3 and y must have the same number of samples"):
        fastpid.estimate(x1, x2, y, x3=x3[:50])
    with pytest.raises(ValueError, match="discretisers must have one entry per source"):
        fastpid.estimate(x1, x2, y, x3=x3, discretisers=(None, None, None, None))


def xor3_distribution():
    P = np.zeros((2, 2, 2, 2))
    for a, b, c in itertools.product(range(2), repeat=3):
        P[a, b, c, a ^ b ^ c] = 1 / 8
    return P


def test_cli_decompose_three_sources(tmp_path, capsys):
    np.save(tmp_path / "xor3.npy", xor3_distribution())
    assert main(["decompose", str(tmp_path / "xor3.npy"), "--sources", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["synergy"] == pytest.approx(1.0, abs=1e-9) and out["converged"] is True
    assert main(["decompose", str(tmp_path / "xor3.npy"), "--sources", "3"]) == 0
    text = capsys.readouterr().out
    assert "shared12" in text and "synergy" in text.splitlines()[1]
    rows = ["x1,x2,x3,y,count"] + [f"{a},{b},{c},{a ^ b ^ c},3" for a, b, c in itertools.product(range(2), repeat=3)]
    (tmp_path / "xor3.csv").write_text("\n".join(rows) + "\n")
    assert main(["decompose", str(tmp_path / "xor3.csv"), "--sources", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["synergy"] == pytest.approx(1.0, abs=1e-9)
    assert main(["decompose", str(tmp_path / "xor3.csv")]) == 2
    assert "need --sources 3" in capsys.readouterr().err
    assert main(["decompose", str(tmp_path / "xor3.npy"), "--sources", "3", "--method", "proxy"]) == 2
    assert "--sources 3" in capsys.readouterr().err


def test_cli_estimate_three_sources(tmp_path, capsys, rng):
    x1, x2, x3, y = noisy_xor3(rng, 2000)
    lines = ["a,b,c,label"] + [f"{p},{q},{r},{'yes' if s else 'no'}" for p, q, r, s in zip(x1, x2, x3, y)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["estimate", str(tmp_path / "s.csv"), "--x1", "a", "--x2", "b", "--x3", "c", "--y", "label", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["x3"] == "c" and out["shape"] == [2, 2, 2, 2]
    ref = fastpid.estimate(x1, x2, y, x3=x3)
    for t in TERMS3:
        assert out["values"][t] == pytest.approx(ref.values[t], abs=1e-9), t
    assert main(["estimate", str(tmp_path / "s.csv"), "--x1", "a", "--x2", "b", "--x3", "nope", "--y", "label"]) == 2
    assert "--x3" in capsys.readouterr().err
