"""Row identity: the columns that name the raw object a row came from, from ingest to generation.

Ingest writes them first in every table (pipeline_steps/README.md, "Ingested tables"); categorise,
preprocess and generate carry them through, the split of a row is a hash of its event's (``split_keys``),
and generation groups the rows of one raw event by ``EVENT_KEYS`` to write them back as one tree entry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from pipeline_steps.common.errors import InputError

if TYPE_CHECKING:  # ingest imports this module and must not import pandas (~45 MiB, 0.4-0.9 s per job)
    import pandas as pd

logger = logging.getLogger(__name__)

EVENT_KEYS = ("source_file", "entry")
"""The raw event: the raw file's name and the TTree entry."""

IDENTITY_COLUMNS = (*EVENT_KEYS, "object_index")
"""The raw object: its event and its index inside the collection (0 for flat trees)."""


def split_keys(identity: Iterable[str]) -> list[str]:
    """The columns of ``identity`` that name a row's raw *event*, which its train/validation/test split is
    hashed from: the dataset's identity branches (``run``, ``luminosityBlock``, ``event``) when it has any,
    else the raw file's name and entry (``EVENT_KEYS``).

    The event, not the object: the objects of one event are correlated (jets sharing pile-up, the muons of
    one decay), so split by object an event trained and tested a model at once, and a generated event held
    only the objects of its test split (1 of an event's 3 jets). The branches, not file and entry: the same
    event stays in its split however the files are cut, merged or named (a file cut in two had moved 980 of
    3000 rows to another split), and an event present in two files is not in train and test at once.
    """
    own = [name for name in identity if name not in IDENTITY_COLUMNS]
    return own or list(EVENT_KEYS)


def check_event_identity(rows: pd.DataFrame, identity: Iterable[str], where: str) -> None:
    """Refuse identity branches that do not name an event uniquely within a raw file (``InputError``).

    Call it for a table read from a collection, where an entry is an event (the caller knows it from the
    table's mapping; the rows cannot tell: a selection may keep only each event's first object). The split
    follows the branches (``split_keys``): ``identity: [run]`` had put every row of a one-run file in one
    split. One key on two entries of a file is the sign, while the same key in two files (a re-skim) is the
    same event, which the split is right to keep together. A flat tree's entries are objects (LHCb's tracks,
    CalRatio's jets), which share their event's key by design: there ``split.check_splits_filled`` says more.
    """
    keys = [name for name in split_keys(identity) if name not in EVENT_KEYS]
    if not keys:
        return
    events = rows[[*EVENT_KEYS, *keys]].drop_duplicates(list(EVENT_KEYS))
    shared = events.duplicated(["source_file", *keys], keep=False)
    if shared.any():
        example = events[shared].iloc[0]
        raise InputError(
            f"{where}: the identity branches {keys} do not name an event uniquely: {int(shared.sum())} of "
            f"{len(events)} events share their values with another entry of the same file (e.g. raw file "
            f"{example['source_file']}, entry {int(example['entry'])}: "
            f"{', '.join(f'{name} {example[name]}' for name in keys)}), and a row's split "
            f"follows them; list branches that tell events apart (run, luminosityBlock, event) in the "
            f"dataset's identity, or none, to split by raw file and entry")


def events_in_several_files(rows: pd.DataFrame, identity: Iterable[str]) -> dict | None:
    """Events that more than one raw file holds, by the identity branches: ``{"events", "of", "files",
    "example"}``, or None when every event is in one file (or the dataset has no identity branches).

    Whole copies are caught at ingestion (``same_rows``), but a file that shares only some events with
    another was not: overlapping skims, a dataset merged with a re-processing of part of it, or two primary
    datasets that both recorded an event. The split keeps such an event in one split (``split_keys``), yet
    its objects count once per file in training and in the test rows. Distinct samples whose generators
    numbered events alike show the same way; there a branch that tells the samples apart belongs in the
    dataset's identity. A warning, as for whole copies: which of the two it is, only the user knows.
    """
    keys = [name for name in split_keys(identity) if name not in EVENT_KEYS]
    if not keys:
        return None
    events = rows[["source_file", *keys]].dropna(subset=keys).drop_duplicates()  # NaN names no event
    shared = events.duplicated(keys, keep=False)
    if not shared.any():
        return None
    in_several = events[shared]
    first = in_several.iloc[0]
    same_event = (in_several[keys] == first[keys]).all(axis=1)
    return {
        "events": int(len(in_several.drop_duplicates(keys))),
        "of": int(len(events.drop_duplicates(keys))),
        "files": sorted(str(name) for name in in_several["source_file"].unique()),
        "example": {**{name: _plain(first[name]) for name in keys},
                    "files": sorted(str(name) for name in in_several.loc[same_event, "source_file"])},
    }


