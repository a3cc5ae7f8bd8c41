"""Shared benchmark harness: timing with warm-up and repeats, machine and version capture,
JSON output and printed tables. Every script checks its answers before it times anything."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> Dict:
    """The machine and library versions a result was measured with."""
    info = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }
    import fastpid

    info["fastpid"] = fastpid.build_info()
    for name in ("numpy", "torch", "cvxpy", "clarabel", "scs", "ecos", "dit"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "unknown")
        except Exception:  # not installed: recorded as such
            info[name] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1, budget_s: Optional[float] = None) -> Dict:
    """Wall-clock seconds of fn(): warm-up calls, then up to `repeats` timed calls (fewer if
    `budget_s` would be exceeded). Returns median, min, max and the count."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start_all = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start_all > budget_s:
            break
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times)}


def write_json(name: str, payload: Dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2, default=_jsonable))
    return path


def load_json(name: str) -> Dict:
    """A results file written by write_json, or {} when there is none yet."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def _jsonable(x):
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:
        pass
    return str(x)


def table(rows: List[Dict], columns: List[str], formats: Dict[str, str] = None) -> str:
    """Plain-text table of dict rows."""
    formats = formats or {}
    cells = [[_fmt(r.get(c), formats.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _fmt(v, spec):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if spec:
        return format(v, spec)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
