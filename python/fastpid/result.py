"""The result object returned by every decomposition."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

import numpy as np

ATOMS = ("redundancy", "unique1", "unique2", "synergy")
MEASURES = ATOMS + ("mi_x1", "mi_x2", "mi_joint", "bound")


class _Fields:
    """What every result class shares: its batch shape (that of its first field), to_dict and
    a one-line repr of its ``_MEASURES``."""

    _MEASURES: tuple = ()

    @property
    def batch_shape(self):
        """Shape of the batch (``()`` for a single distribution)."""
        return tuple(getattr(self, fields(self)[0].name).shape)

    def to_dict(self) -> dict:
        """Plain Python values (floats, bools, ints, nested lists) for logging or JSON."""
        return _to_dict(self)

    def __repr__(self) -> str:
        return _repr(self, self._MEASURES)


def _to_dict(result) -> dict:
    """A result's fields as plain Python values, but its coupling (as large as the input)."""
    out = {}
    for f in fields(result):
        v = getattr(result, f.name)
        if f.name == "coupling":
            continue
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def _repr(result, measures) -> str:
    """One line: the unit, method and batch shape, then each of ``measures``, converged and
    iterations (a batch's fields as their range)."""
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

    shape = result.batch_shape
    head = f"{type(result).__name__}(unit={result.unit!r}, method={result.method!r}"
    head += f", batch_shape={shape}" if shape else ""
    body = ", ".join(f"{name}={fmt(getattr(result, name))}" for name in measures + ("converged", "iterations"))
    return f"{head}, {body})"


@dataclass(frozen=True, repr=False)
class PIDResult(_Fields):
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

    _MEASURES = MEASURES


# The trivariate maximum-entropy decomposition's eight terms (docs/design.md section 7), in the
# order of MAXENT3D_PID's names (CI, SI, UIX, UIY, UIZ, UIXY, UIXZ, UIYZ).
TERMS3 = ("synergy", "redundancy", "unique1", "unique2", "unique3", "shared12", "shared13", "shared23")
INFORMATIONS3 = ("mi_x1", "mi_x2", "mi_x3", "mi_x12", "mi_x13", "mi_x23", "mi_joint")
MEASURES3 = TERMS3 + INFORMATIONS3 + ("bound",)


@dataclass(frozen=True, repr=False)
class PID3Result(_Fields):
    """The trivariate maximum-entropy decomposition (Chicharro 2017; the terms MAXENT3D_PID
    computes) of one distribution P(X1, X2, X3, Y) or a batch: ``fastpid.decompose(P,
    sources=3)``.

    Every field is an array (numpy) or tensor (torch, on the input's device) of the batch shape
    ``(...)`` of ``P`` of shape ``(..., n1, n2, n3, ny)``. With max H the largest conditional
    entropy over the couplings Q with P's (Xi, Y) marginals, and H without "max" P's own:

    Attributes:
        synergy: CI = max H(Y|X1X2X3) - H(Y|X1X2X3): what only the three sources together tell
            about Y (xor of three bits: 1 bit, which every pairwise PID misses).
        redundancy: SI, what each of the three tells: I(X1X2X3;Y) minus the seven other terms.
        unique1: UIX = max H(Y|X2X3) - max H(Y|X1X2X3): what X1 tells and neither X2 nor X3
            does (unique2: UIY, unique3: UIZ alike).
        shared12: UIXY = max H(Y|X1X2X3) + H(Y|X3) - max H(Y|X1X3) - max H(Y|X2X3): what X1 and
            X2 each tell and X3 does not (shared13: UIXZ, shared23: UIYZ alike).
        mi_x1, mi_x2, mi_x3: I(Xi;Y).
        mi_x12, mi_x13, mi_x23: I(XiXj;Y).
        mi_joint: I(X1X2X3;Y), the sum of the eight terms.
        bound: certified upper bound on the absolute error of every one of the eight terms:
            the sum of the certified gaps of the four optimisation problems (the 3-source union
            problem and BROJA's on each pair), each term a signed sum of at most all four
            optimal values (with coefficients +-1).
        converged: True where ``bound <= tol``; never True for a NaN result.
        iterations: interior-point iterations of the four problems together.
        unit: "bits", "nats" or "log<b>".
        method: the method of the pairwise problems ("exact" or "refine"; the 3-source problem
            is always solved by its interior-point method).
    """

    synergy: Any
    redundancy: Any
    unique1: Any
    unique2: Any
    unique3: Any
    shared12: Any
    shared13: Any
    shared23: Any
    mi_x1: Any
    mi_x2: Any
    mi_x3: Any
    mi_x12: Any
    mi_x13: Any
    mi_x23: Any
    mi_joint: Any
    bound: Any
    converged: Any
    iterations: Any
    unit: str = "bits"
    method: str = "exact"

    _MEASURES = MEASURES3


UNION_MEASURES = ("union", "synergy", "mi_joint", "entropy_y", "bound")


@dataclass(frozen=True, repr=False)
class UnionResult(_Fields):
    """The k-source union information of one distribution P(X1, ..., Xk, Y) or a batch:
    ``fastpid.union_information(P, sources=k)``.

    Fields of the batch shape ``(...)`` of ``P`` of shape ``(..., n1, ..., nk, ny)`` (numpy or
    torch, as ``P``), but ``mi_sources``:

    Attributes:
        union: UI_k = H(Y) - max H_Q(Y | X1..Xk) over the couplings Q with P's (Xi, Y)
            marginals: the least information about Y that any joint distribution of the sources
            with the same single-source relations carries (for k = 2, R + U1 + U2).
        synergy: I(X1..Xk; Y) - union: what only the sources' joint relation adds.
        mi_joint: I(X1..Xk; Y).
        entropy_y: H(Y).
        mi_sources: I(Xi; Y) of each source, shape ``(..., k)``.
        bound: certified upper bound on the absolute error of ``union`` and ``synergy``.
        converged: True where ``bound <= tol``; never True for a NaN result.
        iterations: interior-point iterations.
        sources: k.
        unit: "bits", "nats" or "log<b>".
        method: "exact" (the k-source interior-point method; for k = 2 that of decompose).
    """

    union: Any
    synergy: Any
    mi_joint: Any
    entropy_y: Any
    mi_sources: Any
    bound: Any
    converged: Any
    iterations: Any
    sources: int = 2
    unit: str = "bits"
    method: str = "exact"

    _MEASURES = UNION_MEASURES
