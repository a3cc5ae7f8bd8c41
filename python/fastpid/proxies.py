"""Cheap per-modality proxies for how much each modality tells about the label.

* ``mi_from_codes(codes, y)``: plug-in I(X_m; Y) of discretised features, batched over
  modalities (or checkpoints): codes of shape (n_samples,) or (M, n_samples).
* ``mi_from_probabilities(probs, y)``: a classifier-based estimate
      I(X_m; Y) ~= H(Y) - CE,   CE = -(1/n) sum_i log q_m(y_i | x_i),
  the Barber-Agakov lower bound evaluated with the model's predicted probabilities q_m
  (a unimodal head's softmax output) and the empirical label entropy H(Y). It is a lower
  bound up to sampling error and can be negative for a poor classifier.
* ``ecs(mi)``: effective competitive strength proxy of each modality as Tang et al. (2025)
  use mutual information for it, normalised to shares:  ECS_m = I(X_m;Y) / sum_k I(X_k;Y).
  A share far above 1/M marks a modality that will dominate joint training.
All values are in bits unless ``base`` says otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from ._backend import unit_of
from .info import entropy, mutual_information


def _labels(y):
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError("y must be a 1-D array of integer labels")
    values, codes = np.unique(y, return_inverse=True)
    return codes, len(values)


def mi_from_codes(codes, y, *, base=2):
    """Plug-in I(X_m; Y) for each row of ``codes`` (M, n) (or one row (n,))."""
    codes = np.atleast_2d(np.asarray(codes))
    cy, ny = _labels(y)
    if codes.shape[1] != len(cy):
        raise ValueError("codes and y must have the same number of samples")
    out = []
    for c in codes:
        _, cc = np.unique(c, return_inverse=True)
        joint = np.zeros((cc.max() + 1, ny))
        np.add.at(joint, (cc, cy), 1.0)
        out.append(float(mutual_information(joint / joint.sum(), base=base)))
    return np.array(out)


def mi_from_probabilities(probs, y, *, base=2):
    """H(Y) - cross-entropy for each modality's predicted probabilities (M, n, K) or (n, K)."""
    _, log_base = unit_of(base)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 2:
        probs = probs[None]
    y = np.asarray(y)
    if probs.shape[1] != len(y):
        raise ValueError("probs and y must have the same number of samples")
    if (probs < 0).any() or not np.allclose(probs.sum(-1), 1.0, atol=1e-6):
        raise ValueError("probs must be probabilities (non-negative rows summing to 1)")
    counts = np.bincount(y, minlength=probs.shape[2]).astype(float)
    h_y = float(entropy(counts / counts.sum(), base=math.e))
    picked = probs[:, np.arange(len(y)), y]
    ce = -np.mean(np.log(np.clip(picked, 1e-300, None)), axis=1)
    return (h_y - ce) / log_base


def ecs(mi):
    """Shares ECS_m = MI_m / sum_k MI_k of non-negative per-modality informations."""
    mi = np.clip(np.asarray(mi, dtype=np.float64), 0.0, None)
    total = mi.sum(axis=-1, keepdims=True)
    return np.where(total > 0, mi / np.where(total > 0, total, 1.0), 1.0 / mi.shape[-1])


__all__ = ["mi_from_codes", "mi_from_probabilities", "ecs"]
