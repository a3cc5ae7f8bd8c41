"""The native core: whichever compiled module fits this machine, under one name.

A native build (``pip install .``) has one core module, ``_core_native``, built for the
machine that compiled it. A portable build (a wheel, ``FASTPID_NATIVE=OFF``) has one per
instruction-set level, and this module loads the best one the running CPU supports, once, at
import: on x86-64 ``_core_x86_64_v4`` (AVX-512), ``_core_x86_64_v3`` (AVX2 and FMA) or
``_core_x86_64`` (the baseline); elsewhere ``_core_baseline``. ``fastpid.build_info()["cpu_path"]``
says which one runs. The environment variable ``FASTPID_CPU_PATH`` (e.g. ``x86_64``) picks one
of the installed paths instead, for comparisons; a path the CPU does not support is refused.
Every other module of fastpid imports the core as ``from . import _C``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os

from . import _cpu

# Best first: (the path's name, the x86-64 level it needs; 0: any CPU of its architecture).
PATHS = (("native", 0), ("x86_64_v4", 4), ("x86_64_v3", 3), ("x86_64", 1), ("baseline", 0))


def installed_paths() -> list:
    """The core modules this installation has, best first."""
    return [name for name, _ in PATHS if importlib.util.find_spec(f"{__package__}._core_{name}") is not None]


def supported(name: str) -> bool:
    level = dict(PATHS)[name]
    return level == 0 or _cpu.x86_64_level() >= level


def _choose() -> str:
    installed = installed_paths()
    if not installed:
        raise ImportError("fastpid's native core is missing: reinstall fastpid (pip install --force-reinstall fastpid)")
    wanted = os.environ.get("FASTPID_CPU_PATH", "").strip()
    if wanted:
        if wanted not in installed:
            raise ImportError(f"FASTPID_CPU_PATH={wanted!r}: this installation has {', '.join(installed)}")
        if not supported(wanted):
            raise ImportError(f"FASTPID_CPU_PATH={wanted!r}: this CPU lacks the instructions it needs")
        return wanted
    return next(name for name in installed if supported(name))


CPU_PATH = _choose()
_core = importlib.import_module(f"{__package__}._core_{CPU_PATH}")
globals().update({k: v for k, v in vars(_core).items() if not k.startswith("__")})
