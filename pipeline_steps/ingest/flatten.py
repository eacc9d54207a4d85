"""One chunk of entries (an awkward record array of branches) -> the table's columns.

Pure functions, no I/O: flatten the collection to one row per object, attach identity and event
fields, match to another collection through an index branch, apply the selection, keep the first
row per ``unique`` key within an entry. Chunks are whole entries, so every step is per-entry and
reading in chunks gives the same rows as reading at once.

Name resolution for ``selection`` and ``unique``: an output column name (after prefix and rename),
else a field of the table's own collection (branch ``<prefix><name>``, read even if not an output).
A ``match.selection`` names fields of the matched collection (unprefixed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.ingest.mapping import TableMapping, column_sources, output_columns
from pipeline_steps.ingest.selection import evaluate_selection, selection_names


@dataclass
class ChunkCounts:
    """What happened to the rows of a chunk; summed over chunks into the per-file summary."""

    entries: int = 0
    rows_in: int = 0
    unmatched_no_index: int = 0
    unmatched_index_out_of_range: int = 0
    unmatched_failed_match_selection: int = 0
    failed_selection: int = 0
    duplicates_removed: int = 0
    rows_out: int = 0

    def add(self, other: "ChunkCounts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Chunk:
    """Output columns of one chunk, in contract order (numpy arrays; sequences as awkward lists)."""

    columns: dict[str, object]
    counts: ChunkCounts = field(default_factory=ChunkCounts)


def required_branches(mapping: TableMapping, identity: tuple[str, ...]) -> list[str]:
    """Every branch the table needs: identity, event fields, fields, counters, index, selections."""
    branches = [*identity, *mapping.event_fields]
    if mapping.collection is not None:
        branches.append(mapping.collection.counter)
    branches += [mapping.field_branch(f) for f in mapping.fields]
    branches += [mapping.field_branch(name) for name in _extra_field_names(mapping, identity)]
    match = mapping.match
    if match is not None:
        branches += [mapping.field_branch(match.index), match.collection.counter]
        match_names = [*match.fields, *(selection_names(match.selection) if match.selection else [])]
        branches += [match.collection.branch(f) for f in match_names]
    for sequence in mapping.sequences:
        branches += [sequence.counter, *(f"{sequence.prefix}{f}" for f in sequence.fields)]
    return list(dict.fromkeys(branches))


def flatten_chunk(
    arrays: ak.Array, mapping: TableMapping, identity: tuple[str, ...], source_file: str, entry_start: int, where: str
) -> Chunk:
    """Columns of the table for entries ``entry_start ...`` of ``arrays``; ``where`` names file:tree in errors."""
    n_entries = len(arrays)
    entries = np.arange(entry_start, entry_start + n_entries, dtype=np.int64)
    counts = _object_counts(arrays, mapping, where, entries)
    entry_of_row = np.repeat(np.arange(n_entries), counts)
    object_index = (np.arange(len(entry_of_row)) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)
    columns: dict[str, object] = {
        "source_file": np.full(len(entry_of_row), source_file, dtype=object),
        "entry": entries[entry_of_row],
        "object_index": object_index,
    }
    for branch in identity:
        columns[branch] = _flat_event_branch(arrays, branch, where)[entry_of_row]
    chunk_counts = ChunkCounts(entries=n_entries, rows_in=len(entry_of_row))
    keep = np.ones(len(entry_of_row), dtype=bool)
    matched = _match_columns(arrays, mapping, counts, entry_of_row, entries, where, chunk_counts) if mapping.match else {}
    for name, (kind, source) in column_sources(mapping).items():
        if kind == "event":
            columns[name] = _flat_event_branch(arrays, source, where)[entry_of_row]
        elif kind == "field":
            columns[name] = _field_values(arrays, mapping, source, counts, where, entries)
        elif kind in ("match", "matched"):
            columns[name] = matched[source]
        else:
            columns[name] = _sequence_values(arrays, mapping, source, where, entries)
    if mapping.match is not None and not mapping.match.keep_unmatched:
        keep &= matched[""]
    keep = _apply_selection(arrays, mapping, columns, counts, keep, where, entries, chunk_counts)
    keep = _apply_unique(arrays, mapping, columns, counts, keep, where, entries, chunk_counts)
    chunk_counts.rows_out = int(keep.sum())
    ordered = {name: columns[name][keep] for name in output_columns(mapping, identity)}
    return Chunk(ordered, chunk_counts)


def _extra_field_names(mapping: TableMapping, identity: tuple[str, ...]) -> list[str]:
    """Names in selection/unique that are not output columns: fields of the table's collection."""
    outputs = set(output_columns(mapping, identity))
    names = [*(selection_names(mapping.selection) if mapping.selection else []), *mapping.unique]
    return [name for name in names if name not in outputs and name not in mapping.fields]


def _object_counts(arrays: ak.Array, mapping: TableMapping, where: str, entries: np.ndarray) -> np.ndarray:
    if mapping.collection is None:
        return np.ones(len(arrays), dtype=np.int64)
    return _counter(arrays, mapping.collection.counter, where)


def _counter(arrays: ak.Array, branch: str, where: str) -> np.ndarray:
    values = _flat_event_branch(arrays, branch, where)
    if not np.issubdtype(values.dtype, np.integer) or (len(values) and values.min() < 0):
        raise InputError(f"{where}: counter branch {branch!r} must hold non-negative integers, found {values.dtype}")
    return values.astype(np.int64)


