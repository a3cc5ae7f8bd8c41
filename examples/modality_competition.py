"""Modality competition on a synthetic two-modality task, and the PID two-stage schedule.

    python examples/modality_competition.py            # 5 seeds, a few minutes on a CPU
    python examples/modality_competition.py --quick    # 2 seeds, reduced (used in CI)

The data model follows Huang et al. (2022), "Modality Competition: What Makes Joint Training
of Multi-modal Network Fail in Deep Learning? (Provably)": a binary label y = +-1; each
modality is a high-dimensional vector carrying the label signal y * beta_m * u_m on a random
80% of the samples (pure noise on the rest), plus Gaussian noise. Modality 1 is strong
(beta_1 > beta_2). Few samples and many noise dimensions let a network fit the training set
with the strong modality and memorised noise, so naive late-fusion joint training barely
learns the weak modality. Each modality alone tops out near 90% accuracy; together near 98%.

Compared, over several seeds: each unimodal model, naive joint training, and the two-stage
schedule (unimodal training of both encoders steered by fastpid.TwoStageController, then
joint training). Reported: test accuracy of each, and linear-probe accuracy of the fused
model's encoders (how much each modality's encoder learned). The PID trajectory of one
seed (U1, U2, S per epoch, with the controller's decisions) is plotted to a PNG.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import fastpid
from fastpid.estimate import estimate

HERE = Path(__file__).resolve().parent


def make_data(rng, n, dim, betas, present=0.8, noise=1.0):
    y = rng.integers(0, 2, n)
    sign = 2.0 * y - 1.0
    xs = []
    for m, beta in enumerate(betas):
        u = np.zeros(dim)
        u[m] = 1.0  # each modality's signal direction
        carries = rng.random(n) < present
        x = noise * rng.normal(size=(n, dim)) + (carries * sign * beta)[:, None] * u[None, :]
        xs.append(torch.tensor(x, dtype=torch.float32))
    return xs, torch.tensor(y)


class Encoder(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class LateFusion(nn.Module):
    """Late fusion: the logits are the sum of one linear head per modality's features."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.encoders = nn.ModuleList([Encoder(dim, hidden) for _ in range(2)])
        self.heads = nn.ModuleList([nn.Linear(hidden, 2) for _ in range(2)])

    def unimodal_logits(self, xs, m):
        return self.heads[m](self.encoders[m](xs[m]))

    def forward(self, xs):
        return self.unimodal_logits(xs, 0) + self.unimodal_logits(xs, 1)


def accuracy(logits, y):
    return float((logits.argmax(-1) == y).float().mean())


def train_steps(model, params, loss_fn, epochs, lr):
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()


def probe_accuracy(model, train, test):
    """Linear probe (logistic regression) on each frozen encoder's features."""
    from sklearn.linear_model import LogisticRegression

    (xs_tr, y_tr), (xs_te, y_te) = train, test
    out = []
    with torch.no_grad():
        for m in range(2):
            f_tr = model.encoders[m](xs_tr[m]).numpy()
            f_te = model.encoders[m](xs_te[m]).numpy()
            clf = LogisticRegression(max_iter=2000).fit(f_tr, y_tr.numpy())
            out.append(float(clf.score(f_te, y_te.numpy())))
    return out


def pid_probe(model, xs, y, clusters):
    """PID of the two encoders' (discretised) features and the label."""
    with torch.no_grad():
        f = [model.encoders[m](xs[m]).numpy() for m in range(2)]
    return estimate(f[0], f[1], y.numpy(), clusters=clusters, components=3).pid


