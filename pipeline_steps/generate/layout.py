"""The input layout of a dataset table, seen backwards: ingest-style columns -> tree branches.

Ingest turns ``Jet_pt`` (collection prefix ``Jet_``) into the column ``pt`` and the matched
``GenJet_pt`` into ``gen_pt``. Generation writes its rows back under the *branch* names, so an
analysis reads fast-sim output exactly as it reads full-sim. The same mapping, inverted, reads a
generated file back into columns (validation and tests use it).

Rows of one event (same ``source_file`` and ``entry``) become one tree entry with jagged
collections; a table without a collection (LHCb ``Tracks``) or without event keys (generated SHiP
muons) is written one row per entry. A column ``rename`` made is written under its branch name
again, in collections, matched collections, flat tables and ``event_fields`` alike: a flat table's
renamed columns (``trk_COV_22`` read as ``cov_22``) had been written under the new names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline_steps.ingest.mapping import column_name


@dataclass(frozen=True)
class CollectionLayout:
    """One jagged collection: ``counter`` branch and ``prefix + field`` branches.

    A collection read from ``std::vector`` branches without a counter is written with the counter
    ``output_counter`` names: uproot writes variable-length arrays as C-style arrays with a count branch, which
    ``TTreeReaderArray`` and ``RDataFrame`` read as they read vectors.

    ``columns`` maps the ingest-style column name to the field name inside the collection.
    """

    name: str
    counter: str
    prefix: str
    columns: dict[str, str] = field(default_factory=dict)

    def branch(self, column: str) -> str:
        return f"{self.prefix}{self.columns[column]}"


@dataclass(frozen=True)
class OutputLayout:
    """Tree name, event-identity branches and the collections of one dataset table."""

    tree: str
    identity: tuple[str, ...]
    collections: tuple[CollectionLayout, ...]
    match_index: str | None = None  # e.g. ``genJetIdx``: reco -> matched gen object index
    #: one-value-per-entry columns whose branch has another name (a flat table's fields, ``event_fields``)
    entry_branches: dict[str, str] = field(default_factory=dict)

    def entry_branch(self, column: str) -> str:
        """The branch a one-value-per-entry column is written to (its own name unless renamed)."""
        return self.entry_branches.get(column, column)

    def entry_column(self, branch: str) -> str:
        """The column a one-value-per-entry branch is read back into."""
        return next((column for column, name in self.entry_branches.items() if name == branch), branch)

    def collection_of(self, column: str) -> CollectionLayout | None:
        for collection in self.collections:
            if column in collection.columns:
                return collection
        return None

    @property
    def jagged(self) -> bool:
        return bool(self.collections)


def layout_from_config(tree: str, identity: list[str], table: Mapping[str, Any]) -> OutputLayout:
    """Build the layout from a dataset's ``tree``, ``identity`` and one ``tables.<name>`` entry.

    An event field that is a collection's own counter (``event_fields: [nJet]``, renamed ``n_jets`` to condition
    on the jet multiplicity) is written under its column name: the output's ``nJet`` counts the generated jets,
    which is not the real multiplicity once ingestion dropped jets, and the two had collided in one branch, so
    the condition was lost from the generated file (planning refuses such a field that is not renamed:
    ``counter_event_field_problems``).
    """
    rename = dict(table.get("rename", {}))
    collections = []
    if "collection" in table:
        collections.append(
            _collection(
                "reco", table["collection"], table["fields"], table.get("output_prefix", ""), rename
            )
        )
    match = table.get("match")
    if match is not None and collections:
        collections.append(
            _collection("gen", match["collection"], match["fields"], match.get("output_prefix", ""), rename)
        )
    counters = {collection.counter for collection in collections}
    return OutputLayout(
        tree=tree,
        identity=tuple(identity),
        collections=tuple(collections),
        match_index=match["index"] if match is not None and collections else None,
        entry_branches={column: branch for column, branch in input_branches(table).items() if branch not in counters},
    )


def input_branches(table: Mapping[str, Any]) -> dict[str, str]:
    """{column: branch} of the one-value-per-entry columns ``rename`` renamed, as the raw tree names them.

    Event fields, and a flat table's fields (whole branch names; their column is ``output_prefix + field``,
    renamed). A bundle reads its conditions from these branches (``bundle.json`` ``io.branches``).
    """
    rename = dict(table.get("rename", {}))
    event_fields = [column_name(name) for name in table.get("event_fields", [])]  # cov[0][1] is written as cov_0_1
    branches = {rename[name]: name for name in event_fields if name in rename}
    if "collection" not in table:
        branches.update({column: branch for column, branch in _columns(table["fields"], table.get("output_prefix", ""),
                                                                       rename).items() if column != branch})
    return branches


def counter_event_field_problems(table_key: str, table: Mapping[str, Any], columns: list[str]) -> list[str]:
    """An event field kept under its counter's name (``nJet``) among ``columns`` that a model generates: its
    branch in the output would be the generated objects' counter (see :func:`layout_from_config`)."""
    counters = [output_counter(c) for c in (table.get("collection"), (table.get("match") or {}).get("collection")) if c]
    rename = dict(table.get("rename", {}))
    return [f"{table_key}.event_fields: {name!r} is also the counter a collection is written with, and a model "
            f"carries it into its generated file, where {name!r} counts the generated objects; rename it (rename: "
            f"{{{name}: {name}_event}}) and name that column in the model, so it keeps its own branch"
            for name in table.get("event_fields", []) if name in counters and rename.get(name, name) == name
            and name in columns]


def output_counter(collection: Mapping[str, Any]) -> str:
    """The count branch a collection is written with: its own ``counter``, else ``n`` + its prefix without a
    trailing ``_`` (``jet_`` -> ``njet``, as ATLAS ntuples name theirs where they have one)."""
    return collection.get("counter") or f"n{collection['prefix'].rstrip('_') or 'Objects'}"


def _collection(name, collection, fields, output_prefix, rename) -> CollectionLayout:
    return CollectionLayout(name=name, counter=output_counter(collection), prefix=collection["prefix"],
                            columns=_columns(fields, output_prefix, rename))


def _columns(fields, output_prefix: str, rename: Mapping[str, str]) -> dict[str, str]:
    """{column: field} as ingest names them: ``output_prefix + field``, then ``rename`` (keyed by that name). An
    array element's field is written under its column's spelling (``Lpos[][2]`` as ``Lpos_2``: ``column_name``)."""
    columns = {}
    for field_name in map(column_name, fields):
        column = f"{output_prefix}{field_name}"
        columns[rename.get(column, column)] = field_name
    return columns
