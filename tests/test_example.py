"""The modality-competition example runs end to end in its reduced mode."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "modality_competition.py"


def test_modality_competition_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("modality_competition", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main(["--quick", "--seeds", "1", "--out", str(tmp_path)])
    for key in ("unimodal x1", "unimodal x2", "naive joint", "two-stage", "naive probe x2", "two-stage probe x2"):
        mean, _ = summary[key]
        assert 0.4 <= mean <= 1.0, key  # accuracies of a binary task
    # the strong modality alone beats chance clearly
    assert summary["unimodal x1"][0] > 0.6
    assert (tmp_path / "pid_trajectory-quick.png").stat().st_size > 1000
    assert (tmp_path / "modality_competition-quick.json").exists()
