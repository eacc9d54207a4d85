"""One chunk of entries (an awkward record array of branches) -> the table's columns.

Pure functions, no I/O: flatten the collection to one row per object, attach identity and event
fields, match to another collection through an index branch, apply the selection, keep the first
row per ``unique`` key within an entry. Chunks are whole entries, so every step is per-entry and
reading in chunks gives the same rows as reading at once.

Name resolution for ``selection`` and ``unique``: an output column name (after prefix and rename),
else a field of the table's own collection (branch ``<prefix><name>``, read even if not an output),
else, where the tree has no such branch, the event-level branch ``<name>`` (trigger and filter bits).
A ``match.selection`` names fields of the matched collection (unprefixed).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field

import awkward as ak
import numpy as np

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.ingest.branch_parts import part_base, whole_branch_problem
from pipeline_steps.ingest.mapping import Collection, Sequence, TableMapping, column_sources, output_columns
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
    """Output columns of one chunk, in contract order (numpy arrays; sequences as awkward lists; the
    file name as fixed-width UTF-8 bytes)."""

    columns: dict[str, object]
    counts: ChunkCounts = field(default_factory=ChunkCounts)


def required_branches(mapping: TableMapping, identity: tuple[str, ...], tree_branches=frozenset()) -> list[str]:
    """Every branch the table needs: identity, event fields, fields, counters, index, selections.

    A name in ``selection`` or ``unique`` that is no output column reads the collection's field
    (``<prefix><name>``), or, where ``tree_branches`` has no such branch but has ``name`` itself, that
    event-level branch (NanoAOD's ``HLT_IsoMu24``, ``Flag_goodVertices``): an event filter needs no
    ``event_fields`` entry and adds no column.
    """
    branches = [*identity, *mapping.event_fields]
    if mapping.collection is not None:
        branches += _counter_branches(mapping.collection)
    branches += [mapping.field_branch(f) for f in mapping.fields]
    branches += [_extra_branch(mapping, name, tree_branches) for name in _extra_field_names(mapping, identity)]
    match = mapping.match
    if match is not None:
        branches += [mapping.field_branch(match.index), *_counter_branches(match.collection)]
        match_names = [*match.fields, *(selection_names(match.selection) if match.selection else [])]
        branches += [match.collection.branch(f) for f in match_names]
    for sequence in mapping.sequences:
        branches += [*_counter_branches(sequence), *(sequence.branch(f) for f in sequence.fields)]
    return list(dict.fromkeys(branches))


def _counter_branches(group: Collection | Sequence) -> list[str]:
    return [] if group.counter is None else [group.counter]


def flatten_chunk(
    arrays: ak.Array, mapping: TableMapping, identity: tuple[str, ...], source_file: str, entry_start: int, where: str
) -> Chunk:
    """Columns of the table for entries ``entry_start ...`` of ``arrays``; ``where`` names file:tree in errors.

    Every branch is checked first (in output order, so the first problem is the one reported); the
    rows to keep are decided next, and each output column is gathered once, for the kept rows only.
    """
    n_entries = len(arrays)
    entries = np.arange(entry_start, entry_start + n_entries, dtype=np.int64)
    counts = _object_counts(arrays, mapping, where, entries)
    columns = _ChunkColumns(counts, entries, source_file)
    for branch in identity:
        columns.per_entry[branch] = _flat_event_branch(arrays, branch, where)
    chunk_counts = ChunkCounts(entries=n_entries, rows_in=columns.n_rows)
    keep = np.ones(columns.n_rows, dtype=bool)
    match = _match_rows(arrays, mapping, counts, columns.entry_of_row, entries, where, chunk_counts) if mapping.match else None
    for name, (kind, source) in column_sources(mapping).items():
        if kind == "event":
            columns.per_entry[name] = _flat_event_branch(arrays, source, where)
        elif kind == "field":
            columns.per_row[name] = _field_values(arrays, mapping, source, counts, where, entries)
        elif kind in ("match", "matched"):
            columns.matched[name] = (match, source)
        else:
            columns.lists[name] = _sequence_values(arrays, mapping, source, where, entries)
    if match is not None and not mapping.match.keep_unmatched:
        keep &= match.matched
    keep = _apply_selection(arrays, mapping, columns, counts, keep, where, entries, chunk_counts)
    keep = _apply_unique(arrays, mapping, columns, counts, keep, where, entries, chunk_counts)
    chunk_counts.rows_out = int(keep.sum())
    return Chunk(columns.kept(output_columns(mapping, identity), keep), chunk_counts)


class _ChunkColumns(Mapping):
    """The chunk's columns, each full length (one value per object) only when asked for.

    Identity and event fields are held once per entry and matched fields as target values plus the
    row each object points to; ``columns[name]`` (a selection, ``unique``) builds the full column,
    ``kept`` builds each output column for the kept rows directly, so no column is gathered twice.
    """

    def __init__(self, counts: np.ndarray, entries: np.ndarray, source_file: str):
        self.entry_of_row = np.repeat(np.arange(len(counts)), counts)
        self.n_rows = len(self.entry_of_row)
        self.counts, self.source_file = counts, source_file
        self.per_entry: dict[str, np.ndarray] = {"entry": entries}
        self.per_row: dict[str, np.ndarray] = {}
        self.matched: dict[str, tuple[_MatchedRows, str]] = {}
        self.lists: dict[str, ak.Array] = {}
        self._full: dict[str, object] = {}

    def _names(self) -> list[str]:
        return ["source_file", "object_index", *self.per_entry, *self.per_row, *self.matched, *self.lists]

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __getitem__(self, name: str):
        if name not in self._full:
            if name not in self:
                raise KeyError(name)
            self._full[name] = self._rows(name, None)
        return self._full[name]

    def kept(self, names: list[str], keep: np.ndarray) -> dict[str, object]:
        rows = None if keep.all() else np.flatnonzero(keep)
        return {name: self.lists[name][keep] if name in self.lists else self._rows(name, rows) for name in names}

    def _rows(self, name: str, rows: np.ndarray | None):
        """Column ``name`` at ``rows`` (None: every row)."""
        if name in self.lists:
            return self.lists[name]
        if name == "source_file":
            return _file_name_column(self.source_file, self.n_rows if rows is None else len(rows))
        if name == "object_index":
            return _object_index(self.counts, self.entry_of_row, rows)
        if name in self.per_entry:
            return self.per_entry[name][self.entry_of_row if rows is None else self.entry_of_row[rows]]
        if name in self.per_row:
            return self.per_row[name] if rows is None else self.per_row[name][rows]
        match, source = self.matched[name]
        return match.values(source, rows)


def _extra_branch(mapping: TableMapping, name: str, tree_branches) -> str:
    branch = mapping.field_branch(name)
    if branch in tree_branches or part_base(branch, tree_branches):
        return branch
    return name if name in tree_branches or part_base(name, tree_branches) else branch


def name_alternatives(mapping: TableMapping, identity: tuple[str, ...]) -> dict[str, str]:
    """For a missing branch a ``selection``/``unique`` name was read from, the other branch it could have been:
    ``Jet_HLT_IsoMu24`` <-> ``HLT_IsoMu24`` (``required_branches``)."""
    if mapping.collection is None:
        return {}
    pairs = {mapping.field_branch(name): name for name in _extra_field_names(mapping, identity)}
    return {**pairs, **{name: branch for branch, name in pairs.items()}}


def _extra_field_names(mapping: TableMapping, identity: tuple[str, ...]) -> list[str]:
    """Names in selection/unique that are not output columns: fields of the table's collection."""
    outputs = set(output_columns(mapping, identity))
    names = [*(selection_names(mapping.selection) if mapping.selection else []), *mapping.unique]
    return [name for name in names if name not in outputs and name not in mapping.fields]


def _object_counts(arrays: ak.Array, mapping: TableMapping, where: str, entries: np.ndarray) -> np.ndarray:
    if mapping.collection is None:
        return np.ones(len(arrays), dtype=np.int64)
    return _group_counts(arrays, mapping.collection, where)


def _group_counts(arrays: ak.Array, group: Collection | Sequence, where: str) -> np.ndarray:
    """Objects per entry of a collection or sequence: its counter branch, else its first branch's lengths."""
    if group.counter is not None:
        return _counter(arrays, group.counter, where)
    values = arrays[group.counting_branch]
    if values.ndim != 2:
        raise InputError(f"{where}: branch {group.counting_branch!r} was expected to hold one value per object "
                         f"(the collection has no counter, so its lengths count the objects), found "
                         f"{values.type.content} per entry")
    return _lengths_and_content(values)[0].astype(np.int64)


def _counted_by(group: Collection | Sequence, count: int) -> str:
    """What says an entry holds ``count`` objects, for a length mismatch's message."""
    if group.counter is not None:
        return f"counter {group.counter!r} says {count}"
    return (f"{group.counting_branch!r} has {count} (without a counter, the collection's branches must have the "
            f"same lengths)")


def _counter(arrays: ak.Array, branch: str, where: str) -> np.ndarray:
    values = _flat_event_branch(arrays, branch, where)
    if not np.issubdtype(values.dtype, np.integer):
        raise InputError(f"{where}: counter branch {branch!r} must hold non-negative integers, found {values.dtype}")
    if len(values) and values.min() < 0:
        raise InputError(f"{where}: counter branch {branch!r} must hold non-negative integers, found "
                         f"{values.min()} (a {values.dtype} count of objects)")
    return values.astype(np.int64)


def _flat_event_branch(arrays: ak.Array, branch: str, where: str) -> np.ndarray:
    values = _numbers(arrays, branch, where)
    if values.ndim != 1:
        raise InputError(f"{where}: branch {branch!r} was expected to hold one value per entry, found {values.type.content} per entry")
    return ak.to_numpy(values)


def _jagged_values(arrays: ak.Array, branch: str, counts: np.ndarray, group: Collection | Sequence, where: str,
                   entries) -> np.ndarray:
    """Flattened values of a per-object branch, after checking its lengths against ``group``'s counts."""
    values = _numbers(arrays, branch, where)
    if values.ndim != 2:
        raise InputError(f"{where}: branch {branch!r} was expected to hold one value per object, found {values.type.content} per entry")
    lengths, flat = _lengths_and_content(values)
    bad = np.flatnonzero(lengths != counts)
    if len(bad):
        raise InputError(
            f"{where}: branch {branch!r} has {lengths[bad[0]]} values in entry {entries[bad[0]]}, "
            f"but {_counted_by(group, counts[bad[0]])}"
        )
    return flat


def _numbers(arrays: ak.Array, branch: str, where: str) -> ak.Array:
    """``arrays[branch]``, refused naming a part to give where it holds a leaf-list's records (they had stopped
    the Parquet write as "Unsupported numpy type 20") or a fixed-size array per value (``branch_parts``)."""
    values = arrays[branch]
    problem = whole_branch_problem(values, branch)
    if problem:
        raise InputError(f"{where}: {problem}")
    return values


def _lengths_and_content(values: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry lengths and the flat values of a jagged array of numbers.

    uproot gives a ListOffsetArray over a NumpyArray: read both from its offsets (a view, no copy);
    anything else goes through ak.num / ak.flatten.
    """
    layout = values.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data)
        content = layout.content.data
        if isinstance(content, np.ndarray) and content.ndim == 1:
            return np.diff(offsets), content[offsets[0]:offsets[-1]]
    return ak.to_numpy(ak.num(values, axis=1)), ak.to_numpy(ak.flatten(values, axis=1))


def _file_name_column(source_file: str, n_rows: int) -> np.ndarray:
    """The file name once per row as fixed-width UTF-8 bytes (one fill, no Python string objects)."""
    encoded = source_file.encode()
    return np.full(n_rows, encoded, dtype=f"S{max(len(encoded), 1)}")


def _field_values(arrays, mapping: TableMapping, name: str, counts, where: str, entries) -> np.ndarray:
    branch = mapping.field_branch(name)
    if mapping.collection is None:
        return _flat_event_branch(arrays, branch, where)
    return _jagged_values(arrays, branch, counts, mapping.collection, where, entries)


def _sequence_values(arrays, mapping: TableMapping, branch: str, where: str, entries) -> ak.Array:
    sequence = next(s for s in mapping.sequences if branch in {s.branch(f) for f in s.fields})
    counts = _group_counts(arrays, sequence, where)
    _jagged_values(arrays, branch, counts, sequence, where, entries)  # validates lengths
    return arrays[branch]


@dataclass
class _MatchedRows:
    """Where each object's match points: ``target_row`` into the flat ``target`` values, and whether
    it is matched; unmatched objects read NaN with ``keep_unmatched``, else they are dropped."""

    target: dict[str, np.ndarray]
    target_row: np.ndarray
    matched: np.ndarray
    keep_unmatched: bool

    def values(self, name: str, rows: np.ndarray | None) -> np.ndarray:
        """Matched field ``name`` (or the flag, ``""``) for ``rows`` (None: every row)."""
        matched = self.matched if rows is None else self.matched[rows]
        if name == "":
            return matched.copy() if rows is None else matched
        target_row = self.target_row if rows is None else self.target_row[rows]
        target = self.target[name]
        values = target[target_row] if len(target) else np.zeros(len(target_row), target.dtype)
        if self.keep_unmatched:
            values = values.astype(np.result_type(values.dtype, np.float32))
            values[~matched] = np.nan
        return values


def _match_rows(arrays, mapping: TableMapping, counts, entry_of_row, entries, where, chunk_counts) -> _MatchedRows:
    """Link each object to its target through the index branch, counting why objects stay unmatched.

    NanoAOD skims the target collection (GenJets below a pt threshold are not stored), so an index
    can point past the stored objects: such an object is unmatched, like a negative index, and is
    counted on its own (``unmatched_index_out_of_range``) so a production shows how often it happens.
    """
    match = mapping.match
    index_branch = mapping.field_branch(match.index)
    index = _jagged_values(arrays, index_branch, counts, mapping.collection, where, entries)
    if not np.issubdtype(index.dtype, np.integer):  # a float index had been truncated (1.9 -> 1), NaN made -2**63
        raise InputError(f"{where}: match index branch {index_branch!r} must hold integers (positions in the "
                         f"collection counted by {match.collection.counting_branch!r}, -1 for none), found {index.dtype}")
    index = index.astype(np.int64)
    target_counts = _group_counts(arrays, match.collection, where)
    out_of_range = index >= target_counts[entry_of_row]
    has_index = (index >= 0) & ~out_of_range
    target_row = np.where(has_index, (np.cumsum(target_counts) - target_counts)[entry_of_row] + index, 0)
    target = {
        name: _jagged_values(arrays, match.collection.branch(name), target_counts, match.collection, where, entries)
        for name in dict.fromkeys([*match.fields, *(selection_names(match.selection) if match.selection else [])])
    }
    matched = has_index.copy()
    if match.selection and len(target_row):
        passes = evaluate_selection(match.selection, target, int(target_counts.sum()))
        matched &= passes[target_row] if len(passes) else False
    chunk_counts.unmatched_no_index += int((index < 0).sum())
    chunk_counts.unmatched_index_out_of_range += int(out_of_range.sum())
    chunk_counts.unmatched_failed_match_selection += int((has_index & ~matched).sum())
    return _MatchedRows(target, target_row, matched, match.keep_unmatched)


def _object_index(counts: np.ndarray, entry_of_row: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """Position of each object in its entry's collection (int32)."""
    first_row = np.cumsum(counts) - counts
    if rows is None:
        rows, entry_of_row = np.arange(len(entry_of_row)), entry_of_row
    else:
        entry_of_row = entry_of_row[rows]
    return (rows - first_row[entry_of_row]).astype(np.int32)


def _resolved_columns(arrays, mapping: TableMapping, names, columns, counts, where, entries) -> dict:
    resolved = {}
    for name in names:
        if name in columns:
            resolved[name] = columns[name]
        elif name in mapping.fields or mapping.field_branch(name) in arrays.fields:
            resolved[name] = _field_values(arrays, mapping, name, counts, where, entries)
        elif name in arrays.fields:  # an event-level branch (required_branches): one value per entry, per row
            resolved[name] = _flat_event_branch(arrays, name, where)[columns.entry_of_row]
    return resolved


def _apply_selection(arrays, mapping, columns, counts, keep, where, entries, chunk_counts) -> np.ndarray:
    if not mapping.selection:
        return keep
    names = selection_names(mapping.selection)
    available = ChainMap(_resolved_columns(arrays, mapping, names, columns, counts, where, entries), columns)
    passes = evaluate_selection(mapping.selection, available, len(keep))
    chunk_counts.failed_selection += int((keep & ~passes).sum())
    return keep & passes


def _apply_unique(arrays, mapping, columns, counts, keep, where, entries, chunk_counts) -> np.ndarray:
    """Keep the first kept row (lowest object index) per (entry, unique keys).

    A NaN key equals nothing (``np.unique`` of records, as ROOT's comparisons): rows whose key is NaN, such
    as unmatched objects' matched fields under ``keep_unmatched``, are each kept rather than merged into one.
    """
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
