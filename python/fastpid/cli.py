"""The ``fastpid`` command line: ``fastpid demo``, ``fastpid decompose FILE``, ``fastpid estimate FILE.csv``,
``fastpid info``.

Exit codes (one per kind of outcome): 0 done; 1 done, but a distribution stopped short of
``--tol`` (its certified bound is printed); 2 the command could not run (a bad flag, a missing,
unreadable or malformed file, bad values, too large a histogram); 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings

import numpy as np

from . import __version__, build_info, decompose
from .families import gates, histogram
from .result import TERMS3, PID3Result

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = f"""exit codes: {EXIT_OK} done; {EXIT_NOT_CONVERGED} done, but a distribution stopped short of --tol (its
certified bound is printed); {EXIT_USAGE} the command could not run (bad flag, file or values); {EXIT_INTERRUPTED} interrupted"""
# The largest array the command builds from a file's codes (a histogram of float64), checked
# before anything is allocated: an absurd code must not ask for terabytes.
MAX_HISTOGRAM_BYTES = 4 << 30


class UsageError(ValueError):
    """A problem with what the command was given, reported as one line, exit code 2."""


def _check_histogram_size(shape, what: str) -> None:
    entries = int(np.prod([int(n) for n in shape], dtype=object))
    if entries * 8 > MAX_HISTOGRAM_BYTES:
        dims = "x".join(f"{int(n):,}" for n in shape)
        raise UsageError(f"{what} would be a {dims} histogram ({entries * 8 / 2**30:,.1f} GiB of float64), more than "
                         f"the {MAX_HISTOGRAM_BYTES >> 30} GiB this command builds; are the codes right?")

ATOM_COLUMNS = ("redundancy", "unique1", "unique2", "synergy", "mi_joint", "bound")
TERM_COLUMNS = TERMS3 + ("mi_joint", "bound")  # --sources 3


def _columns_of(result):
    return TERM_COLUMNS if isinstance(result, PID3Result) else ATOM_COLUMNS


def _table(rows, names, columns=ATOM_COLUMNS):
    head = f"{'':<12}" + "".join(f"{c:>12}" for c in columns) + f"{'iters':>7}{'converged':>11}"
    lines = [head]
    for name, r in zip(names, rows):
        vals = "".join(f"{float(r[c]):>12.6f}" if c != "bound" else f"{float(r[c]):>12.1e}" for c in columns)
        lines.append(f"{name:<12}{vals}{int(r['iterations']):>7}{'yes' if r['converged'] else 'NO':>11}")
    return "\n".join(lines)


def _rows(result):
    n = int(np.prod(result.batch_shape)) if result.batch_shape else 1
    fields = {c: np.asarray(getattr(result, c)).reshape(n) for c in _columns_of(result) + ("iterations", "converged")}
    return [{c: fields[c][i] for c in fields} for i in range(n)]


def _report_convergence(result, tol: float, unit: str) -> int:
    """A warning line on stderr and exit code 1 when a distribution stopped short of tol."""
    converged = np.asarray(result.converged).reshape(-1)
    short = int((~converged).sum())
    if not short:
        return EXIT_OK
    worst = float(np.max(np.asarray(result.bound, dtype=np.float64).reshape(-1)[~converged]))
    print(f"fastpid: warning: {short:,} of {converged.size:,} distribution(s) stopped short of --tol {tol:g} {unit}; "
          f"the largest certified bound is {worst:.2g} {unit} (their values are within it)", file=sys.stderr)
    return EXIT_NOT_CONVERGED


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
    return _report_convergence(r, args.tol, "bits")


def _load(path: str, sources: int = 2) -> np.ndarray:
    if not path.endswith((".npy", ".npz", ".csv")):
        raise UsageError(f"unsupported file type: {path} (use .npy, .npz or .csv of {_csv_fields(sources)} rows)")
    if not os.path.isfile(path):
        raise UsageError(f"cannot read {path}: no such file")
    if path.endswith(".csv"):
        return _counts_csv(path, sources)
    try:
        if path.endswith(".npy"):
            return np.load(path)
        with np.load(path) as z:
            if not z.files:
                raise UsageError(f"{path} holds no arrays")
            if "P" not in z.files and len(z.files) > 1:  # which one is meant: never a guess
                raise UsageError(f"{path} holds {len(z.files)} arrays ({', '.join(z.files[:5])}"
                                 f"{', ...' if len(z.files) > 5 else ''}) and none named P: save the one to "
                                 "decompose as P (np.savez(file, P=...)) or alone")
            return z["P" if "P" in z.files else z.files[0]]
    except UsageError:
        raise
    except (OSError, ValueError, EOFError) as err:
        # numpy's own words (a bad header, a truncated file, pickled objects refused) after the file's name
        raise UsageError(f"cannot load {path} as a numpy array: {err}") from None


def _read_csv(path: str):
    """Rows of a .csv file as lists of stripped strings (blank lines dropped); UsageError
    naming the file and line for ragged rows, a binary file or one that cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)]
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text .csv file (it is not UTF-8 text)") from None
    except csv.Error as err:
        raise UsageError(f"{path} is not a valid .csv file: {err}") from None
    if not rows:
        raise UsageError(f"{path} is empty")
    for k, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise UsageError(f"{path}, row {k}: {len(row)} fields, the first row has {len(rows[0])}")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _csv_fields(sources: int) -> str:
    return ",".join([f"x{i + 1}" for i in range(sources)] + ["y", "count"])


