import pytest

from fastpid.controller import TwoStageController


def feed(controller, sequence):
    return [controller.update(epoch, {"unique1": u1, "unique2": u2, "synergy": s}) for epoch, (u1, u2, s) in enumerate(sequence)]


def test_switches_to_the_weaker_modality_and_back():
    c = TwoStageController(ratio=3.0)
    d = feed(c, [(0.10, 0.09, 0.1), (0.40, 0.10, 0.2), (0.40, 0.30, 0.3)])
    assert d[0].train == ("x1", "x2") and d[0].stage == "unimodal"
    assert d[1].train == ("x2",) and "train the weaker x2" in d[1].reason
    assert d[2].train == ("x1", "x2") and c.switches == 2


def test_joint_training_starts_after_the_synergy_peak():
    c = TwoStageController(synergy_fraction=0.8)
    d = feed(c, [(0.1, 0.1, 0.2), (0.1, 0.1, 0.5), (0.1, 0.1, 0.45), (0.1, 0.1, 0.39)])
    assert [x.stage for x in d] == ["unimodal", "unimodal", "unimodal", "joint"]
    assert c.peak_epoch == 1 and "fell below 0.8 x its peak" in d[-1].reason
    assert c.joint_trigger == "synergy" and c.joint_start_epoch == 1  # restart from the peak's checkpoint
    # once joint, it stays joint
    assert c.update(4, {"unique1": 0, "unique2": 5, "synergy": 9}).stage == "joint"
    assert not c.should_probe(5)


def test_limits_on_switches_and_epochs():
    c = TwoStageController(max_switches=2)
    d = feed(c, [(1.0, 0.1, 0.3), (0.1, 1.0, 0.3)])
    assert d[-1].stage == "joint" and "max_switches=2" in d[-1].reason
    assert c.joint_trigger == "max_switches" and c.joint_start_epoch == 1
    c = TwoStageController(max_epoch=2)
    d = feed(c, [(0.1, 0.1, 0.3)] * 3)
    assert d[1].stage == "unimodal" and d[2].stage == "joint" and "max_epoch" in d[2].reason
    assert c.joint_trigger == "max_epoch" and c.joint_start_epoch == 2


def test_resume_from_checkpoint_continues_identically():
    seq = [(0.1, 0.1, 0.2), (0.5, 0.1, 0.4), (0.5, 0.4, 0.5), (0.2, 0.2, 0.45), (0.2, 0.2, 0.3)]
    full = TwoStageController()
    expected = feed(full, seq)
    half = TwoStageController()
    feed(half, seq[:2])
    resumed = TwoStageController.from_json(half.to_json())
    rest = [resumed.update(e, {"unique1": a, "unique2": b, "synergy": s}) for e, (a, b, s) in list(enumerate(seq))[2:]]
    assert rest == expected[2:]
    assert resumed.history == full.history


def test_update_from_samples_and_bad_arguments():
    import numpy as np

    rng = np.random.default_rng(0)
    x1, x2 = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    c = TwoStageController()
    d = c.update(0, x1=x1, x2=x2, y=x1 ^ x2)
    assert c.history[0]["synergy"] == pytest.approx(1.0, abs=0.02) and d.stage == "unimodal"
    with pytest.raises(ValueError):
        c.update(1)
    with pytest.raises(ValueError):
        TwoStageController(ratio=1.0)