def _flat_event_branch(arrays: ak.Array, branch: str, where: str) -> np.ndarray:
    values = arrays[branch]
    if values.ndim != 1:
        raise InputError(f"{where}: branch {branch!r} was expected to hold one value per entry, found {values.type}")
    return ak.to_numpy(values)


def _jagged_values(arrays: ak.Array, branch: str, counts: np.ndarray, counter: str, where: str, entries) -> np.ndarray:
    """Flattened values of a per-object branch, after checking its lengths against the counter."""
    values = arrays[branch]
    if values.ndim != 2:
        raise InputError(f"{where}: branch {branch!r} was expected to hold one value per object, found {values.type}")
    lengths = ak.to_numpy(ak.num(values, axis=1))
    bad = np.flatnonzero(lengths != counts)
    if len(bad):
        raise InputError(
            f"{where}: branch {branch!r} has {lengths[bad[0]]} values in entry {entries[bad[0]]}, "
            f"but counter {counter!r} says {counts[bad[0]]}"
        )
    return ak.to_numpy(ak.flatten(values, axis=1))


def _field_values(arrays, mapping: TableMapping, name: str, counts, where: str, entries) -> np.ndarray:
    branch = mapping.field_branch(name)
    if mapping.collection is None:
        return _flat_event_branch(arrays, branch, where)
    return _jagged_values(arrays, branch, counts, mapping.collection.counter, where, entries)


def _sequence_values(arrays, mapping: TableMapping, branch: str, where: str, entries) -> ak.Array:
    sequence = next(s for s in mapping.sequences if branch in {f"{s.prefix}{f}" for f in s.fields})
    counts = _counter(arrays, sequence.counter, where)
    _jagged_values(arrays, branch, counts, sequence.counter, where, entries)  # validates lengths
    return arrays[branch]


def _match_columns(arrays, mapping: TableMapping, counts, entry_of_row, entries, where, chunk_counts) -> dict:
    """{matched field: values per row, "": matched flag}; unmatched rows hold NaN.

    NanoAOD skims the target collection (GenJets below a pt threshold are not stored), so an index
    can point past the stored objects: such an object is unmatched, like a negative index, and is
    counted on its own (``unmatched_index_out_of_range``) so a production shows how often it happens.
    """
    match = mapping.match
    index_branch = mapping.field_branch(match.index)
    index = _jagged_values(arrays, index_branch, counts, mapping.collection.counter, where, entries).astype(np.int64)
    target_counts = _counter(arrays, match.collection.counter, where)
    out_of_range = index >= target_counts[entry_of_row]
    has_index = (index >= 0) & ~out_of_range
    target_row = np.where(has_index, (np.cumsum(target_counts) - target_counts)[entry_of_row] + index, 0)
    target = {
        name: _jagged_values(arrays, match.collection.branch(name), target_counts, match.collection.counter, where, entries)
        for name in dict.fromkeys([*match.fields, *(selection_names(match.selection) if match.selection else [])])
    }
    matched = has_index.copy()
    if match.selection and len(target_row):
        passes = evaluate_selection(match.selection, target, int(target_counts.sum()))
        matched &= passes[target_row] if len(passes) else False
    chunk_counts.unmatched_no_index += int((index < 0).sum())
    chunk_counts.unmatched_index_out_of_range += int(out_of_range.sum())
    chunk_counts.unmatched_failed_match_selection += int((has_index & ~matched).sum())
    result = {"": matched}
    for name in match.fields:
        values = target[name][target_row] if len(target[name]) else np.zeros(len(target_row), target[name].dtype)
        if match.keep_unmatched:
            values = values.astype(np.result_type(values.dtype, np.float32))
            values[~matched] = np.nan
        result[name] = values
    return result


def _resolved_columns(arrays, mapping: TableMapping, names, columns, counts, where, entries) -> dict:
    resolved = {}
    for name in names:
        if name in columns:
            resolved[name] = columns[name]
        elif name in mapping.fields or mapping.field_branch(name) in arrays.fields:
            resolved[name] = _field_values(arrays, mapping, name, counts, where, entries)
    return resolved


def _apply_selection(arrays, mapping, columns, counts, keep, where, entries, chunk_counts) -> np.ndarray:
    if not mapping.selection:
        return keep
    names = selection_names(mapping.selection)
    available = _resolved_columns(arrays, mapping, names, columns, counts, where, entries)
    available.update({k: v for k, v in columns.items() if k not in available})
    passes = evaluate_selection(mapping.selection, available, len(keep))
    chunk_counts.failed_selection += int((keep & ~passes).sum())
    return keep & passes


def _apply_unique(arrays, mapping, columns, counts, keep, where, entries, chunk_counts) -> np.ndarray:
    """Keep the first kept row (lowest object index) per (entry, unique keys)."""
    if not mapping.unique:
        return keep
    keys = _resolved_columns(arrays, mapping, mapping.unique, columns, counts, where, entries)
    missing = [name for name in mapping.unique if name not in keys]
    if missing:
        raise ConfigError(f"tables.{mapping.name}.unique: {missing} are neither output columns nor fields")
    rows = np.flatnonzero(keep)
    key_table = np.rec.fromarrays([columns["entry"][rows], *(np.asarray(keys[n])[rows] for n in mapping.unique)])
    _, first = np.unique(key_table, return_index=True)
    unique_keep = np.zeros_like(keep)
    unique_keep[rows[first]] = True
    chunk_counts.duplicates_removed += int(keep.sum() - unique_keep.sum())
    return unique_keep
