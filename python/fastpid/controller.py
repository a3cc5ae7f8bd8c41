"""A reference two-stage training controller that uses PID to prevent modality competition
(after Tang et al. 2025): train each modality alone first, keep them balanced by their unique
information, and start joint training once synergy has peaked.

The controller is framework-agnostic: the caller trains, and every ``probe_every`` epochs
gives it the current decomposition (a :class:`~fastpid.PIDResult`, a dict of atoms, or
features and labels to estimate one from); it answers with a :class:`Decision`.

Stage "unimodal": both unimodal branches train ("both") until one modality's unique
information exceeds the other's by ``ratio``; then only the weaker one trains until the
imbalance is gone (each change of the trained set counts as a switch). Joint training starts
when synergy falls below ``synergy_fraction`` of its peak (``reason`` says so, and
``peak_epoch`` names the epoch whose checkpoint holds the peak), after ``max_switches``
switches, or at ``max_epoch``; ``joint_trigger`` records which ("synergy", "max_switches" or
"max_epoch"), and ``joint_start_epoch`` the checkpoint to start joint training from (the
synergy peak when synergy triggered it, else the epoch of the decision).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class Decision:
    """What to train after a probe: ``stage`` ("unimodal" or "joint"), ``train`` (the
    modalities to train: ("x1", "x2"), ("x1",), ("x2",) or ("joint",)) and the ``reason``."""

    epoch: int
    stage: str
    train: tuple
    reason: str


@dataclass
class TwoStageController:
    """See the module documentation. All thresholds are keyword arguments."""

    ratio: float = 3.0
    synergy_fraction: float = 0.8
    max_switches: int = 4
    max_epoch: Optional[int] = None
    probe_every: int = 1
    min_unique: float = 1e-3  # bits: below this both unique informations count as equal
    stage: str = "unimodal"
    training: tuple = ("x1", "x2")
    switches: int = 0
    peak_synergy: float = float("-inf")
    peak_epoch: Optional[int] = None
    joint_trigger: Optional[str] = None
    joint_start_epoch: Optional[int] = None
    history: List[Dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        if self.ratio <= 1:
            raise ValueError("ratio must be > 1")
        if not 0 < self.synergy_fraction < 1:
            raise ValueError("synergy_fraction must be in (0, 1)")
        if self.probe_every < 1:
            raise ValueError("probe_every must be >= 1")

    def should_probe(self, epoch: int) -> bool:
        """True on the epochs the controller wants a new measurement."""
        return self.stage == "unimodal" and epoch % self.probe_every == 0

    def update(self, epoch: int, pid=None, *, x1=None, x2=None, y=None, **estimate_kwargs) -> Decision:
        """Record a probe at ``epoch`` and decide what to train next.

        ``pid``: a PIDResult or a mapping with "unique1", "unique2", "synergy" (and optionally
        "redundancy"); or pass ``x1``, ``x2``, ``y`` to estimate it with :func:`fastpid.estimate`.
        """
        if pid is None:
            if x1 is None or x2 is None or y is None:
                raise ValueError("give either pid or x1, x2 and y")
            from .estimate import estimate

            # the plug-in atoms (as in the FastPID paper); the controller compares them with
            # each other and over time, so the bias correction's extra solves are skipped
            estimate_kwargs.setdefault("bias_correction", None)
            pid = estimate(x1, x2, y, **estimate_kwargs).pid
        atoms = {k: float(_get(pid, k)) for k in ("unique1", "unique2", "synergy")}
        if self.stage == "joint":
            return self._decide(epoch, atoms, "joint training already started")
        if atoms["synergy"] > self.peak_synergy:
            self.peak_synergy, self.peak_epoch = atoms["synergy"], epoch
        if self.max_epoch is not None and epoch >= self.max_epoch:
            return self._start_joint(epoch, atoms, "max_epoch", f"reached max_epoch={self.max_epoch}")
        if self.peak_synergy > 0 and atoms["synergy"] < self.synergy_fraction * self.peak_synergy:
            return self._start_joint(
                epoch, atoms, "synergy",
                f"synergy {atoms['synergy']:.4g} fell below {self.synergy_fraction:g} x its peak "
                f"{self.peak_synergy:.4g} (epoch {self.peak_epoch})",
            )
        u1, u2 = atoms["unique1"], atoms["unique2"]
        if max(u1, u2) < self.min_unique:
            wanted, why = ("x1", "x2"), "both unique informations are negligible"
        elif u1 > self.ratio * max(u2, self.min_unique / self.ratio):
            wanted, why = ("x2",), f"U1 {u1:.4g} > {self.ratio:g} x U2 {u2:.4g}: train the weaker x2"
        elif u2 > self.ratio * max(u1, self.min_unique / self.ratio):
            wanted, why = ("x1",), f"U2 {u2:.4g} > {self.ratio:g} x U1 {u1:.4g}: train the weaker x1"
        else:
            wanted, why = ("x1", "x2"), f"balanced (U1 {u1:.4g}, U2 {u2:.4g})"
        if wanted != self.training:
            self.switches += 1
            self.training = wanted
            why += f" (switch {self.switches})"
            if self.switches >= self.max_switches:
                return self._start_joint(epoch, atoms, "max_switches", f"{why}; reached max_switches={self.max_switches}")
        return self._decide(epoch, atoms, why)

    def _start_joint(self, epoch, atoms, trigger, reason) -> Decision:
        self.stage, self.training, self.joint_trigger = "joint", ("joint",), trigger
        self.joint_start_epoch = self.peak_epoch if trigger == "synergy" else epoch
        return self._decide(epoch, atoms, reason)

    def _decide(self, epoch, atoms, reason) -> Decision:
        decision = Decision(epoch, self.stage, self.training, reason)
        self.history.append({"epoch": epoch, **atoms, "stage": self.stage, "train": list(self.training), "reason": reason})
        return decision

    # -- checkpoint / resume ---------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume (JSON-serialisable)."""
        state = asdict(self)
        state["training"] = list(self.training)
        return state

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> "TwoStageController":
        state = dict(state)
        state["training"] = tuple(state["training"])
        return cls(**state)

    def to_json(self) -> str:
        return json.dumps(self.state_dict())

    @classmethod
    def from_json(cls, text: str) -> "TwoStageController":
        return cls.from_state_dict(json.loads(text))


def _get(pid, key):
    value = pid[key] if isinstance(pid, dict) else getattr(pid, key)
    return value.item() if hasattr(value, "item") else value


__all__ = ["TwoStageController", "Decision"]
