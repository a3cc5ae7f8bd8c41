"""fastpid: fast, exact, certified partial information decomposition (BROJA).

    >>> import numpy as np, fastpid
    >>> P = np.zeros((2, 2, 2)); P[0, 0, 0] = P[0, 1, 1] = P[1, 0, 1] = P[1, 1, 0] = 0.25  # XOR
    >>> r = fastpid.decompose(P)
    >>> round(float(r.synergy), 6)
    1.0

Public names: :func:`decompose` (two sources, or three with ``sources=3``: :class:`PID3Result`),
:class:`PIDResult`, :func:`union_information` (k sources, :class:`UnionResult`), :func:`estimate` (samples to a
bias-corrected PID with intervals, :class:`Estimate`, :class:`Discretiser`,
:class:`FewSamplesWarning`), :class:`TwoStageController`,
:func:`build_info`, and the modules :mod:`fastpid.info` (entropies and mutual informations),
:mod:`fastpid.proxies` (per-modality MI and ECS proxies) and :mod:`fastpid.reference` (an
independent CVXPY solver, needs the ``reference`` extra).
"""
from . import _C, info, proxies
from .controller import Decision, TwoStageController
from .core import decompose
from .estimate import Discretiser, Estimate, FewSamplesWarning, estimate
from .result import PID3Result, PIDResult, UnionResult
from .sources import union_information

__version__ = _C.build_info()["version"]


def build_info() -> dict:
    """How the native core was built and which one runs: ``version``, ``compiler``,
    ``openmp`` (bool), ``max_threads`` (OpenMP threads available), ``cuda`` (bool),
    ``cuda_architectures``, ``cpu_path`` (the core module this CPU runs: ``native`` for a build
    tuned to the machine that compiled it; in a portable build ``x86_64_v4`` (AVX-512),
    ``x86_64_v3`` (AVX2 and FMA), ``x86_64`` or ``baseline``), ``cpu_paths`` (those installed)
    and ``x86_64_level`` (what this CPU supports: 1, 3 or 4; 0 off x86)."""
    from . import _cpu

    return dict(_C.build_info(), cpu_path=_C.CPU_PATH, cpu_paths=_C.installed_paths(), x86_64_level=_cpu.x86_64_level())


def __getattr__(name):
    # fastpid.reference imports cvxpy, which is optional: load it on first use only.
    if name == "reference":
        import importlib

        return importlib.import_module(".reference", __name__)
    raise AttributeError(f"module 'fastpid' has no attribute {name!r}")


__all__ = [
    "decompose", "PIDResult", "PID3Result", "union_information", "UnionResult", "estimate", "Estimate", "Discretiser", "FewSamplesWarning", "TwoStageController", "Decision",
    "build_info", "info", "proxies", "reference", "__version__",
]
