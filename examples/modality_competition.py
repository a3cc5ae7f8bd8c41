"""Modality competition that is really there, and what the PID two-stage controller does about it.

    python examples/modality_competition.py            # 10 seeds, a few minutes on 2 CPU cores
    python examples/modality_competition.py --quick    # 2 seeds, fewer epochs (in the test suite)

The task follows the mechanism of Huang et al. (2022), "Modality Competition: What Makes Joint
Training of Multi-modal Network Fail in Deep Learning? (Provably)": when one modality fits the
training set first, the loss stops pushing the other modality's encoder, and features of the
weaker modality stay unlearned.

- Label y in {0, 1}; sign s = 2y - 1.
- x1 (100 features, the easy modality): s * 3 in feature 0 on a random 70% of the samples,
  plus a shortcut on the training split only: s * 2 in feature 1 for every training sample
  (a spurious cue such as a watermark; validation and test data do not have it).
- x2 (50 features, the weak but complementary modality): an XOR pattern on a random,
  independent 70% of the samples: features 0 and 1 are 2a and 2as for a random sign a, so the
  label is the sign of their product; no single feature of x2 says anything about y, and an
  encoder has to learn the pattern.
- Unit Gaussian noise on every feature; 1,000 training samples.

Every method trains the same late-fusion network (an MLP encoder and a linear head per
modality; the fused logits are the sum of the heads) from the same initial weights for the
same number of epochs (minibatches of 50, Adam), per seed:

- unimodal x1, unimodal x2: each branch on its own loss;
- naive joint: cross-entropy of the fused logits from the start;
- fixed schedule k: both branches alone for k epochs, then joint training with
  CE(fused) + 0.6 CE(x1) + 0.6 CE(x2) (k = 0 is joint training with the unimodal losses);
- two-stage, PID: the unimodal stage steered by fastpid.TwoStageController (a PID probe every
  2 epochs of the encoders' features on the first 20 training batches, L2-normalised, PCA to 5
  dimensions, k-means with 20 clusters; switch to training only the weaker modality when one
  unique information exceeds the other 3x; joint training starts from the checkpoint of peak
  synergy once synergy falls below 0.8 of its peak, or after 2 switches, or at epoch 30),
  then the joint loss above for the remaining epochs;
- two-stage, MI: the same schedule and controller with mutual information as the signal:
  I(X1;Y) and I(X2;Y) in place of the unique informations, the interaction information
  I(X1,X2;Y) - I(X1;Y) - I(X2;Y) in place of synergy (the same histograms; no PID solved).

Measured: test accuracy; the linear-probe accuracy of each encoder (logistic regression on its
features: how much that modality's encoder learned); and, for every run that has a moment when
joint training starts, the PID atoms at that moment against the final test accuracy.
Results go to examples/results/ (JSON and three plots).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from torch import nn

import fastpid
from fastpid.estimate import t_quantile

HERE = Path(__file__).resolve().parent
ATOMS = ("redundancy", "unique1", "unique2", "synergy")

CONFIG = dict(
    n_train=1000, n_val=2000, n_test=4000, dim1=100, dim2=50, beta1=3.0, beta2=2.0, present=0.7, shortcut=2.0,
    hidden=32, batch=50, lr=1e-3, epochs=60, aux_weight=0.6,
    probe_every=2, probe_batches=20, clusters=20, components=5,
    ratio=3.0, synergy_fraction=0.8, max_switches=2, max_unimodal_epochs=30,
    fixed_k=(0, 4, 10, 20, 30, 45, 60),
)
QUICK = dict(n_val=1000, n_test=1000, epochs=12, max_unimodal_epochs=6, fixed_k=(0, 6, 12))


# -- the task -------------------------------------------------------------------------------
def make_split(rng, n, cfg, shortcut):
    """One split of the task (see the module documentation); ``shortcut`` only for training."""
    y = rng.integers(0, 2, n)
    sign = 2.0 * y - 1.0
    x1 = rng.normal(size=(n, cfg["dim1"]))
    x1[:, 0] += (rng.random(n) < cfg["present"]) * sign * cfg["beta1"]
    if shortcut:
        x1[:, 1] += cfg["shortcut"] * sign
    x2 = rng.normal(size=(n, cfg["dim2"]))
    a = rng.choice([-1.0, 1.0], n) * (rng.random(n) < cfg["present"]) * cfg["beta2"]
    x2[:, 0] += a
    x2[:, 1] += a * sign
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    return [as_tensor(x1), as_tensor(x2)], torch.tensor(y)


class LateFusion(nn.Module):
    """An MLP encoder and a linear head per modality; fused logits = sum of the heads."""

    def __init__(self, dims, hidden):
        super().__init__()
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()) for d in dims)
        self.heads = nn.ModuleList(nn.Linear(hidden, 2) for _ in dims)

    def branch(self, xs, m):
        return self.heads[m](self.encoders[m](xs[m]))

    def forward(self, xs):
        return self.branch(xs, 0) + self.branch(xs, 1)

    def branch_parameters(self, m):
        return list(self.encoders[m].parameters()) + list(self.heads[m].parameters())


# -- training -------------------------------------------------------------------------------
ce = nn.functional.cross_entropy


def joint_loss(model, xs, y, aux_weight):
    loss = ce(model(xs), y)
    if aux_weight:
        loss = loss + aux_weight * (ce(model.branch(xs, 0), y) + ce(model.branch(xs, 1), y))
    return loss


class Run:
    """One model's training: a fixed minibatch order per seed, per-branch Adam optimisers for
    the unimodal stage (so that pausing one branch leaves the other's state alone) and one
    optimiser over everything for the joint stage."""

    def __init__(self, seed, train, cfg):
        torch.manual_seed(seed)  # every method starts from the same weights
        self.model = LateFusion([train[0][0].shape[1], train[0][1].shape[1]], cfg["hidden"])
        self.train, self.cfg = train, cfg
        self.order = torch.Generator().manual_seed(seed)
        self.branch_opts = [torch.optim.Adam(self.model.branch_parameters(m), lr=cfg["lr"]) for m in range(2)]
        self.epoch = 0

    def _batches(self):
        xs, y = self.train
        perm = torch.randperm(len(y), generator=self.order)
        for i in range(0, len(y), self.cfg["batch"]):
            idx = perm[i:i + self.cfg["batch"]]
            yield [x[idx] for x in xs], y[idx]

    def unimodal_epoch(self, branches=(0, 1)):
        for xs, y in self._batches():
            for m in branches:
                self.branch_opts[m].zero_grad()
                ce(self.model.branch(xs, m), y).backward()
                self.branch_opts[m].step()
        self.epoch += 1

    def joint_epochs(self, epochs, aux_weight):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg["lr"])
        for _ in range(epochs):
            for xs, y in self._batches():
                opt.zero_grad()
                joint_loss(self.model, xs, y, aux_weight).backward()
                opt.step()
            self.epoch += 1


# -- measurements ---------------------------------------------------------------------------
def features(model, xs):
    with torch.no_grad():
        return [model.encoders[m](xs[m]).numpy() for m in range(2)]


def pid_probe(model, train, cfg):
    """Plug-in PID (bits) of the two encoders' clustered features and the label on the first
    ``probe_batches`` training batches. The controller compares these values with each other
    and over time, so the plug-in's bias (at about 3 samples per occupied cell here) is left in
    and its warning silenced."""
    n = cfg["probe_batches"] * cfg["batch"]
    f1, f2 = features(model, [x[:n] for x in train[0]])
    pid = fastpid.estimate(f1, f2, train[1][:n].numpy(), clusters=cfg["clusters"], components=cfg["components"],
                           bias_correction=None, warn=False).pid
    return {k: float(getattr(pid, k)) for k in ATOMS + ("mi_x1", "mi_x2", "mi_joint")}


def controller_signal(measured, signal):
    """What the controller sees: the PID atoms, or their mutual-information stand-ins."""
    if signal == "pid":
        return measured
    return {"unique1": measured["mi_x1"], "unique2": measured["mi_x2"],
            "synergy": measured["mi_joint"] - measured["mi_x1"] - measured["mi_x2"]}


def probe_accuracy(model, train, test):
    """Test accuracy of a logistic regression on each frozen encoder's features."""
    from sklearn.linear_model import LogisticRegression

    f_train, f_test = features(model, train[0]), features(model, test[0])
    return [float(LogisticRegression(max_iter=2000).fit(f_train[m], train[1].numpy()).score(f_test[m], test[1].numpy()))
            for m in range(2)]


def accuracy(logits, y):
    return float((logits.argmax(-1) == y).float().mean())


def evaluate(model, train, val, test, branch=None):
    with torch.no_grad():
        logits = (lambda xs: model(xs)) if branch is None else (lambda xs: model.branch(xs, branch))
        out = {"test": accuracy(logits(test[0]), test[1]), "val": accuracy(logits(val[0]), val[1])}
    out["probe1"], out["probe2"] = probe_accuracy(model, train, test)
    return out


# -- the methods ----------------------------------------------------------------------------
# The joint stage's loss: the one the two-stage method specifies, and (ablation) the fused
# cross-entropy alone, under which only the unimodal stage can protect the weak modality.
JOINT_LOSSES = {"": "aux_weight", " [fused loss only]": None}


def unimodal_and_fixed_schedules(seed, train, val, test, cfg):
    """The two branches trained alone for all epochs (the unimodal models; the branches do not
    interact, so one run gives both), with a branch point at every k of the fixed schedules."""
    run = Run(seed, train, cfg)
    results, snapshots = {}, {}
    for epoch in range(cfg["epochs"] + 1):
        if epoch in cfg["fixed_k"]:
            snapshots[epoch] = copy.deepcopy(run)
        if epoch == cfg["epochs"]:
            break
        run.unimodal_epoch()
    for m in range(2):
        results[f"unimodal x{m + 1}"] = evaluate(run.model, train, val, test, branch=m)
    for k, snapshot in snapshots.items():
        start = pid_probe(snapshot.model, train, cfg)
        for suffix, aux in JOINT_LOSSES.items():
            if (k == 0 and aux is None) or (k == cfg["epochs"] and aux is None):
                continue  # k = 0 with the fused loss is naive joint training; k = epochs has no joint stage
            branch = copy.deepcopy(snapshot)
            branch.joint_epochs(cfg["epochs"] - k, cfg[aux] if aux else 0.0)
            results[f"fixed k={k}{suffix}"] = {**evaluate(branch.model, train, val, test), "joint_start": k,
                                               "atoms_at_start": start}
    return results


def naive_joint(seed, train, val, test, cfg):
    run = Run(seed, train, cfg)
    start = pid_probe(run.model, train, cfg)
    run.joint_epochs(cfg["epochs"], aux_weight=0.0)
    return {**evaluate(run.model, train, val, test), "joint_start": 0, "atoms_at_start": start}


def two_stage(seed, train, val, test, cfg, signal):
    """The controller's unimodal stage, then joint training (under each joint loss) for the rest
    of the epoch budget, from the checkpoint the controller names."""
    run = Run(seed, train, cfg)
    controller = fastpid.TwoStageController(
        ratio=cfg["ratio"], synergy_fraction=cfg["synergy_fraction"], max_switches=cfg["max_switches"],
        max_epoch=cfg["max_unimodal_epochs"], probe_every=cfg["probe_every"])
    checkpoints, measured, trajectory = {}, {}, []
    while controller.stage == "unimodal":
        run.unimodal_epoch([int(name[1]) - 1 for name in controller.training])
        if controller.should_probe(run.epoch):
            measured[run.epoch] = pid_probe(run.model, train, cfg)
            checkpoints[run.epoch] = copy.deepcopy(run.model.state_dict())
            decision = controller.update(run.epoch, controller_signal(measured[run.epoch], signal))
            trajectory.append({"epoch": run.epoch, **measured[run.epoch], "train": list(decision.train),
                               "reason": decision.reason})
    decided_at, start = run.epoch, controller.joint_start_epoch
    run.model.load_state_dict(checkpoints[start])
    results = {}
    for suffix, aux in JOINT_LOSSES.items():
        branch = copy.deepcopy(run)
        branch.joint_epochs(cfg["epochs"] - decided_at, cfg[aux] if aux else 0.0)  # the same epoch budget for all
        results[f"two-stage {signal.upper()}{suffix}"] = {
            **evaluate(branch.model, train, val, test), "joint_start": start, "decided_at": decided_at,
            "switches": controller.switches, "trigger": controller.joint_trigger, "atoms_at_start": measured[start],
            "trajectory": trajectory}
    return results


def run_seed(seed, cfg):
    torch.set_num_threads(1)  # small networks: one thread each is fastest; seeds run in parallel
    rng = np.random.default_rng(seed)
    train = make_split(rng, cfg["n_train"], cfg, shortcut=True)
    val = make_split(rng, cfg["n_val"], cfg, shortcut=False)
    test = make_split(rng, cfg["n_test"], cfg, shortcut=False)
    results = {"naive joint": naive_joint(seed, train, val, test, cfg)}
    results.update(unimodal_and_fixed_schedules(seed, train, val, test, cfg))
    for signal in ("pid", "mi"):
        results.update(two_stage(seed, train, val, test, cfg, signal))
    return results


# -- statistics -----------------------------------------------------------------------------
def mean_ci(values, confidence=0.95):
    """Mean and the half-width of its t interval over seeds."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(t_quantile(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def correlation_ci(x, y, confidence=0.95):
    """Pearson r with its Fisher-z interval."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    r = float(np.corrcoef(x, y)[0, 1])
    if len(x) < 4 or not np.isfinite(r):
        return r, (float("nan"), float("nan"))
    z, half = math.atanh(min(max(r, -0.999999), 0.999999)), 1.959964 / math.sqrt(len(x) - 3)
    return r, (math.tanh(z - half), math.tanh(z + half))


PLAIN = " [fused loss only]"


def method_order(name):
    """Unimodal, naive, fixed schedules by k, the controllers; the fused-loss-only ablation last."""
    rank = next(i for i, p in enumerate(("unimodal", "naive", "fixed", "two-stage PID", "two-stage MI")) if name.startswith(p))
    k = int(name.split("k=")[1].split()[0]) if name.startswith("fixed") else 0
    return (PLAIN in name, rank, k)


def correlations(runs):
    accuracy = [res["test"] for res in runs]
    return {a: correlation_ci([res["atoms_at_start"][a] for res in runs], accuracy) for a in ATOMS}


def summarise(per_seed):
    methods = sorted(per_seed[0], key=method_order)
    table = {m: {k: mean_ci([r[m][k] for r in per_seed]) for k in ("test", "val", "probe1", "probe2")} for m in methods}

    def best_fixed(suffix):  # chosen on validation data, never on test
        candidates = [m for m in methods if m.startswith("fixed") and m.endswith(suffix) and (suffix or PLAIN not in m)]
        return max(candidates + (["naive joint"] if suffix else []), key=lambda m: table[m]["val"][0])

    def paired(a, b, key="test"):
        return mean_ci([r[a][key] - r[b][key] for r in per_seed])

    best = {"": best_fixed(""), PLAIN: best_fixed(PLAIN)}
    differences = {"competition: x2 probe, unimodal x2 - naive joint": paired("unimodal x2", "naive joint", "probe2")}
    for suffix in ("", PLAIN):
        pid, mi = f"two-stage PID{suffix}", f"two-stage MI{suffix}"
        differences[f"{pid} - naive joint"] = paired(pid, "naive joint")
        differences[f"{pid} - {mi}"] = paired(pid, mi)
        differences[f"{pid} - best fixed ({best[suffix]})"] = paired(pid, best[suffix])
    differences["fixed k=0 (unimodal loss terms, no unimodal stage) - naive joint"] = paired("fixed k=0", "naive joint")
    runs = [r[m] for r in per_seed for m in methods if "atoms_at_start" in r[m]]
    with_terms = [r[m] for r in per_seed for m in methods if "atoms_at_start" in r[m] and PLAIN not in m and m != "naive joint"]
    fused_only = [r[m] for r in per_seed for m in methods if "atoms_at_start" in r[m] and (PLAIN in m or m == "naive joint")]
    return {
        "table": table, "best_fixed": best, "differences": differences,
        "correlations": {"all runs": (len(runs), correlations(runs)),
                         "runs with the unimodal loss terms": (len(with_terms), correlations(with_terms)),
                         "runs with the fused loss only": (len(fused_only), correlations(fused_only))},
        "controllers": {m: {"joint_start": mean_ci([r[m]["joint_start"] for r in per_seed]),
                            "decided_at": mean_ci([r[m]["decided_at"] for r in per_seed]),
                            "switches": mean_ci([r[m]["switches"] for r in per_seed]),
                            "triggers": {t: sum(r[m]["trigger"] == t for r in per_seed) for t in ("synergy", "max_switches", "max_epoch")}}
                        for m in ("two-stage PID", "two-stage MI")},
    }


# -- plots ----------------------------------------------------------------------------------
def plot_results(summary, path):
    import matplotlib.pyplot as plt

    table = summary["table"]
    methods = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * len(methods) + 1.5), sharey=True)
    for ax, key, title in ((axes[0], "test", "test accuracy"), (axes[1], "probe2", "x2 encoder: linear-probe accuracy")):
        shown = [i for i, m in enumerate(methods) if not (key == "probe2" and m == "unimodal x1")]
        ax.errorbar([table[methods[i]][key][0] for i in shown], shown, xerr=[table[methods[i]][key][1] for i in shown],
                    fmt="o", capsize=3)
        ablation = next((i for i, m in enumerate(methods) if PLAIN in m), None)
        if ablation is not None:
            ax.axhline(ablation - 0.5, color="gray", lw=0.8)
        ax.set_title(title + " (95% CI over seeds)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(methods)), methods, fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_trajectory(result, path):
    import matplotlib.pyplot as plt

    traj = result["trajectory"]
    epochs = [t["epoch"] for t in traj]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("unique1", "U1 (x1: easy, shortcut)"), ("unique2", "U2 (x2: XOR)"), ("synergy", "S"), ("redundancy", "R")):
        ax.plot(epochs, [t[key] for t in traj], marker="o", ms=3, label=label)
    for prev, cur in zip([{"train": ["x1", "x2"]}] + traj[:-1], traj):
        if cur["train"] != prev["train"]:
            ax.axvline(cur["epoch"], color="gray", ls=":", lw=1)
            ax.text(cur["epoch"], ax.get_ylim()[1] * 0.97, " then " + "+".join(cur["train"]), rotation=90, va="top", fontsize=7)
    ax.axvline(result["joint_start"], color="k", lw=1)
    ax.set_xlabel("unimodal epoch")
    ax.set_ylabel("bits (plug-in, clustered encoder features)")
    ax.set_title("The controller's probes (seed 0); black line: the checkpoint joint training starts from", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_family(name):
    if name == "naive joint":
        return "naive joint"
    kind = "fixed k" if name.startswith("fixed") else "two-stage"
    return kind + (PLAIN if PLAIN in name else "")


def plot_atoms_vs_accuracy(per_seed, summary, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), sharey=True)
    families = {}
    for r in per_seed:
        for m, res in r.items():
            if "atoms_at_start" in res:
                families.setdefault(run_family(m), []).append(res)
    n, corr = summary["correlations"]["all runs"]
    for ax, atom in zip(axes, ATOMS):
        for (family, runs), marker in zip(sorted(families.items()), "osx^vD"):
            ax.scatter([res["atoms_at_start"][atom] for res in runs], [res["test"] for res in runs], s=14, marker=marker,
                       label=family, alpha=0.6)
        r, (lo, hi) = corr[atom]
        ax.set_title(f"{atom}: r = {r:+.2f} [{lo:+.2f}, {hi:+.2f}] ({n} runs)", fontsize=9)
        ax.set_xlabel(f"{atom} when joint training starts (bits)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- report ---------------------------------------------------------------------------------
def markdown(summary, seeds):
    """The README's tables."""
    fmt = lambda mc: f"{mc[0]:.3f} +- {mc[1]:.3f}"  # noqa: E731
    lines = [f"| method ({seeds} seeds; mean +- 95% CI) | test accuracy | x1 encoder probe | x2 encoder probe |",
             "|---|---|---|---|"]
    for m, row in summary["table"].items():
        best = " (best k on validation)" if m in summary["best_fixed"].values() and m.startswith("fixed") else ""
        probes = [fmt(row["probe1"]) if m != "unimodal x2" else "", fmt(row["probe2"]) if m != "unimodal x1" else ""]
        lines.append(f"| {m}{best} | {fmt(row['test'])} | {probes[0]} | {probes[1]} |")
    lines += ["", "| paired difference (same seed and initial weights) | mean +- 95% CI |", "|---|---|"]
    lines += [f"| {name} | {mc[0]:+.3f} +- {mc[1]:.3f} |" for name, mc in summary["differences"].items()]
    for group, (n, corr) in summary["correlations"].items():
        lines += ["", f"| {group} ({n}): atom when joint training starts vs final test accuracy | Pearson r [95% CI] |", "|---|---|"]
        lines += [f"| {a} | {r:+.2f} [{lo:+.2f}, {hi:+.2f}] |" for a, (r, (lo, hi)) in corr.items()]
    lines += ["", "| controller | joint training starts from epoch | decided at epoch | switches | triggers |", "|---|---|---|---|---|"]
    for m, c in summary["controllers"].items():
        triggers = ", ".join(f"{t} {k}" for t, k in c["triggers"].items() if k)
        one = lambda mc: f"{mc[0]:.1f} +- {mc[1]:.1f}"  # noqa: E731
        lines.append(f"| {m} | {one(c['joint_start'])} | {one(c['decided_at'])} | {one(c['switches'])} | {triggers} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, fewer epochs and samples (the test suite runs this)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 10, quick 2)")
    parser.add_argument("--jobs", type=int, default=None, help="seeds run in parallel (default: 2 cores at most; quick: 1)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    cfg = dict(CONFIG, **(QUICK if args.quick else {}))
    seeds = args.seeds or (2 if args.quick else 10)
    jobs = args.jobs or (1 if args.quick else min(2, os.cpu_count() or 1))
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    t0 = time.perf_counter()

    def progress(done):
        print(f"seed {done}/{seeds} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    if jobs == 1:
        per_seed = []
        for seed in range(seeds):
            per_seed.append(run_seed(seed, cfg))
            progress(seed + 1)
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_seed, seed, cfg) for seed in range(seeds)]
            for done, _ in enumerate(as_completed(futures), 1):
                progress(done)
            per_seed = [f.result() for f in futures]
    summary = summarise(per_seed)
    import matplotlib

    matplotlib.use("Agg")
    plot_results(summary, args.out / f"competition{suffix}.png")
    plot_trajectory(per_seed[0]["two-stage PID"], args.out / f"pid_trajectory{suffix}.png")
    plot_atoms_vs_accuracy(per_seed, summary, args.out / f"atoms_vs_accuracy{suffix}.png")
    (args.out / f"modality_competition{suffix}.json").write_text(json.dumps(
        {"config": cfg, "seeds": seeds, "seconds": time.perf_counter() - t0, "summary": summary, "per_seed": per_seed},
        indent=1))
    print(markdown(summary, seeds))
    return summary


if __name__ == "__main__":
    main()