def _counts_csv(path: str, sources: int = 2) -> np.ndarray:
    # rows of "x1,x2,y,count" (x1,x2,x3,y,count with --sources 3) with integer codes >= 0 (a
    # header line is allowed); the counts are normalised by decompose_file
    rows = _read_csv(path)
    if not all(_is_number(c) for c in rows[0]):
        rows = rows[1:]
    width = sources + 2
    if not rows or len(rows[0]) != width:
        got = len(rows[0]) if rows else 0
        hint = f"; rows of {_csv_fields(got - 2)} need --sources {got - 2}" if got - 2 in (2, 3) and got != width else ""
        raise ValueError(f"{path}: expected rows of {_csv_fields(sources)} ({width} columns), got {got}{hint}")
    try:
        data = np.array([[float(c) for c in row] for row in rows])
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric field ({err})") from None
    idx = data[:, :-1]
    if np.any(idx < 0) or np.any(idx != np.round(idx)) or np.any(idx >= 2**62):
        raise ValueError(f"{path}: {', '.join(_csv_fields(sources).split(',')[:-1])} must be integers >= 0")
    if np.any(data[:, -1] < 0) or not np.all(np.isfinite(data[:, -1])):
        raise ValueError(f"{path}: counts must be finite and >= 0")
    idx = idx.astype(np.int64)
    shape = tuple(int(n) for n in idx.max(axis=0) + 1)
    _check_histogram_size(shape, f"{path}: its largest codes {tuple(n - 1 for n in shape)}")
    P = np.zeros(shape)
    np.add.at(P, tuple(idx.T), data[:, -1])
    return P


def decompose_file(args) -> int:
    if args.sources == 3 and args.method == "proxy":
        raise UsageError("--method proxy is for two sources; with --sources 3 use auto, exact or refine")
    P = _load(args.file, args.sources)
    # a .csv holds counts: normalised here; arrays are taken as given unless --normalize
    normalize = args.normalize or args.file.endswith(".csv")
    try:
        r = decompose(P, method=args.method, tol=args.tol, normalize=normalize, base=2 if args.unit == "bits" else np.e,
                      threads=args.threads, sources=args.sources)
    except ValueError as err:  # in the command's own terms
        raise UsageError(f"{args.file}: " + str(err).replace("pass normalize=True", "pass --normalize")) from None
    if args.json:
        json.dump(r.to_dict(), sys.stdout, indent=2)
        print()
    else:
        rows = _rows(r)
        print(f"unit: {r.unit}; method: {r.method}; tol: {args.tol:g}")
        print(_table(rows, [str(i) for i in range(len(rows))] if r.batch_shape else ["P"], _columns_of(r)))
    return _report_convergence(r, args.tol, r.unit)


def _columns(header, spec: str, path: str, flag: str):
    names = [c.strip() for c in spec.split(",") if c.strip()]
    missing = [c for c in names if c not in header]
    if not names or missing:
        raise UsageError(f"{flag}: {path} has no column {', '.join(missing) or repr(spec)}; the columns are {', '.join(header)}")
    return [header.index(c) for c in names]


