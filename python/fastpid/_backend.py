"""Input handling shared by every entry point: validation, batching and conversion between
numpy arrays, torch tensors and the float64 arrays the native kernels take."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

from . import _C

NORMALISATION_TOLERANCE = 1e-6


def is_torch(x: Any) -> bool:
    """True when ``x`` is a torch tensor (without importing torch when it is absent)."""
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach")


@dataclass(frozen=True)
class Kind:
    """Where the caller's data lives, so results go back in the same form."""

    torch: bool
    dtype: Any  # numpy dtype or torch dtype of the results
    device: Any = None  # torch device, when torch

    def wrap(self, array: np.ndarray):
        """numpy float64 array -> caller's library, dtype and device."""
        if self.torch:
            import torch

            return torch.as_tensor(np.ascontiguousarray(array)).to(device=self.device, dtype=self.dtype)
        return np.asarray(array, dtype=self.dtype)

    def wrap_index(self, array: np.ndarray):
        """Integer or boolean per-distribution fields (no float cast)."""
        if self.torch:
            import torch

            return torch.as_tensor(np.ascontiguousarray(array)).to(device=self.device)
        return np.asarray(array)


def kind_of(P: Any) -> Kind:
    if is_torch(P):
        import torch

        dtype = P.dtype if P.dtype in (torch.float32, torch.float64) else torch.float64
        return Kind(True, dtype, P.device)
    arr = np.asarray(P)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return Kind(False, np.dtype(dtype))


def _batch_index(flat_index: int, batch_shape: Tuple[int, ...]):
    if not batch_shape:
        return "P"
    idx = np.unravel_index(flat_index, batch_shape)
    return "P[" + ", ".join(str(int(i)) for i in idx) + "]"


def check_shape(shape: Tuple[int, ...], *, name: str = "P", min_rank: int = 3) -> None:
    """Raises ValueError unless ``shape`` is ``(..., n1, n2, ny)`` with every axis >= 1."""
    if len(shape) < min_rank:
        raise ValueError(f"{name} must have shape (..., n1, n2, ny) with at least {min_rank} dimensions, got shape {tuple(shape)}")
    if any(n < 1 for n in shape[len(shape) - min_rank:]):
        raise ValueError(f"{name} has an empty axis: shape {tuple(shape)}")


def as_flat(P: Any, *, name: str = "P", min_rank: int = 3):
    """``(flat, batch_shape, kind)`` for a numpy-like ``P`` of shape ``(..., n1, n2, ny)``:
    ``flat`` of shape ``(batch, n1, n2, ny)`` in P's own dtype, a view where P's layout allows
    (no conversion: see _run.solve_batch). Raises ValueError on a non-numeric or complex dtype,
    a wrong rank or an empty axis."""
    kind = kind_of(P)
    arr = np.asarray(P)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    check_shape(arr.shape, name=name, min_rank=min_rank)
    core = arr.shape[arr.ndim - min_rank:]
    return arr.reshape((-1,) + core), tuple(arr.shape[: arr.ndim - min_rank]), kind


def to_batch(P: Any, *, normalize: bool, name: str = "P", min_rank: int = 3):
    """Validates ``P`` of shape ``(..., n1, n2, ny)`` and returns ``(flat, batch_shape, kind)``
    with ``flat`` a C-contiguous float64 numpy array of shape ``(batch, n1, n2, ny)``, each
    distribution divided by its total (the whole batch at once: decompose goes a chunk at a
    time instead, _run.solve_batch).

    Raises ValueError naming the first bad distribution: wrong rank, empty axis, NaN or
    infinite entry, negative entry, zero total mass, or (unless ``normalize``) a total that
    differs from 1 by more than 1e-6.
    """
    if is_torch(P):
        kind = kind_of(P)
        P = P.detach().to("cpu", dtype=__import__("torch").float64).numpy()
        flat, batch_shape, _ = as_flat(P, name=name, min_rank=min_rank)
    else:
        flat, batch_shape, kind = as_flat(P, name=name, min_rank=min_rank)
    flat = np.ascontiguousarray(flat, dtype=np.float64)
    if flat.shape[0] == 0:
        return flat, batch_shape, kind
    return check_flat(flat, batch_shape, normalize=normalize, min_rank=min_rank), batch_shape, kind


def check_flat(flat: np.ndarray, batch_shape: Tuple[int, ...] = (), *, normalize: bool = False, min_rank: int = 3) -> np.ndarray:
    """The per-distribution checks of :func:`to_batch` on a float64 array (batch, ...);
    returns the distributions divided by their totals."""
    total, nonfinite, negative = _C.input_totals(flat)  # one pass instead of numpy's three
    failing = bad_distributions(nonfinite, negative, total, normalize)
    for check, bad in enumerate(failing):
        if bad.any():
            i = int(np.argmax(bad))
            raise_bad_distribution(check, i, batch_shape, float(total[i]))
    # Dividing by the total also removes a rounding-level deviation from 1, so the
    # marginals the solver sees are exactly consistent.
    return flat / total.reshape((-1,) + (1,) * min_rank)


# The input checks, in the order they are reported (the first failing check names the first
# distribution that fails it).
BAD_INPUT_REASONS = (
    "contains NaN or infinite entries",
    "has a negative entry",
    "has zero total mass",
    "is not normalised",
)


def bad_distributions(nonfinite, negative, total, normalize: bool):
    """Per-check masks over the batch (numpy or torch alike), in BAD_INPUT_REASONS order."""
    not_normalised = (abs(total - 1.0) > NORMALISATION_TOLERANCE) & (not normalize)
    return nonfinite, negative, total <= 0, not_normalised


def raise_bad_distribution(check: int, i: int, batch_shape: Tuple[int, ...], total: float):
    """Raises the ValueError of failing check ``check`` (an index into BAD_INPUT_REASONS) for
    flat batch index ``i``; ``total`` is that distribution's sum."""
    where = f"{_batch_index(i, batch_shape)} (batch index {i})"
    if check == 3:
        raise ValueError(
            f"{where} is not normalised: it sums to {total!r}; pass normalize=True to accept counts or unnormalised weights"
        )
    raise ValueError(f"{where} {BAD_INPUT_REASONS[check]}")


def unit_of(base) -> Tuple[str, float]:
    """Returns the unit name and log(base) for a logarithm base (2 -> bits, e -> nats)."""
    if isinstance(base, str):
        names = {"bits": 2.0, "bit": 2.0, "nats": math.e, "nat": math.e}
        if base not in names:
            raise ValueError(f"base must be 2, math.e, 'bits' or 'nats', got {base!r}")
        base = names[base]
    base = float(base)
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"base must be a positive number other than 1, got {base!r}")
    if base == 2.0:
        return "bits", math.log(2.0)
    if abs(base - math.e) < 1e-12:
        return "nats", 1.0
    return f"log{base:g}", math.log(base)
