"""The three-modalities example runs end to end in its reduced mode and finds what it is built to
show: pairwise PID misses the three-way synergy that sources=3 finds."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
THREE = Path(__file__).resolve().parents[1] / "examples" / "three_modalities.py"


def test_three_modalities_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("three_modalities", THREE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--out", str(tmp_path)])
    exact = result["exact"]
    for atoms in exact["pairwise"].values():  # no pair tells anything about the xor of three
        assert all(abs(v) < 1e-9 for v in atoms.values())
    assert exact["three"]["synergy"] == pytest.approx(1.0, abs=1e-9)
    noisy = result["noisy"]
    for est in noisy["pairwise"].values():
        assert abs(est["values"]["synergy"]) < 0.03
    # the estimate from clustered features finds the population's three-way synergy and the
    # video modality's unique information (within 0.06 bits: 3,000 samples)
    for term in ("synergy", "unique1"):
        assert noisy["three"]["values"][term] == pytest.approx(noisy["population"][term], abs=0.06), term
    assert noisy["population"]["synergy"] > 0.35 and noisy["population"]["unique1"] > 0.04
    assert (tmp_path / "three_modalities-quick.png").stat().st_size > 1000
