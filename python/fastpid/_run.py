"""How a batch call runs: in chunks of the batch, with a progress report, and on how many threads.

``decompose`` (numpy input, and torch tensors on the CPU through the ``fastpid::decompose`` op)
never converts the whole batch: each chunk is converted to float64, checked, normalised, solved
and its mutual informations taken, and its results are written into outputs allocated once. So
the memory a call needs above its input is one chunk's temporaries (CHUNK_BYTES) plus the
outputs (a few numbers per distribution, and the coupling when asked for), whatever the batch's
size and dtype. Ctrl-C is seen by the native kernels themselves (csrc/cpu/run_control.hpp) and
between chunks.

Chunk sizes are set as the call runs: the first chunk is small (FIRST_CHUNK_ROWS per thread), and
each later one is sized from the time per distribution measured so far to take about
CHUNK_SECONDS, within the memory cap. That rule, rather than a fixed count, because the time per
distribution spans six orders of magnitude between shapes and methods (2x2x2 proxy: 1 us; dense
64^3 refine: 0.6 s): a fixed count would either report progress once a minute or pay the
per-chunk overhead (about 30 us of Python and a thread team's start) on every few microseconds of
work. Measured in benchmarks/bench_large.py (results/large.json).
"""
from __future__ import annotations

import contextvars
import sys
import time
from typing import Callable, Optional, Union

import numpy as np

from . import _C
from ._backend import bad_distributions, raise_bad_distribution
from ._solve import choose_method, evenly_spaced, solve_flat

# Temporaries of one chunk at most (the float64 copy of the chunk, the kernel's coupling when
# asked): with the outputs, a call's peak above its input stays under 0.5x the input + 256 MiB.
CHUNK_BYTES = 64 << 20
CHUNK_SECONDS = 0.25     # target time of a chunk: progress four times a second, Ctrl-C between
FIRST_CHUNK_ROWS = 16    # per thread: the first chunk, whose time sizes the next ones
CHUNK_GROWTH = 8         # a chunk is at most this many times the previous one (a noisy first time)
PROGRESS_AFTER_SECONDS = 3.0  # progress=None: a bar on a terminal for calls predicted longer

ProgressArg = Union[None, bool, Callable[[int, int], None]]
# The progress argument of the decompose call in flight, for the torch op (whose schema takes
# no callables): set by decompose around the op.
CURRENT_PROGRESS: contextvars.ContextVar = contextvars.ContextVar("fastpid_progress", default=None)


def threads_of(threads: Optional[int]) -> int:
    """The thread count the native kernels take for ``threads`` (None or 0: all)."""
    if threads is None:
        return 0
    threads = int(threads)
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 or None: all), got {threads}")
    return threads


