"""Typed mapping from branches to a table, built once from a dataset's config slice.

The config says *which* branches make a table (``datasets.<name>.tables.<table>``); this module turns
that dict into frozen dataclasses and answers the two questions the reader asks: which branches must
be read, and what the output columns are called (identity first, see pipeline_steps/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.common.identity import IDENTITY_COLUMNS


@dataclass(frozen=True)
class Collection:
    """A jagged collection: ``counter`` (objects per entry) and the branch-name ``prefix``.

    ``counter`` is None for a collection stored as ``std::vector`` branches without a count branch (ATLAS
    and most analysis ntuples): its objects per entry are then the lengths of its first field's branch
    (``counting_branch``), and every other branch of it must have the same lengths.
    """

    counter: str | None
    prefix: str
    first_field: str

    def branch(self, field_name: str) -> str:
        return f"{self.prefix}{field_name}"

    @property
    def counting_branch(self) -> str:
        """The branch whose values (a counter) or lengths (no counter) give the objects per entry."""
        return self.counter or self.branch(self.first_field)


@dataclass(frozen=True)
class Match:
    """Link each object to one object of another collection through an index branch.

    ``index`` is a field of the table's collection (branch ``<collection.prefix><index>``); a
    negative index means "no match", and so does one past the target collection's stored objects
    (NanoAOD skims GenJets below a pt threshold; counted as ``unmatched_index_out_of_range``). ``selection`` is evaluated on the matched collection's fields
    (unprefixed names); a matched object failing it counts as unmatched.
    """

    index: str
    collection: Collection
    fields: tuple[str, ...]
    output_prefix: str = ""
    selection: str | None = None
    keep_unmatched: bool = False


@dataclass(frozen=True)
class Sequence:
    """Variable-length per-entry sequence kept as list columns named like its branches."""

    name: str
    counter: str | None  # None: ``std::vector`` branches counted by their own lengths, as ``Collection``'s
    prefix: str
    fields: tuple[str, ...]

    def branch(self, field_name: str) -> str:
        return f"{self.prefix}{field_name}"

    @property
    def counting_branch(self) -> str:
        return self.counter or self.branch(self.fields[0])


@dataclass(frozen=True)
class TableMapping:
    """One output table: a collection (one row per object) or a flat tree (one row per entry)."""

    name: str
    fields: tuple[str, ...]
    collection: Collection | None = None
    event_fields: tuple[str, ...] = ()
    output_prefix: str = ""
    rename: Mapping[str, str] = field(default_factory=dict)
    selection: str | None = None
    unique: tuple[str, ...] = ()
    match: Match | None = None
    sequences: tuple[Sequence, ...] = ()

    def field_branch(self, field_name: str) -> str:
        """Branch of one of the table's own fields (flat tables: the field *is* the branch)."""
        return self.collection.branch(field_name) if self.collection else field_name


@dataclass(frozen=True)
class Reading:
    """How a dataset's files are read: tree name, entries per step, empty-tree policy, identity."""

    tree: str
    step_size: int = 20000
    empty_tree: str = "error"
    identity: tuple[str, ...] = ()


def reading_from_config(settings: Mapping[str, Any]) -> Reading:
    """Build ``Reading`` from a dataset slice (``tree``, ``step_size``, ``empty_tree``, ``identity``)."""
    step_size = int(settings.get("step_size", 20000))
    empty_tree = settings.get("empty_tree", "error")
    if step_size < 1:
        raise ConfigError(f"step_size: expected a positive number of entries, got {step_size}")
    if empty_tree not in ("error", "empty_table"):
        raise ConfigError(f"empty_tree: expected 'error' or 'empty_table', got {empty_tree!r}")
    return Reading(
        tree=str(settings["tree"]),
        step_size=step_size,
        empty_tree=empty_tree,
        identity=tuple(settings.get("identity") or ()),
    )


def table_from_config(name: str, settings: Mapping[str, Any]) -> TableMapping:
    """Build a ``TableMapping`` from ``datasets.<d>.tables.<name>``; ConfigError if inconsistent."""
    collection = _collection(settings.get("collection"), settings["fields"], f"tables.{name}.collection")
    sequences = tuple(
        Sequence(seq_name, _counter_of(seq, seq["fields"], f"tables.{name}.sequences.{seq_name}"),
                 seq.get("prefix", ""), tuple(seq["fields"]))
        for seq_name, seq in (settings.get("sequences") or {}).items()
    )
    if sequences and collection is not None:
        raise ConfigError(
            f"tables.{name}: 'sequences' need a flat table (one row per entry), but 'collection' is also set"
        )
    match_settings = settings.get("match")
    if match_settings is not None and collection is None:
        raise ConfigError(f"tables.{name}.match: matching needs the table's own 'collection' (counter + prefix)")
    mapping = TableMapping(
        name=name,
        fields=tuple(settings["fields"]),
        collection=collection,
        event_fields=tuple(settings.get("event_fields") or ()),
        output_prefix=settings.get("output_prefix", ""),
        rename=dict(settings.get("rename") or {}),
        selection=settings.get("selection"),
        unique=tuple(settings.get("unique") or ()),
        match=_match(match_settings, f"tables.{name}.match.collection"),
        sequences=sequences,
    )
    output_columns(mapping, ())  # raises ConfigError on clashing or unknown names
    return mapping


