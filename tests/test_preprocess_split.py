"""Deterministic splits: a row's split is a function of its identity only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.frames import concat_parts
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


def test_a_part_with_signed_event_numbers_keeps_the_other_parts_splits_and_exact_values():
    """Parts ingested separately can store ``event`` as uint64 (NanoAOD) and int64 (a skim); joined by
    ``pd.concat`` the column became float64 and 680 of 2000 rows changed split when the second part came."""
    first = _identity(["0.root"], entries=1000, objects=2)
    first["event"] += np.uint64(2**53 + 1)  # beyond float64's integers
    added = _identity(["1.root"]).astype({"event": np.int64})
    before = _by_key(first, assign_split(first, FRACTIONS, salt=7))
    grown = concat_parts([first, added], "test tables")
    assert grown["event"].dtype == np.int64
    assert np.array_equal(grown["event"].to_numpy()[:len(first)].astype(np.uint64), first["event"].to_numpy())
    after = _by_key(grown, assign_split(grown, FRACTIONS, salt=7))
    assert after.loc[before.index].equals(before)


@pytest.mark.parametrize(
    "unsigned, signed, expected",
    [([1, 2], [-3], np.int64), ([2**63 + 5], [0, 7], np.uint64), ([2**63 + 5], [-1], None)],
)
def test_mixed_integer_parts_get_a_type_that_holds_every_value_or_a_named_error(unsigned, signed, expected):
    parts = [pd.DataFrame({"event": np.array(unsigned, np.uint64)}), pd.DataFrame({"event": np.array(signed, np.int32)})]
    if expected is None:
        with pytest.raises(InputError, match=r"test tables: column 'event' is uint64 .* up to 9223372036854775813, .* "
                                             r"down to -1; no integer type holds both"):
            concat_parts(parts, "test tables")
        return
    joined = concat_parts(parts, "test tables")
    assert joined["event"].dtype == expected
    assert [int(v) for v in joined["event"]] == unsigned + signed


def test_an_empty_part_does_not_decide_a_columns_type():
    """An empty table's float64 column beside uint64 event numbers above 2^53 had made them float64."""
    big = pd.DataFrame({"event": np.array([2**60 + 1], np.uint64)})
    joined = concat_parts([big, pd.DataFrame({"event": np.array([], np.float64)})], "test tables")
    assert joined["event"].dtype == np.uint64 and int(joined["event"].iloc[0]) == 2**60 + 1
