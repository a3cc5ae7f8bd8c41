"""The ``fastpid`` command line: ``fastpid demo``, ``fastpid decompose FILE``, ``fastpid estimate FILE.csv``,
``fastpid info``."""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings

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
        return _counts_csv(path)
    raise SystemExit(f"fastpid: unsupported file type: {path} (use .npy, .npz or .csv of x1,x2,y,count rows)")


def _read_csv(path: str):
    """Rows of a .csv file as lists of stripped strings (blank lines dropped); ValueError
    naming the file and line for ragged rows."""
    try:
        with open(path, newline="") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)]
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from None
    if not rows:
        raise ValueError(f"{path} is empty")
    for k, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise ValueError(f"{path}, row {k}: {len(row)} fields, the first row has {len(rows[0])}")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _counts_csv(path: str) -> np.ndarray:
    # rows of "x1,x2,y,count" with integer x1, x2, y >= 0 (a header line is allowed); the
    # counts are normalised by decompose_file
    rows = _read_csv(path)
    if not all(_is_number(c) for c in rows[0]):
        rows = rows[1:]
    if not rows or len(rows[0]) != 4:
        raise ValueError(f"{path}: expected rows of x1,x2,y,count (4 columns), got {len(rows[0]) if rows else 0}")
    try:
        data = np.array([[float(c) for c in row] for row in rows])
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric field ({err})") from None
    idx = data[:, :3]
    if np.any(idx < 0) or np.any(idx != np.round(idx)):
        raise ValueError(f"{path}: x1, x2 and y must be integers >= 0")
    if np.any(data[:, 3] < 0) or not np.all(np.isfinite(data[:, 3])):
        raise ValueError(f"{path}: counts must be finite and >= 0")
    idx = idx.astype(int)
    P = np.zeros(tuple(idx.max(axis=0) + 1))
    np.add.at(P, tuple(idx.T), data[:, 3])
    return P


def decompose_file(args) -> int:
    P = _load(args.file)
    # a .csv holds counts: normalised here; arrays are taken as given unless --normalize
    normalize = args.normalize or args.file.endswith(".csv")
    r = decompose(P, method=args.method, tol=args.tol, normalize=normalize, base=2 if args.unit == "bits" else np.e)
    if args.json:
        json.dump(r.to_dict(), sys.stdout, indent=2)
        print()
    else:
        rows = _rows(r)
        print(f"unit: {r.unit}; method: {r.method}")
        print(_table(rows, [str(i) for i in range(len(rows))] if r.batch_shape else ["P"]))
    return 0


def _columns(header, spec: str, path: str):
    names = [c.strip() for c in spec.split(",") if c.strip()]
    missing = [c for c in names if c not in header]
    if not names or missing:
        raise ValueError(f"{path}: no column {', '.join(missing) or repr(spec)}; the columns are {', '.join(header)}")
    return [header.index(c) for c in names]


def _source(rows, cols, clusters, name, path):
    """One source's samples: its columns as categories (every distinct combination of values
    is one code), or, with ``clusters``, as numeric features to discretise."""
    if clusters:
        try:
            return np.array([[float(row[c]) for c in cols] for row in rows])
        except ValueError as err:
            raise ValueError(f"{path}: --clusters needs numeric columns for {name} ({err})") from None
    _, codes = np.unique(np.array([[row[c] for c in cols] for row in rows], dtype=object).astype(str), axis=0, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def estimate_file(args) -> int:
    from .estimate import estimate

    rows = _read_csv(args.file)
    header, rows = rows[0], rows[1:]
    if not rows:
        raise ValueError(f"{args.file}: a header and no samples")
    c1, c2, cy = (_columns(header, spec, args.file) for spec in (args.x1, args.x2, args.y))
    if len(cy) != 1:
        raise ValueError(f"--y names one column, got {args.y!r}")
    x1 = _source(rows, c1, args.clusters, "x1", args.file)
    x2 = _source(rows, c2, args.clusters, "x2", args.file)
    _, y = np.unique(np.array([row[cy[0]] for row in rows]), return_inverse=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = estimate(x1, x2, y.astype(np.int64), bias_correction=None if args.correction == "none" else args.correction,
                       bootstrap=args.bootstrap, confidence=args.confidence, clusters=args.clusters or 20, seed=args.seed,
                       base=2 if args.unit == "bits" else np.e)
    for w in caught:
        print(f"fastpid: warning: {w.message}", file=sys.stderr)
    if args.json:
        json.dump({"file": args.file, "x1": args.x1, "x2": args.x2, "y": args.y, **est.to_dict()}, sys.stdout, indent=2)
        print()
    else:
        print(est)
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
    p.add_argument("--method", default="auto", choices=["auto", "exact", "refine", "proxy"])
    p.add_argument("--tol", type=float, default=1e-7)
    p.add_argument("--unit", default="bits", choices=["bits", "nats"])
    p.add_argument("--normalize", action="store_true", help="accept counts in .npy/.npz (a .csv always holds counts)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=decompose_file)
    p = sub.add_parser("estimate", help="estimate the PID from raw samples: a .csv with a header, one row per sample")
    p.add_argument("file")
    p.add_argument("--x1", required=True, help="column(s) of the first source, comma-separated")
    p.add_argument("--x2", required=True, help="column(s) of the second source, comma-separated")
    p.add_argument("--y", required=True, help="the target column")
    p.add_argument("--clusters", type=int, default=0,
                   help="discretise numeric source columns into this many k-means clusters (default: columns are categories)")
    p.add_argument("--correction", default="extrapolation", choices=["extrapolation", "jackknife", "bootstrap", "shuffle", "none"])
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples (needed by --correction bootstrap)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unit", default="bits", choices=["bits", "nats"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=estimate_file)
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