def run_seed(seed, cfg, trace=False):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    train = make_data(rng, cfg["n_train"], cfg["dim"], cfg["betas"])
    test = make_data(rng, cfg["n_test"], cfg["dim"], cfg["betas"])
    xs, y = train
    ce = nn.functional.cross_entropy
    results = {}

    # Unimodal models.
    for m in range(2):
        model = LateFusion(cfg["dim"], cfg["hidden"])
        train_steps(model, list(model.encoders[m].parameters()) + list(model.heads[m].parameters()),
                    lambda: ce(model.unimodal_logits(xs, m), y), cfg["epochs"], cfg["lr"])
        with torch.no_grad():
            results[f"unimodal x{m + 1}"] = accuracy(model.unimodal_logits(test[0], m), test[1])

    # Naive joint training from scratch.
    torch.manual_seed(seed)
    naive = LateFusion(cfg["dim"], cfg["hidden"])
    train_steps(naive, naive.parameters(), lambda: ce(naive(xs), y), cfg["epochs"], cfg["lr"])
    with torch.no_grad():
        results["naive joint"] = accuracy(naive(test[0]), test[1])
    results["naive probe x1"], results["naive probe x2"] = probe_accuracy(naive, train, test)

    # Two-stage: unimodal training steered by the controller, then joint training.
    torch.manual_seed(seed)
    model = LateFusion(cfg["dim"], cfg["hidden"])
    controller = fastpid.TwoStageController(ratio=cfg["ratio"], max_epoch=cfg["max_unimodal_epochs"], probe_every=cfg["probe_every"])
    opts = [torch.optim.Adam(list(model.encoders[m].parameters()) + list(model.heads[m].parameters()), lr=cfg["lr"]) for m in range(2)]
    trajectory = []
    epoch = 0
    while controller.stage == "unimodal":
        for m, name in enumerate(("x1", "x2")):
            if name in controller.training:
                for _ in range(cfg["steps_per_epoch"]):
                    opts[m].zero_grad()
                    ce(model.unimodal_logits(xs, m), y).backward()
                    opts[m].step()
        epoch += 1
        if controller.should_probe(epoch):
            pid = pid_probe(model, xs, y, cfg["clusters"])
            decision = controller.update(epoch, pid)
            trajectory.append({"epoch": epoch, "unique1": float(pid.unique1), "unique2": float(pid.unique2),
                               "synergy": float(pid.synergy), "redundancy": float(pid.redundancy),
                               "train": list(decision.train), "reason": decision.reason})
    unimodal_epochs = epoch
    remaining = max(cfg["epochs"] - unimodal_epochs * cfg["steps_per_epoch"], cfg["joint_min_epochs"])
    train_steps(model, model.parameters(), lambda: ce(model(xs), y), remaining, cfg["lr"])
    with torch.no_grad():
        results["two-stage"] = accuracy(model(test[0]), test[1])
    results["two-stage probe x1"], results["two-stage probe x2"] = probe_accuracy(model, train, test)
    results["switches"] = controller.switches
    results["unimodal epochs"] = unimodal_epochs
    return results, (trajectory if trace else None)


def plot(trajectory, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [t["epoch"] for t in trajectory]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("unique1", "U1 (strong x1)"), ("unique2", "U2 (weak x2)"), ("synergy", "S"), ("redundancy", "R")):
        ax.plot(ep, [t[key] for t in trajectory], marker="o", ms=3, label=label)
    previous = [{"train": ["x1", "x2"]}] + trajectory[:-1]  # both modalities train at the start
    for prev, cur in zip(previous, trajectory):
        if cur["train"] != prev["train"]:
            ax.axvline(cur["epoch"], color="gray", ls=":", lw=1)
            ax.text(cur["epoch"], ax.get_ylim()[1] * 0.95, "+".join(cur["train"]), rotation=90, va="top", fontsize=7)
    ax.set_xlabel("unimodal epoch (controller probe)")
    ax.set_ylabel("bits (plug-in, encoder features clustered)")
    ax.set_title("PID of the two encoders during the controller's unimodal stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(all_results):
    keys = [k for k in all_results[0] if isinstance(all_results[0][k], float)]
    return {k: (float(np.mean([r[k] for r in all_results])), float(np.std([r[k] for r in all_results]))) for k in keys}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds and fewer epochs (CI)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    cfg = dict(n_train=500, n_test=2000, dim=50, betas=(2.5, 1.2), hidden=64, lr=1e-3, epochs=300,
               steps_per_epoch=10, ratio=3.0, max_unimodal_epochs=20, probe_every=1, clusters=10, joint_min_epochs=50)
    seeds = args.seeds or 5
    if args.quick:
        cfg.update(epochs=60, steps_per_epoch=5, max_unimodal_epochs=6, joint_min_epochs=20)
        seeds = args.seeds or 2
    args.out.mkdir(parents=True, exist_ok=True)
    all_results = []
    trajectory = None
    for seed in range(seeds):
        print(f"seed {seed + 1}/{seeds} ...", file=sys.stderr, flush=True)
        res, traj = run_seed(seed, cfg, trace=(seed == 0))
        all_results.append(res)
        trajectory = trajectory or traj
    summary = summarise(all_results)
    print(f"\nTest accuracy over {seeds} seeds (mean +- std):")
    for key, (mean, std) in summary.items():
        print(f"  {key:<22} {mean:.3f} +- {std:.3f}")
    plot(trajectory, args.out / ("pid_trajectory-quick.png" if args.quick else "pid_trajectory.png"))
    (args.out / ("modality_competition-quick.json" if args.quick else "modality_competition.json")).write_text(
        json.dumps({"config": cfg, "seeds": seeds, "summary": summary, "per_seed": all_results, "trajectory_seed0": trajectory}, indent=2))
    return summary


if __name__ == "__main__":
    main()
