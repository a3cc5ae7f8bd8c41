"""Three modalities whose label only all three together determine: what pairwise PID misses and
``fastpid.decompose(P, sources=3)`` finds.

    python examples/three_modalities.py [--quick] [--out DIR]

1. The exact case: Y = X1 xor X2 xor X3 for three uniform bits. Every pair of modalities (and
   every single one) carries no information at all about Y, so each pairwise PID is all zeros;
   the trivariate decomposition puts the whole 1 bit of I(X1,X2,X3;Y) in its synergy term.
2. A noisy multimodal version: each modality is a vector of continuous features (a "video",
   an "audio" and a "text" embedding: its private bit embedded in 8 dimensions, plus Gaussian
   noise), the label is the xor of the three bits with 5% of labels flipped, and a fourth of
   the samples have a second label rule that one modality decides alone (Y = that bit). From
   the samples, ``fastpid.estimate`` clusters each modality's features and estimates the terms
   with bias correction and intervals: pairwise, synergy near 0 for every pair; with ``x3``, the
   three-way synergy and the unique information of the modality that sometimes decides alone.
   The estimates are of the clustered codes: at the noise used (0.35) k-means recovers the
   bits, so they match the bits' own terms; at 0.5 about 1 sample in 400 per modality lands in
   the other cluster, and the three-way synergy of 20,000 samples came out 0.388 [0.376, 0.400]
   against the bits' 0.406.

Writes DIR/three_modalities[-quick].json and .png (default DIR: examples/results). Needs
scikit-learn and matplotlib (``pip install ".[ml]"``).
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

import fastpid
from fastpid.result import TERMS3

NAMES = ("video", "audio", "text")


def xor3_distribution() -> np.ndarray:
    P = np.zeros((2, 2, 2, 2))
    for a, b, c in itertools.product(range(2), repeat=3):
        P[a, b, c, a ^ b ^ c] = 1 / 8
    return P


def exact_case() -> dict:
    P = xor3_distribution()
    pairwise = {}
    for i, j in itertools.combinations(range(3), 2):
        drop = ({0, 1, 2} - {i, j}).pop()
        r = fastpid.decompose(P.sum(axis=drop))
        pairwise[f"{NAMES[i]}+{NAMES[j]}"] = {a: float(getattr(r, a)) for a in ("redundancy", "unique1", "unique2", "synergy")}
    r3 = fastpid.decompose(P, sources=3)
    return {"pairwise": pairwise, "three": {t: float(getattr(r3, t)) for t in TERMS3}, "bound": float(r3.bound)}


def sample(rng, n, *, flip=0.05, alone=0.25, dim=8, noise=0.35):
    """The noisy version: bits, their embeddings and the label (see the module docstring).
    On a fraction ``alone`` of the samples the label is the video bit itself."""
    bits = rng.integers(0, 2, (3, n))
    y = bits[0] ^ bits[1] ^ bits[2]
    y = np.where(rng.random(n) < flip, 1 - y, y)
    y = np.where(rng.random(n) < alone, bits[0], y)
    features = []
    for b in bits:
        directions = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T  # two orthonormal directions
        features.append(directions[b] * 2.0 + noise * rng.normal(size=(n, dim)))
    return features, y


def population(flip=0.05, alone=0.25) -> np.ndarray:
    """P(b1, b2, b3, y) of sample()'s bits and label: the terms the estimates should find."""
    P = np.zeros((2, 2, 2, 2))
    for a, b, c in itertools.product(range(2), repeat=3):
        x = a ^ b ^ c
        P[a, b, c, x] += (1 - alone) * (1 - flip) / 8
        P[a, b, c, 1 - x] += (1 - alone) * flip / 8
        P[a, b, c, a] += alone / 8
    return P


def noisy_case(rng, n) -> dict:
    features, y = sample(rng, n)
    truth = fastpid.decompose(population(), sources=3)
    out = {"samples": n, "pairwise": {}, "population": {t: float(getattr(truth, t)) for t in TERMS3}}
    for i, j in itertools.combinations(range(3), 2):
        e = fastpid.estimate(features[i], features[j], y, clusters=2)
        out["pairwise"][f"{NAMES[i]}+{NAMES[j]}"] = {"values": e.values, "intervals": e.intervals}
    e3 = fastpid.estimate(features[0], features[1], y, x3=features[2], clusters=2)
    out["three"] = {"values": e3.values, "intervals": e3.intervals, "shape": list(e3.shape), "notes": list(e3.notes)}
    return out


def plot(result, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for ax, case, title in ((axes[0], result["exact"], "Y = video xor audio xor text (exact)"),
                            (axes[1], result["noisy"], f"noisy embeddings, {result['noisy']['samples']:,} samples")):
        labels, values, errors, colors = [], [], [], []
        for pair, atoms in case["pairwise"].items():
            v = atoms["values"]["synergy"] if "values" in atoms else atoms["synergy"]
            labels.append(f"synergy\n{pair}")
            values.append(v)
            iv = atoms.get("intervals", {}).get("synergy")
            errors.append((v - iv[0], iv[1] - v) if iv else (0, 0))
            colors.append("C7")
        three = case["three"]
        for term in TERMS3:
            v = three["values"][term] if "values" in three else three[term]
            labels.append(term)
            values.append(v)
            iv = three.get("intervals", {}).get(term)
            errors.append((v - iv[0], iv[1] - v) if iv else (0, 0))
            colors.append("C0" if term == "synergy" else "C1")
        x = np.arange(len(values))
        ax.bar(x, values, color=colors, yerr=np.array(errors).T, capsize=2)
        if "population" in case:  # the terms of the bits' own distribution, for comparison
            first = len(case["pairwise"])
            ax.scatter(x[first:], [case["population"][t] for t in TERMS3], marker="_", s=200, color="k", zorder=3,
                       label="population (the bits themselves)")
            ax.legend(fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_ylabel("bits")
        ax.set_title(title, fontsize=10)
    fig.suptitle("grey: pairwise PID synergy of each pair; blue/orange: the three-source terms (sources=3)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a test run)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    result = {"exact": exact_case(), "noisy": noisy_case(rng, 3000 if args.quick else 20000)}
    suffix = "-quick" if args.quick else ""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"three_modalities{suffix}.json").write_text(json.dumps(result, indent=2))
    plot(result, out / f"three_modalities{suffix}.png")
    exact, noisy = result["exact"], result["noisy"]
    print("Exact xor of three modalities (bits):")
    for pair, atoms in exact["pairwise"].items():
        print(f"  pairwise {pair:<12} " + "  ".join(f"{a} {v:.3f}" for a, v in atoms.items()))
    print("  three sources       " + "  ".join(f"{t} {exact['three'][t]:.3f}" for t in TERMS3)
          + f"  (bound {exact['bound']:.1e})")
    print(f"\nNoisy embeddings, {noisy['samples']:,} samples (bias-corrected estimates, 95% intervals):")
    for pair, est in noisy["pairwise"].items():
        lo, hi = est["intervals"]["synergy"]
        print(f"  pairwise {pair:<12} synergy {est['values']['synergy']:.3f} [{lo:.3f}, {hi:.3f}]")
    for t in TERMS3:
        lo, hi = noisy["three"]["intervals"][t]
        print(f"  three sources {t:<10} {noisy['three']['values'][t]:7.3f} [{lo:.3f}, {hi:.3f}]   "
              f"population (the bits themselves) {noisy['population'][t]:7.3f}")
    return result


if __name__ == "__main__":
    main()
