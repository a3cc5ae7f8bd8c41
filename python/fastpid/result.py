"""The result object returned by every decomposition."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

import numpy as np

ATOMS = ("redundancy", "unique1", "unique2", "synergy")
MEASURES = ATOMS + ("mi_x1", "mi_x2", "mi_joint", "bound")


@dataclass(frozen=True)
class PIDResult:
    """Partial information decomposition of one distribution or a batch.

    Every field is an array (numpy) or tensor (torch, on the input's device) of the batch
    shape ``(...)`` of the input ``P`` of shape ``(..., n1, n2, ny)``; for a single
    distribution the batch shape is ``()``.

    Attributes:
        redundancy: information about Y shared by X1 and X2 (R).
        unique1: information about Y only X1 has (U1).
        unique2: information about Y only X2 has (U2).
        synergy: information about Y only X1 and X2 together have (S).
        mi_x1: I(X1;Y) = R + U1.
        mi_x2: I(X2;Y) = R + U2.
        mi_joint: I(X1,X2;Y) = R + U1 + U2 + S.
        bound: certified upper bound on the absolute error of each of the four atoms
            (from the duality gap of the solve; 0 up to rounding for closed-form cases).
        converged: True where ``bound <= tol``; never True for a NaN result.
        iterations: solver iterations spent on each distribution.
        unit: "bits" (``base=2``), "nats" (``base=e``), or "log<b>" for another base.
        method: "exact", "refine" or "proxy".
        coupling: the optimal coupling Q of shape ``(..., n1, n2, ny)`` (a feasible point of
            the BROJA program that attains the reported values), or None unless requested.
    """

    redundancy: Any
    unique1: Any
    unique2: Any
    synergy: Any
    mi_x1: Any
    mi_x2: Any
    mi_joint: Any
    bound: Any
    converged: Any
    iterations: Any
    unit: str = "bits"
    method: str = "exact"
    coupling: Optional[Any] = field(default=None, repr=False)

    @property
    def batch_shape(self):
        """Shape of the batch (``()`` for a single distribution)."""
        return tuple(self.redundancy.shape)

    def to_dict(self) -> dict:
        """Plain Python values (floats, bools, ints, nested lists) for logging or JSON."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "coupling":
                continue
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def __repr__(self) -> str:
        def fmt(v):
            if type(v).__module__.startswith("dask"):  # fastpid.dask's lazy fields: never computed by a repr
                return f"<lazy {tuple(v.shape)}>"
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            v = np.asarray(v)
            if v.ndim == 0:
                return f"{v.item():.6g}" if v.dtype.kind == "f" else str(v.item())
            if v.dtype == bool:
                return f"[{int(v.sum())}/{v.size} True]"
            return f"[min {np.nanmin(v):.6g}, max {np.nanmax(v):.6g}]" if v.size else "[]"

        shape = self.batch_shape
        head = f"PIDResult(unit={self.unit!r}, method={self.method!r}"
        head += f", batch_shape={shape}" if shape else ""
        body = ", ".join(f"{name}={fmt(getattr(self, name))}" for name in MEASURES + ("converged", "iterations"))
        return f"{head}, {body})"
