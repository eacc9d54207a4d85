"""Streamed, atomic ROOT output of generated rows in the input layout, and its reader.

The writer takes flat, ingest-style rows chunk by chunk (each chunk holds whole events, rows of
one event contiguous) and appends them to one TTree with ``uproot``'s ``extend``: memory stays
bounded by one chunk whatever the number of generated rows. The file appears under its final name
only when every chunk is written (``atomic_path``).

Per-object columns that belong to no collection (``object_index``) travel inside the first written
collection (``Jet_object_index``) so every generated object traces back to its raw row; the event
identity (``source_file``, ``entry``, ``run``, ...) is written as event-level branches.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import awkward as ak
import numpy as np
import pandas as pd
import uproot

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.reproducible import fixed_root_timestamps, stable_uuid
from pipeline_steps.generate.layout import EVENT_KEYS, CollectionLayout, OutputLayout

PER_OBJECT_EXTRAS = ("object_index",)


@contextlib.contextmanager
def root_writer(path: str | Path, layout: OutputLayout) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yield ``write(rows)``; each call appends whole events to ``layout.tree`` in ``path``."""
    # An open file object (not the random temporary name), a UUID derived from the path and fixed
    # key times: the same rows give the same bytes (pipeline_steps.common.reproducible).
    with (
        atomic_path(path) as tmp_path,
        open(tmp_path, "wb+") as sink,
        fixed_root_timestamps(),
        uproot.recreate(sink, uuid_function=stable_uuid(Path(path).as_posix())) as root_file,
    ):
        state: dict[str, object] = {}

        def write(rows: pd.DataFrame) -> None:
            branches, names = to_branches(rows, layout)
            if "tree" not in state:
                state["tree"] = root_file.mktree(
                    layout.tree,
                    {key: _branch_type(value) for key, value in branches.items()},
                    counter_name=lambda counted: names[counted][0],
                    field_name=lambda outer, inner: f"{names[outer][1]}{inner}",
                )
            state["tree"].extend(branches)

        yield write
        if "tree" not in state:
            raise InputError(f"{path}: no generated rows to write (the conditions table was empty)")


def to_branches(rows: pd.DataFrame, layout: OutputLayout) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Flat rows -> ({key: array}, {collection key: (counter, prefix)}) for ``uproot`` extend."""
    if not layout.jagged:
        return {column: _numpy(rows[column]) for column in rows.columns}, {}
    counts = _event_counts(rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    written = [c for c in layout.collections if any(col in rows.columns for col in c.columns)]
    if not written:
        raise InputError(f"generated columns {list(rows.columns)} fill none of the tree's collections")
    branches: dict = {}
    names: dict[str, tuple[str, str]] = {}
    for position, collection in enumerate(written):
        fields = {collection.columns[col]: _numpy(rows[col]) for col in collection.columns if col in rows.columns}
        if position == 0:
            fields.update({extra: _numpy(rows[extra]) for extra in PER_OBJECT_EXTRAS if extra in rows.columns})
            if layout.match_index and len(written) > 1:
                fields[layout.match_index] = _local_index(counts)
        key = f"__{collection.name}"
        branches[key] = ak.zip({name: ak.unflatten(values, counts) for name, values in fields.items()})
        names[key] = (collection.counter, collection.prefix)
    in_collections = {col for c in written for col in c.columns} | set(PER_OBJECT_EXTRAS)
    for column in rows.columns:
        if column not in in_collections:
            branches[column] = _numpy(rows[column])[starts]
    return branches, names


def read_generated_root(path: str | Path, layout: OutputLayout) -> pd.DataFrame:
    """Read a file written by ``root_writer`` back into flat ingest-style columns (one row per object)."""
    try:
        tree = uproot.open(path)[layout.tree]
    except (OSError, KeyError) as error:
        raise InputError(f"{path}: cannot read tree {layout.tree!r}: {error}") from error
    arrays = tree.arrays(library="ak")
    names = set(arrays.fields)
    if not layout.jagged:
        return pd.DataFrame({name: _to_numpy(arrays[name]) for name in arrays.fields})
    present = [c for c in layout.collections if c.counter in names]
    counts = ak.to_numpy(arrays[present[0].counter]).astype(np.int64)
    columns: dict[str, np.ndarray] = {}
    branch_to_column = _branch_to_column(present, layout)
    collection_branches = set(branch_to_column) | {c.counter for c in present}
    for name in arrays.fields:
        if name in branch_to_column:
            if branch_to_column[name] is not None:
                columns[branch_to_column[name]] = _to_numpy(ak.flatten(arrays[name]))
        elif name not in collection_branches:
            columns[name] = np.repeat(_to_numpy(arrays[name]), counts)
    return pd.DataFrame(columns)


def _branch_to_column(present: list[CollectionLayout], layout: OutputLayout) -> dict[str, str | None]:
    mapping: dict[str, str | None] = {}
    for position, collection in enumerate(present):
        mapping.update({collection.branch(col): col for col in collection.columns})
        if position == 0:
            mapping.update({f"{collection.prefix}{extra}": extra for extra in PER_OBJECT_EXTRAS})
            if layout.match_index:
                mapping[f"{collection.prefix}{layout.match_index}"] = None  # derived, not a column
    return mapping


def _event_counts(rows: pd.DataFrame) -> np.ndarray:
    """Objects per event: runs of equal (source_file, entry); one row per event without them."""
    if not all(key in rows.columns for key in EVENT_KEYS):
        return np.ones(len(rows), dtype=np.int64)
    keys = rows[list(EVENT_KEYS)]
    new_event = np.ones(len(rows), dtype=bool)
    new_event[1:] = (keys.iloc[1:].to_numpy() != keys.iloc[:-1].to_numpy()).any(axis=1)
    boundaries = np.flatnonzero(new_event)
    return np.diff(np.append(boundaries, len(rows)))


def _local_index(counts: np.ndarray) -> np.ndarray:
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(int(counts.sum())) - starts).astype(np.int32)


def _numpy(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy()
    return np.asarray(series.astype(str).to_numpy(), dtype=str)


def _to_numpy(array) -> np.ndarray:
    if isinstance(ak.type(array).content, ak.types.ListType) or str(ak.type(array).content) == "string":
        return np.asarray(ak.to_list(array), dtype=str)
    return ak.to_numpy(array)


def _branch_type(value):
    if isinstance(value, ak.Array):
        return ak.type(value)
    if value.dtype.kind == "U":
        return "string"
    return value.dtype
