"""Small synthetic CalRatio splits for tests and benchmarks (not workflow code)."""

from __future__ import annotations

import numpy as np

from pipeline_steps.models.calratio_rnn import SEQUENCE_NAMES


def synthetic_split(n_jets: int, region: str, seed: int, lengths=(6, 5, 8), n_features=(4, 3, 5), n_jet_features: int = 5,
                    pad_value: float = 0.0) -> dict:
    """A small split with ``load_split``'s keys and class-dependent content.

    Main: label 0/1/2 cycling; CR: is_data alternating. Each jet has a random number of objects
    followed by ``pad_value`` padding; features and object counts depend on the class, so a network
    can learn something in a few steps.
    """
    rng = np.random.default_rng(seed)
    classes = np.arange(n_jets) % 3 if region == "main" else np.ones(n_jets, np.int64)
    split = {"jets": (rng.normal(size=(n_jets, n_jet_features)) + classes[:, None] * 0.5).astype(np.float32)}
    for name, length, features in zip(SEQUENCE_NAMES, lengths, n_features):
        values = rng.normal(loc=classes[:, None, None] * 0.3, size=(n_jets, length, features)).astype(np.float32)
        n_objects = rng.integers(1, length + 1, size=n_jets)
        values[np.arange(length)[None, :] >= n_objects[:, None]] = pad_value
        split[name] = values
    split["weight"] = rng.uniform(0.5, 1.5, n_jets).astype(np.float32)
    split["mc_weight"] = split["weight"].copy()
    split["jet_pt"] = np.exp(rng.normal(4.5, 0.5, n_jets)).astype(np.float32)
    split["llp_mS"] = np.where(classes == 0, rng.choice([50.0, 150.0], n_jets), np.nan).astype(np.float32)
    split["llp_mH"] = np.where(classes == 0, rng.choice([600.0, 1000.0], n_jets), np.nan).astype(np.float32)
    if region == "main":
        split["label"] = classes.astype(np.int64)
    else:
        split["is_data"] = (np.arange(n_jets) % 2).astype(np.int64)
    return split
