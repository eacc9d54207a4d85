"""Deterministic splits: a row's split is a function of its identity only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.preprocess.split import SPLIT_NAMES, assign_split

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _identity(files: list[str], entries: int = 500, objects: int = 3) -> pd.DataFrame:
    """Identity columns of ``files`` x ``entries`` events x ``objects`` objects (NanoAOD-like)."""
    frames = []
    for number, name in enumerate(files):
        entry = np.repeat(np.arange(entries, dtype=np.int64), objects)
        frames.append(pd.DataFrame({
            "source_file": name,
            "entry": entry,
            "object_index": np.tile(np.arange(objects, dtype=np.int32), entries),
            "run": np.uint32(1),
            "event": (entry + 10_000 * number).astype(np.uint64),
        }))
    return pd.concat(frames, ignore_index=True)


def _by_key(identity: pd.DataFrame, split: np.ndarray) -> pd.Series:
    keys = identity["source_file"] + ":" + identity["entry"].astype(str) + ":" + identity["object_index"].astype(str)
    return pd.Series(split, index=keys.to_numpy())


def test_split_is_deterministic_and_independent_of_row_and_column_order():
    identity = _identity(["0.root", "1.root"])
    first = assign_split(identity, FRACTIONS, salt=42)
    assert np.array_equal(first, assign_split(identity, FRACTIONS, salt=42))
    shuffled = identity.sample(frac=1.0, random_state=3)[["event", "object_index", "run", "source_file", "entry"]]
    shuffled = shuffled.astype({"object_index": np.int64, "run": np.int64})  # another file's dtypes
    again = _by_key(shuffled, assign_split(shuffled, FRACTIONS, salt=42))
    expected = _by_key(identity, first)
    assert again.loc[expected.index].equals(expected)


def test_split_per_file_equals_split_of_all_files_and_adding_files_keeps_splits():
    identity = _identity(["0.root", "1.root", "2.root"])
    together = _by_key(identity, assign_split(identity, FRACTIONS, salt=7))
    one_by_one = pd.concat([
        _by_key(part, assign_split(part, FRACTIONS, salt=7)) for _, part in identity.groupby("source_file")
    ])
    assert one_by_one.loc[together.index].equals(together)
    grown = pd.concat([identity, _identity(["3.root", "4.root"])], ignore_index=True)
    grown_split = _by_key(grown, assign_split(grown, FRACTIONS, salt=7))
    assert grown_split.loc[together.index].equals(together)


def test_fractions_are_met_within_binomial_tolerance():
    identity = _identity([f"{n}.root" for n in range(4)], entries=2500, objects=2)  # 20k rows
    split = assign_split(identity, {"train": 0.7, "validation": 0.2, "test": 0.1}, salt=1)
    shares = pd.Series(split).value_counts(normalize=True)
    for name, fraction in {"train": 0.7, "validation": 0.2, "test": 0.1}.items():
        assert abs(shares[name] - fraction) < 0.015  # > 4 binomial sigmas at 20k rows
    assert set(split) == set(SPLIT_NAMES)


def test_salt_changes_the_partition_and_zero_fraction_stays_empty():
    identity = _identity(["0.root"], entries=2000)
    assert (assign_split(identity, FRACTIONS, 1) != assign_split(identity, FRACTIONS, 2)).mean() > 0.1
    split = assign_split(identity, {"train": 0.9, "validation": 0.0, "test": 0.1}, salt=1)
    assert "validation" not in set(split)


def test_bad_fractions_and_missing_identity_are_rejected():
    identity = _identity(["0.root"], entries=10)
    with pytest.raises(ConfigError, match="add up to 1"):
        assign_split(identity, {"train": 0.8, "validation": 0.3, "test": 0.1}, salt=0)
    with pytest.raises(ConfigError, match="expected keys"):
        assign_split(identity, {"train": 1.0}, salt=0)
    broken = identity.astype({"entry": float})
    broken.loc[0, "entry"] = np.nan
    with pytest.raises(InputError, match="entry"):
        assign_split(broken, FRACTIONS, salt=0)