def _plain(value):
    """A numpy scalar as the Python number JSON writes."""
    return value.item() if isinstance(value, np.generic) else value


def report_events_in_several_files(rows: pd.DataFrame, identity: Iterable[str], where: str, report: dict) -> None:
    """``events_in_several_files`` of ``rows`` as a warning naming ``where`` and as ``report["events_in_several_files"]``
    (a preprocessing report, written to ``transforms.json``); nothing when no event is in two files."""
    overlap = events_in_several_files(rows, identity)
    if not overlap:
        return
    example = overlap["example"]
    keys = ", ".join(f"{name} {value}" for name, value in example.items() if name != "files")
    files = overlap["files"]
    logger.warning(
        f"{where}: {overlap['events']} of {overlap['of']} events are held by more than one raw file "
        f"({len(files)} files: {files[:6]}{' ...' if len(files) > 6 else ''}; e.g. {keys} in {example['files']}): "
        f"overlapping skims or datasets count those events once per file in training and test, so blacklist "
        f"one of each overlapping pair or remove the overlap from the inputs; if the files are distinct "
        f"samples that number events alike, add a branch that tells them apart to the dataset's identity")
    report["events_in_several_files"] = overlap


def event_codes(rows: pd.DataFrame, identity: Iterable[str], where: str) -> np.ndarray:
    """One integer per row naming its event, by the columns the split follows (``split_keys``), so the
    validation resamples the same events the split kept together (``validate/resampling.py``)."""
    keys = split_keys(identity)
    missing = [name for name in keys if name not in rows.columns]
    if missing:
        raise InputError(f"{where}: columns {missing} missing; expected the event identity {keys} in every row")
    return rows.groupby(keys, sort=False, dropna=False).ngroup().to_numpy(np.int64)


def in_identity_order(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` sorted by the identity columns it has (stable; index reset): the order generation writes
    its rows in, so that generated row i is the pair of test row i wherever the two are compared."""
    order = [key for key in IDENTITY_COLUMNS if key in rows.columns]
    return rows.sort_values(order, kind="mergesort").reset_index(drop=True) if order else rows


def identity_columns(dataset_identity: Iterable[str] = ()) -> tuple[str, ...]:
    """``IDENTITY_COLUMNS`` followed by the dataset's ``identity`` branches (``run``, ``event``...) not among them."""
    return IDENTITY_COLUMNS + tuple(name for name in dataset_identity if name not in IDENTITY_COLUMNS)


def event_starts(rows: pd.DataFrame, codes_of: Callable[[pd.Series], np.ndarray] | None = None) -> np.ndarray:
    """Positions of the first row of each event, the rows of one event being contiguous (runs of equal
    ``EVENT_KEYS``); every row is an event of its own when ``rows`` lacks a key.

    Compared key by key on numpy arrays, strings (``source_file``) by integer codes (``codes_of``,
    default ``pd.factorize``; a caller that needs the codes again passes its cache): the keys as one
    Python-object matrix took 0.3-0.8 s per million rows read from Parquet (pyarrow-backed strings),
    0.03 s this way. pandas is imported here, not with the module, which ingest imports without pandas.
    """
    import pandas as pd

    if not all(key in rows.columns for key in EVENT_KEYS):
        return np.arange(len(rows))
    codes_of = codes_of or (lambda series: pd.factorize(series, use_na_sentinel=False)[0])
    changed = np.zeros(max(len(rows) - 1, 0), dtype=bool)
    for key in EVENT_KEYS:
        series = rows[key]
        numeric = pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
        values = series.to_numpy() if numeric else codes_of(series)
        changed |= values[1:] != values[:-1]
    return np.flatnonzero(np.r_[len(rows) > 0, changed])


def row_origin(rows: pd.DataFrame, position: int) -> str:
    """``raw file 3.root, entry 17, object 2`` for the row at ``position`` (identity columns)."""
    row = rows.iloc[position]
    return f"raw file {row['source_file']}, entry {int(row['entry'])}, object {int(row['object_index'])}"
