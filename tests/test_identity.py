"""Event boundaries from the row identity (common/identity.event_starts), which chunking and the ROOT writer share."""

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.identity import event_starts, events_in_several_files


def _reference_starts(rows: pd.DataFrame) -> np.ndarray:
    """The same boundaries from pandas' row-by-row comparison of the key tuples."""
    keys = list(zip(rows["source_file"], rows["entry"]))
    return np.array([i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]], dtype=np.int64)


@pytest.mark.parametrize("string_dtype", [object, "string[pyarrow]", "category"])
def test_an_event_ends_where_the_file_or_the_entry_changes(string_dtype):
    """A new file with the same entry number is a new event (entries restart in every raw file); the string
    column may come back from Parquet as pyarrow strings or as a category."""
    rows = pd.DataFrame({
        "source_file": pd.Series(["a.root", "a.root", "b.root", "b.root", "b.root", "dé.root", "a.root"],
                                 dtype=string_dtype),
        "entry": np.array([0, 0, 0, 1, 1, 1, 1], dtype=np.int64),
    })
    assert event_starts(rows).tolist() == [0, 2, 3, 5, 6]
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 4, 500)
    many = pd.DataFrame({"source_file": pd.Series(np.repeat(rng.choice(["x.root", "y.root"], 500), counts),
                                                  dtype=string_dtype),
                         "entry": np.repeat(rng.integers(0, 3, 500), counts)})
    np.testing.assert_array_equal(event_starts(many), _reference_starts(many))


def test_rows_without_the_keys_are_an_event_each_and_no_rows_no_events():
    assert event_starts(pd.DataFrame({"entry": [4, 4, 5]})).tolist() == [0, 1, 2]
    assert event_starts(pd.DataFrame({"source_file": pd.Series([], dtype=object),
                                      "entry": np.array([], dtype=np.int64)})).tolist() == []


def test_a_callers_codes_are_used_for_the_strings():
    seen = []

    def codes_of(series):
        seen.append(series.name)
        return pd.factorize(series)[0]

    event_starts(pd.DataFrame({"source_file": ["a", "b"], "entry": [0, 0]}), codes_of)
    assert seen == ["source_file"]


def test_events_in_several_files_ignore_nan_keys_and_report_plain_numbers():
    """A NaN key names no event (and its example had broken transforms.json, written without NaN); the report is
    written as JSON, so its values are Python numbers."""
    rows = pd.DataFrame({"source_file": ["a.root", "b.root", "a.root", "b.root", "c.root"],
                         "run": np.array([1, 1, 1, 1, 2], np.uint32),
                         "event": np.array([np.nan, np.nan, 7.0, 7.0, 7.0])})
    overlap = events_in_several_files(rows, ["run", "event"])
    assert overlap == {"events": 1, "of": 2, "files": ["a.root", "b.root"],
                       "example": {"run": 1, "event": 7.0, "files": ["a.root", "b.root"]}}
    assert type(overlap["example"]["run"]) is int
    assert events_in_several_files(rows.iloc[[0, 1, 4]], ["run", "event"]) is None
    assert events_in_several_files(rows, []) is None  # no identity branches: file and entry name the event
