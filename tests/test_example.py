"""The modality-competition example runs end to end in its reduced mode, and its task has the
competition it is built to show."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "modality_competition.py"


def load_example():
    spec = importlib.util.spec_from_file_location("modality_competition", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_modality_competition_quick(tmp_path):
    example = load_example()
    summary = example.main(["--quick", "--seeds", "1", "--out", str(tmp_path)])
    table = summary["table"]
    for method in ("unimodal x1", "unimodal x2", "naive joint", "fixed k=0", "two-stage PID", "two-stage MI",
                   "two-stage PID [fused loss only]"):
        assert 0.4 <= table[method]["test"][0] <= 1.0, method  # accuracies of a binary task
    # both modalities carry signal: each alone beats chance clearly, and fusing them helps
    assert table["unimodal x1"]["test"][0] > 0.7 and table["unimodal x2"]["test"][0] > 0.65
    assert table["two-stage PID"]["test"][0] > table["unimodal x1"]["test"][0]
    # the competition: naive joint training leaves the x2 encoder behind the one trained alone
    assert table["naive joint"]["probe2"][0] < table["unimodal x2"]["probe2"][0] - 0.03
    saved = json.loads((tmp_path / "modality_competition-quick.json").read_text())
    run = saved["per_seed"][0]["two-stage PID"]
    assert run["trajectory"] and run["trigger"] in ("synergy", "max_switches", "max_epoch")
    assert set(run["atoms_at_start"]) >= {"redundancy", "unique1", "unique2", "synergy"}
    for name in ("competition", "pid_trajectory", "atoms_vs_accuracy"):
        assert (tmp_path / f"{name}-quick.png").stat().st_size > 1000


def test_the_shortcut_is_on_the_training_split_only():
    example = load_example()
    cfg = example.CONFIG
    rng = np.random.default_rng(0)
    (x1, x2), y = example.make_split(rng, 20000, cfg, shortcut=True)
    (t1, t2), ty = example.make_split(rng, 20000, cfg, shortcut=False)
    sign, test_sign = 2 * y.numpy() - 1, 2 * ty.numpy() - 1
    assert np.mean(x1[:, 1].numpy() * sign) == pytest.approx(cfg["shortcut"], abs=0.05)
    assert abs(np.mean(t1[:, 1].numpy() * test_sign)) < 0.05
    # the genuine x1 signal: beta1 on a `present` fraction, on both splits
    assert np.mean(t1[:, 0].numpy() * test_sign) == pytest.approx(cfg["beta1"] * cfg["present"], abs=0.05)
    # x2: no single feature tells the label; the product of features 0 and 1 does
    assert abs(np.mean(t2[:, 0].numpy() * test_sign)) < 0.05 and abs(np.mean(t2[:, 1].numpy() * test_sign)) < 0.05
    product = (t2[:, 0] * t2[:, 1]).numpy() * test_sign
    assert np.mean(product) == pytest.approx(cfg["beta2"] ** 2 * cfg["present"], abs=0.1)


def test_statistics_helpers():
    example = load_example()
    mean, half = example.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-4)  # t(0.975, 2)
    r, (lo, hi) = example.correlation_ci(np.arange(10.0), 2 * np.arange(10.0) + 1)
    assert r == pytest.approx(1.0) and lo > 0.99
    x = np.random.default_rng(1).normal(size=200)
    r, (lo, hi) = example.correlation_ci(x, -x + np.random.default_rng(2).normal(size=200))
    assert lo < r < hi and r == pytest.approx(-1 / np.sqrt(2), abs=0.1)