def output_columns(mapping: TableMapping, identity: tuple[str, ...] | list[str]) -> list[str]:
    """Output column names in contract order: identity, event fields, fields, matched, sequences."""
    renamed = _renamed_columns(mapping)
    columns = [*IDENTITY_COLUMNS, *identity, *(renamed[c] for c in _physics_columns(mapping))]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    reserved = sorted(set(identity) & set(IDENTITY_COLUMNS))
    if reserved:  # 'rename' applies to physics columns only, so it cannot help here
        raise ConfigError(f"tables.{mapping.name}: identity branches {reserved} have the names of the workflow's own "
                          f"columns {list(IDENTITY_COLUMNS)} (the raw file, the TTree entry, the object's position); "
                          f"leave them out of 'identity' (the entry identifies the event within its file); to keep such a "
                          f"branch's values, list it in 'event_fields' with a 'rename'")
    if duplicates:
        raise ConfigError(f"tables.{mapping.name}: output columns {duplicates} appear twice; give each once, or "
                          f"use 'rename' for a field or matched column that shares a name")
    return columns


def column_name(name: str) -> str:
    """The column a field or event field is written to: an array element's brackets become underscores
    (``cov[0][1]`` -> ``cov_0_1``, ``Lpos[][2]`` -> ``Lpos_2``, ``branch_parts``). Carried into a generated file, a
    branch named ``cov[0][1]`` was read back by uproot as a one-element array (its leaf title ``cov[0][1]/F``), and
    ``TTree::Draw`` reads brackets as indices."""
    return re.sub(r"\[(\d*)\]", lambda match: f"_{match.group(1)}" if match.group(1) else "", name)


def column_sources(mapping: TableMapping) -> dict[str, tuple[str, str]]:
    """{output column: (kind, branch-or-field)} for every physics column, kind in
    ``event``/``field``/``match``/``sequence``, in output order."""
    renamed = _renamed_columns(mapping)
    sources = {}
    for name in mapping.event_fields:
        sources[renamed[column_name(name)]] = ("event", name)
    for name in mapping.fields:
        sources[renamed[f"{mapping.output_prefix}{column_name(name)}"]] = ("field", name)
    if mapping.match is not None:
        for name in mapping.match.fields:
            sources[renamed[f"{mapping.match.output_prefix}{column_name(name)}"]] = ("match", name)
        if mapping.match.keep_unmatched:
            sources[renamed["matched"]] = ("matched", "")
    for sequence in mapping.sequences:
        for name in sequence.fields:
            sources[renamed[f"{sequence.prefix}{name}"]] = ("sequence", f"{sequence.prefix}{name}")
    return sources


def _physics_columns(mapping: TableMapping) -> list[str]:
    """Names before ``rename``: ``<output_prefix><field>`` etc."""
    names = [*map(column_name, mapping.event_fields), *(f"{mapping.output_prefix}{column_name(f)}" for f in mapping.fields)]
    if mapping.match is not None:
        names += [f"{mapping.match.output_prefix}{column_name(f)}" for f in mapping.match.fields]
        if mapping.match.keep_unmatched:
            names.append("matched")
    names += [f"{s.prefix}{f}" for s in mapping.sequences for f in s.fields]
    return names


def _renamed_columns(mapping: TableMapping) -> dict[str, str]:
    names = _physics_columns(mapping)
    unknown = sorted(set(mapping.rename) - set(names))
    if unknown:
        raise ConfigError(
            f"tables.{mapping.name}.rename: keys {unknown} are not output columns; expected some of {names}"
        )
    return {name: mapping.rename.get(name, name) for name in names}


def _collection(settings: Mapping[str, Any] | None, fields, key: str) -> Collection | None:
    if settings is None:
        return None
    return Collection(counter=_counter_of(settings, fields, key), prefix=settings.get("prefix", ""),
                      first_field=fields[0] if fields else "")


def _counter_of(settings: Mapping[str, Any], fields, key: str) -> str | None:
    """A collection's or sequence's ``counter``; None (``std::vector`` branches) needs a first field to count by."""
    counter = settings.get("counter")
    if counter is None and not fields:
        raise ConfigError(f"{key}: without a counter, the objects are counted by the first field's branch, "
                          f"but 'fields' is empty")
    return counter


def _match(settings: Mapping[str, Any] | None, key: str) -> Match | None:
    if settings is None:
        return None
    return Match(
        index=settings["index"],
        collection=_collection(settings["collection"], settings["fields"], key),
        fields=tuple(settings["fields"]),
        output_prefix=settings.get("output_prefix", ""),
        selection=settings.get("selection"),
        keep_unmatched=bool(settings.get("keep_unmatched", False)),
    )