def memory_rows(per_distribution: int, coupling: bool) -> int:
    """The most distributions of ``per_distribution`` entries a chunk holds within CHUNK_BYTES."""
    per_row = 8 * per_distribution * (2 if coupling else 1) + 64
    return max(1, CHUNK_BYTES // per_row)


class ChunkPlan:
    """The chunks of a batch of ``batch`` distributions, sized as they run (module docstring):
    iterate for (start, stop) ranges; the loop body's time sizes the next range (``timed``; else
    every chunk is as large as the memory cap allows)."""

    def __init__(self, batch: int, per_distribution: int, coupling: bool, threads: int, timed: bool = True):
        self.batch, self.timed = batch, timed
        self.cap = memory_rows(per_distribution, coupling)
        self.rows = min(self.cap, FIRST_CHUNK_ROWS * max(1, threads or _C.max_threads())) if timed else self.cap
        self.done = 0
        self.seconds = 0.0

    def __iter__(self):
        while self.done < self.batch:
            start, stop = self.done, min(self.batch, self.done + self.rows)
            began = time.perf_counter()
            yield start, stop
            self.seconds += time.perf_counter() - began
            self.done = stop
            if not self.timed:
                continue
            per_row = self.seconds / self.done
            wanted = int(CHUNK_SECONDS / per_row) if per_row > 0 else self.cap
            self.rows = max(1, min(self.cap, self.rows * CHUNK_GROWTH, wanted))

    def predicted_seconds(self) -> float:
        """The whole call's time, extrapolated from the chunks so far."""
        return self.seconds / self.done * self.batch if self.done else 0.0


class Progress:
    """Progress of a batch call: ``progress`` True (a bar on stderr: tqdm when installed, a
    plain line otherwise), False (none), None (the bar, on a terminal only, for a call predicted
    after its first chunk to take more than PROGRESS_AFTER_SECONDS) or a callable
    ``progress(done, total)`` (called after every chunk, e.g. for loggers and notebooks)."""

    def __init__(self, progress: ProgressArg, total: int, label: str = "fastpid"):
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise TypeError(f"progress must be None, True, False or a callable(done, total), got {progress!r}")
        self.progress, self.total, self.label = progress, total, label
        self.bar = None
        self.began = time.perf_counter()
        self.plain = False

    def update(self, done: int, predicted_seconds: float) -> None:
        if self.progress is False:
            return
        if callable(self.progress) and not isinstance(self.progress, bool):
            self.progress(done, self.total)
            return
        if self.bar is None and not self.plain:
            if done >= self.total:
                return  # finished before any report was due
            wanted = self.progress is True or (predicted_seconds > PROGRESS_AFTER_SECONDS and _stderr_is_terminal())
            if not wanted:
                return
            self._open()
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        else:
            elapsed = time.perf_counter() - self.began
            left = elapsed / done * (self.total - done) if done else float("nan")
            sys.stderr.write(f"\r{self.label}: {done:,}/{self.total:,} distributions ({100 * done / self.total:.0f}%), "
                             f"{elapsed:.1f} s, about {left:.0f} s left ")
            sys.stderr.flush()

    def _open(self):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.plain = True
            return
        self.bar = tqdm(total=self.total, desc=self.label, unit="dist", file=sys.stderr, leave=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.plain:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def chunk_float64(flat: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Distributions start..stop of ``flat`` as a float64 array of their own (C order)."""
    return np.array(flat[start:stop], dtype=np.float64, order="C", copy=True)


def validate(flat: np.ndarray, batch_shape, normalize: bool) -> None:
    """The input checks of _backend.check_flat over the whole of ``flat`` (any real dtype),
    a chunk at a time: raises the ValueError naming the first bad distribution and the reason
    before anything is solved."""
    rows = memory_rows(int(np.prod(flat.shape[1:])), False)
    for start in range(0, len(flat), rows):
        stop = min(len(flat), start + rows)
        total, nonfinite, negative = _C.input_totals(chunk_float64(flat, start, stop))
        for check, bad in enumerate(bad_distributions(nonfinite, negative, total, normalize)):
            if bad.any():
                i = int(np.argmax(bad))
                raise_bad_distribution(check, start + i, batch_shape, float(total[i]))


def normalised(chunk: np.ndarray) -> np.ndarray:
    """``chunk`` (float64, its own storage, validated) divided in place by each distribution's
    total: also removes a rounding-level deviation from 1, so that the marginals the solver
    sees are exactly consistent."""
    if len(chunk) == 0:
        return chunk
    chunk /= chunk.reshape(len(chunk), -1).sum(1).reshape((-1,) + (1,) * (chunk.ndim - 1))
    return chunk


def solve_batch(flat: np.ndarray, method: str, tol_nats: float, max_iter: Optional[int], *, batch_shape=(),
                normalize: bool = False, coupling_dtype=None, duals: bool = False, threads: int = 0,
                progress: ProgressArg = None, checked: bool = False) -> dict:
    """Solves every distribution of ``flat`` (batch, n1, n2, ny), of any real dtype, chunk by
    chunk (module docstring). ``method`` as decompose's (``"auto"`` decided here from a sample
    of the batch). Returns numpy arrays over the batch: value, bound, converged, iterations,
    informations (batch, 4: I(X1;Y), I(X2;Y), I(X1,X2;Y), H(Y), nats), and coupling (in
    ``coupling_dtype``, when given) and dual1, dual2 (when ``duals``); and "method", the method
    that ran. Raises ValueError on bad input (before solving anything, unless ``checked``) and
    KeyboardInterrupt on Ctrl-C."""
    batch, shape = len(flat), tuple(int(n) for n in flat.shape[1:])
    n1, n2, ny = shape
    if not checked:
        validate(flat, batch_shape, normalize)
    if method == "auto":
        method = choose_method(shape, lambda: normalised(chunk_float64(evenly_spaced(flat), 0, None)))
    out = {
        "value": np.empty(batch), "bound": np.empty(batch), "converged": np.empty(batch, dtype=bool),
        "iterations": np.empty(batch, dtype=np.int32), "informations": np.empty((batch, 4)),
    }
    if coupling_dtype is not None:
        out["coupling"] = np.empty((batch,) + shape, dtype=coupling_dtype)
    if duals:
        out["dual1"], out["dual2"] = np.empty((batch, n1, ny)), np.empty((batch, n2, ny))
    plan = ChunkPlan(batch, n1 * n2 * ny, coupling_dtype is not None, threads)
    report = Progress(progress, batch)
    try:
        for start, stop in plan:
            chunk = normalised(chunk_float64(flat, start, stop))
            solved = solve_flat(chunk, method, tol_nats, max_iter, coupling_dtype is not None, duals, threads)
            for key, value in solved.items():
                out[key][start:stop] = value
            out["informations"][start:stop] = _C.informations_cpu(chunk, threads)
            report.update(stop, plan.predicted_seconds())
    finally:
        report.close()
    out["method"] = method
    return out