def _numeric(rows, cols):
    """The columns as a float array (n, len(cols)), or None when a field is not a number."""
    try:
        return np.array([[float(row[c]) for c in cols] for row in rows])
    except ValueError:
        return None


def _source(rows, cols, args, flag):
    """One source's samples, discretised as ``fastpid.estimate`` does: numeric features (two
    or more numeric columns, or one whose values are not all whole numbers; with --clusters,
    any numeric columns) are clustered into ``--clusters`` groups by k-means; other columns
    are categories (every distinct combination of their values is one code).
    ``--categories`` makes every source categories."""
    values = None if args.categories else _numeric(rows, cols)
    if values is not None and np.isfinite(values).all() and (
            args.clusters_given or len(cols) > 1 or np.any(values != np.round(values))):
        return values
    _, codes = np.unique(np.array([[row[c] for c in cols] for row in rows], dtype=object).astype(str), axis=0, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    distinct = int(codes.max()) + 1
    if distinct > max(100, len(rows) // 2):
        raise UsageError(f"{flag}: {distinct:,} distinct values in {len(rows):,} samples, too many categories for a "
                         "histogram" + ("" if values is not None and args.categories else "; numeric columns are clustered with --clusters K"))
    return codes


def estimate_file(args) -> int:
    from .estimate import estimate

    if args.correction == "bootstrap" and args.bootstrap < 2:
        raise UsageError("--correction bootstrap needs --bootstrap B resamples with B >= 2")
    if args.bootstrap < 0:
        raise UsageError("--bootstrap must be >= 0")
    if not 0 < args.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1, got {args.confidence:g}")
    if args.clusters < 1:
        raise UsageError(f"--clusters must be >= 1, got {args.clusters}")
    rows = _read_csv(args.file)
    header, rows = rows[0], rows[1:]
    if not rows:
        raise UsageError(f"{args.file}: a header and no samples")
    flags = {"--x1": args.x1, "--x2": args.x2} if args.x3 is None else {"--x1": args.x1, "--x2": args.x2, "--x3": args.x3}
    cy = _columns(header, args.y, args.file, "--y")
    if len(cy) != 1:
        raise UsageError(f"--y names one column, got {args.y!r}")
    xs = [_source(rows, _columns(header, spec, args.file, flag), args, flag) for flag, spec in flags.items()]
    if args.clusters_given and all(x.ndim == 1 for x in xs):
        which = "neither --x1 nor --x2" if len(flags) == 2 else f"none of {', '.join(flags)}"
        raise UsageError(f"--clusters needs numeric columns: {which} of {args.file} is numeric")
    _, y = np.unique(np.array([row[cy[0]] for row in rows]), return_inverse=True)
    sizes = [args.clusters if x.ndim == 2 else int(x.max()) + 1 for x in xs] + [int(y.max()) + 1]
    _check_histogram_size(sizes, f"{args.file}: {', '.join(flags)} and --y")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = estimate(xs[0], xs[1], y.reshape(-1).astype(np.int64), x3=xs[2] if len(xs) == 3 else None,
                           bias_correction=None if args.correction == "none" else args.correction,
                           bootstrap=args.bootstrap, confidence=args.confidence, clusters=args.clusters, seed=args.seed,
                           base=2 if args.unit == "bits" else np.e, threads=args.threads)
        except ValueError as err:
            message = str(err).replace("bias_correction=", "--correction ").replace("'jackknife' or None", "jackknife or none")
            raise UsageError(f"{args.file}: {message}") from None
    for w in caught:
        print(f"fastpid: warning: {w.message}", file=sys.stderr)
    if args.json:
        named = {flag[2:]: spec for flag, spec in flags.items()}
        json.dump({"file": args.file, **named, "y": args.y, **est.to_dict()}, sys.stdout, indent=2)
        print()
    else:
        print(est)
    if not est.converged:
        print(f"fastpid: warning: {next(n for n in est.notes if 'stopped short' in n)}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return EXIT_OK


def info(args) -> int:
    print(json.dumps(build_info(), indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastpid", description="Fast, exact, certified BROJA partial information decomposition",
                                     epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"fastpid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,decompose,estimate,info}")

    def command(name, help_text):
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES)

    def tol_and_threads(p, tol_help):
        p.add_argument("--tol", type=float, default=1e-7, help=tol_help)
        p.add_argument("--threads", type=int, default=None, help="CPU threads of the solver (default: all cores)")

    p = command("demo", "decompose the canonical gates and a batch of 20x20x6 histograms, and time the batch")
    p.add_argument("--batch", type=int, default=1000, help="histograms in the timed batch (default 1000)")
    p.add_argument("--tol", type=float, default=1e-7, help="certified accuracy of every atom, in bits (default 1e-7)")
    p.add_argument("--seed", type=int, default=0, help="seed of the histograms (default 0)")
    p.set_defaults(run=demo)
    p = command("decompose", "decompose P(X1,X2,Y) from a .npy/.npz array (..., n1, n2, ny) or a .csv of x1,x2,y,count rows "
                             "(with --sources 3: P(X1,X2,X3,Y), (..., n1, n2, n3, ny) or x1,x2,x3,y,count rows)")
    p.add_argument("file", help="a .npy or .npz array of probabilities (leading axes are a batch; in a .npz the array named P, "
                                "or its only one), or a .csv of counts")
    p.add_argument("--sources", type=int, default=2, choices=[2, 3],
                   help="2 (default: BROJA's redundancy, unique and synergy) or 3 (the eight terms of the trivariate "
                        "maximum-entropy decomposition; see README 'More than two sources')")
    p.add_argument("--method", default="auto", choices=["auto", "exact", "refine", "proxy"],
                   help="solver: auto (default: exact or refine, whichever is predicted faster), exact (interior point), "
                        "refine (iterative scaling + Newton; large alphabets), proxy (closed form, certified but not optimal)")
    tol_and_threads(p, "certified accuracy of every atom, in --unit (default 1e-7)")
    p.add_argument("--unit", default="bits", choices=["bits", "nats"], help="unit of the results and of --tol (default bits)")
    p.add_argument("--normalize", action="store_true", help="accept counts in .npy/.npz (a .csv always holds counts)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (every field, every distribution)")
    p.set_defaults(run=decompose_file)
    p = command("estimate", "estimate the PID from raw samples: a .csv with a header, one row per sample")
    p.add_argument("file", help="a .csv file with a header row and one row per sample")
    p.add_argument("--x1", required=True, help="column(s) of the first source, comma-separated")
    p.add_argument("--x2", required=True, help="column(s) of the second source, comma-separated")
    p.add_argument("--x3", default=None, help="column(s) of a third source: the eight terms of the trivariate decomposition "
                                               "are estimated (README 'More than two sources')")
    p.add_argument("--y", required=True, help="the target column")
    p.add_argument("--clusters", type=int, default=None,
                   help="k-means clusters for a source of numeric features (two or more numeric columns, or one of "
                        "non-whole numbers), as fastpid.estimate does (default 20); other columns are categories")
    p.add_argument("--categories", action="store_true",
                   help="treat every source as categories (each distinct combination of its columns' values is one value)")
    p.add_argument("--correction", default="extrapolation", choices=["extrapolation", "jackknife", "bootstrap", "shuffle", "none"],
                   help="bias correction of the plug-in estimate (default extrapolation; see README 'Estimating from samples')")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples (needed by --correction bootstrap, >= 2)")
    p.add_argument("--confidence", type=float, default=0.95, help="coverage of the intervals (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling and the clustering (default 0)")
    tol_and_threads(p, "certified accuracy of each decomposition, in --unit (default 1e-7)")
    p.add_argument("--unit", default="bits", choices=["bits", "nats"], help="unit of the results (default bits)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(run=estimate_file)
    p = command("info", "print how the native core was built (version, compiler, OpenMP, CUDA) as JSON")
    p.set_defaults(run=info)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "tol", 1.0) <= 0:
        print(f"fastpid: --tol must be positive, got {args.tol:g}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "threads", None) is not None and args.threads < 0:
        print(f"fastpid: --threads must be >= 0, got {args.threads}", file=sys.stderr)
        return EXIT_USAGE
    if hasattr(args, "clusters"):
        args.clusters_given = args.clusters is not None
        args.clusters = 20 if args.clusters is None else args.clusters
    try:
        return args.run(args)
    except (ValueError, MemoryError) as err:  # UsageError, and the library's errors on bad input
        print(f"fastpid: {err}" if not isinstance(err, MemoryError) else "fastpid: out of memory", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastpid: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (| head): stop quietly, and keep Python's exit flush from failing too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
