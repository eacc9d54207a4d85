"""Deterministic train/validation/test assignment from a hash of each row's event identity.

A row's split must never depend on row order, file order or how many files there are (adding a
file must not move existing events between splits), nor on a random generator's state. So each
row is hashed from the identity of its event alone (the callers pass ``common.identity.split_keys``:
the dataset's identity branches, else ``source_file`` and ``entry``; every object of an event shares
its split) and the hash, read as a number in [0, 1), is compared with the cumulative split fractions.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.identity import split_keys

SPLIT_NAMES = ("train", "validation", "test")

_TWO_TO_53 = float(2**53)


def assign_split(identity: pd.DataFrame, fractions: Mapping[str, float], salt: int) -> np.ndarray:
    """Return an array of "train"/"validation"/"test", one per row of ``identity``.

    ``identity`` holds only identity columns; their order and integer width do not matter (columns
    are sorted by name and integers widened to int64 before hashing, so an int32 ``object_index``
    in one file and int64 in another give the same split). ``salt`` (the config seed) picks a
    different but equally deterministic partition.
    """
    _check_fractions(fractions)
    if identity.shape[1] == 0:
        raise InputError("assign_split: no identity columns given; expected the event's (common.identity.split_keys)")
    uniform = identity_uniform(identity, salt)
    edges = np.cumsum([fractions[name] for name in SPLIT_NAMES])
    index = np.searchsorted(edges[:-1], uniform, side="right")
    return np.asarray(SPLIT_NAMES, dtype=object)[index]


def check_splits_filled(split: np.ndarray, rows: pd.DataFrame, identity: Iterable[str], fractions: Mapping[str, float],
                        where: str) -> None:
    """Every split has rows, or an ``InputError`` naming the split, its fraction and the events the identity
    names (``identity: [runNumber]`` had given CalRatio 600 training jets and empty validation and test
    splits, and the training then failed on "no jets" without a word of why; an empty test split had stopped
    generation, after the training)."""
    for name in SPLIT_NAMES:
        if not (np.asarray(split) == name).any():
            keys = split_keys(identity)
            events = len(rows[keys].drop_duplicates())
            raise InputError(f"{where}: no rows in the {name} split of {len(rows)} rows, {events} events by {keys} "
                             f"(split.{name} = {fractions.get(name)}); raise the fraction or ingest more files, or, "
                             f"if those are few events for so many rows, list branches in the dataset's identity "
                             f"that tell events apart")


def identity_uniform(identity: pd.DataFrame, salt: int) -> np.ndarray:
    """A number in [0, 1) per row, a pure function of the row's identity values and ``salt``."""
    normalised = _normalise(identity)
    hashes = pd.util.hash_pandas_object(normalised, index=False, hash_key=_hash_key(salt))
    return (hashes.to_numpy(dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / _TWO_TO_53


def _normalise(identity: pd.DataFrame) -> pd.DataFrame:
    """Columns sorted by name; integers/bools as int64, text as Python str (one hash per value)."""
    columns = {}
    for name in sorted(identity.columns):
        values = identity[name]
        if values.isna().any():
            raise InputError(f"assign_split: identity column {name!r} has missing values; identity must be complete")
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
            columns[name] = values.astype(np.int64).to_numpy()
        elif pd.api.types.is_float_dtype(values):
            columns[name] = values.astype(np.float64).to_numpy()
        else:
            columns[name] = values.astype(str).to_numpy(dtype=object)
    return pd.DataFrame(columns)


def _hash_key(salt: int) -> str:
    """pandas wants a 16-character key; derive it from the salt."""
    return f"{int(salt) % 10**16:016d}"


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if set(fractions) != set(SPLIT_NAMES):
        raise ConfigError(f"split fractions: expected keys {list(SPLIT_NAMES)}, got {sorted(fractions)}")
    if any(fractions[name] < 0 for name in SPLIT_NAMES):
        raise ConfigError(f"split fractions must be non-negative, got {dict(fractions)}")
    total = sum(fractions[name] for name in SPLIT_NAMES)
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must add up to 1, they add up to {total:g}")
