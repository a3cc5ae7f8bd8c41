"""The ``fastpid`` command line: ``fastpid demo``, ``fastpid decompose FILE``, ``fastpid info``."""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import build_info, decompose
from .families import gates, histogram

ATOM_COLUMNS = ("redundancy", "unique1", "unique2", "synergy", "mi_joint", "bound")


def _table(rows, names):
    head = f"{'':<12}" + "".join(f"{c:>12}" for c in ATOM_COLUMNS) + f"{'iters':>7}"
    lines = [head]
    for name, r in zip(names, rows):
        vals = "".join(f"{float(r[c]):>12.6f}" if c != "bound" else f"{float(r[c]):>12.1e}" for c in ATOM_COLUMNS)
        lines.append(f"{name:<12}{vals}{int(r['iterations']):>7}")
    return "\n".join(lines)


def _rows(result):
    n = int(np.prod(result.batch_shape)) if result.batch_shape else 1
    fields = {c: np.asarray(getattr(result, c)).reshape(n) for c in ATOM_COLUMNS + ("iterations",)}
    return [{c: fields[c][i] for c in fields} for i in range(n)]


def demo(args) -> int:
    g = gates()
    names = list(g)
    print("Canonical gates (bits), exact solver:")
    for name in names:
        r = decompose(g[name][0], tol=args.tol)
        print(_table(_rows(r), [name]).splitlines()[-1] if name != names[0] else _table(_rows(r), [name]))
    rng = np.random.default_rng(args.seed)
    batch = np.stack([histogram(rng, 20, 20, 6, samples=1000) for _ in range(args.batch)])
    start = time.perf_counter()
    r = decompose(batch, tol=args.tol)
    elapsed = time.perf_counter() - start
    print(
        f"\nBatch of {args.batch} joint histograms 20x20x6 (1,000 samples each): {elapsed:.3f} s "
        f"({args.batch / elapsed:,.0f} distributions/s on {build_info()['max_threads']} threads)"
    )
    print(f"  converged: {int(np.sum(r.converged))}/{args.batch}, max certified bound {float(np.max(r.bound)):.1e} bits")
    for atom in ("redundancy", "unique1", "unique2", "synergy"):
        v = np.asarray(getattr(r, atom))
        print(f"  {atom:<10} mean {v.mean():.4f}  min {v.min():.4f}  max {v.max():.4f}")
    return 0


def _load(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            key = "P" if "P" in z else list(z.keys())[0]
            return z[key]
    if path.endswith(".csv"):
        # rows of "x1,x2,y,count" (a header line is allowed)
        data = np.genfromtxt(path, delimiter=",", names=None, skip_header=0)
        data = data[~np.isnan(data).any(axis=1)] if data.ndim == 2 else data.reshape(1, -1)
        idx = data[:, :3].astype(int)
        P = np.zeros(tuple(idx.max(axis=0) + 1))
        np.add.at(P, tuple(idx.T), data[:, 3])
        return P
    raise SystemExit(f"fastpid: unsupported file type: {path} (use .npy, .npz or .csv of x1,x2,y,count rows)")


def decompose_file(args) -> int:
    P = _load(args.file)
    r = decompose(P, method=args.method, tol=args.tol, normalize=args.normalize, base=2 if args.unit == "bits" else np.e)
    if args.json:
        json.dump(r.to_dict(), sys.stdout, indent=2)
        print()
    else:
        rows = _rows(r)
        print(f"unit: {r.unit}; method: {r.method}")
        print(_table(rows, [str(i) for i in range(len(rows))] if r.batch_shape else ["P"]))
    return 0


def info(args) -> int:
    print(json.dumps(build_info(), indent=2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastpid", description="Fast, exact, certified BROJA partial information decomposition")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="decompose the canonical gates and a batch of histograms")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--tol", type=float, default=1e-7)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    p = sub.add_parser("decompose", help="decompose P(X1,X2,Y) from a .npy/.npz array or a .csv of x1,x2,y,count rows")
    p.add_argument("file")
    p.add_argument("--method", default="exact", choices=["exact", "proxy"])
    p.add_argument("--tol", type=float, default=1e-7)
    p.add_argument("--unit", default="bits", choices=["bits", "nats"])
    p.add_argument("--normalize", action="store_true", help="accept counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=decompose_file)
    p = sub.add_parser("info", help="print how the native core was built")
    p.set_defaults(run=info)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:
        print(f"fastpid: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
