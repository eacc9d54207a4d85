"""The input layout of a dataset table, seen backwards: ingest-style columns -> tree branches.

Ingest turns ``Jet_pt`` (collection prefix ``Jet_``) into the column ``pt`` and the matched
``GenJet_pt`` into ``gen_pt``. Generation writes its rows back under the *branch* names, so an
analysis reads fast-sim output exactly as it reads full-sim. The same mapping, inverted, reads a
generated file back into columns (validation and tests use it).

Rows of one event (same ``source_file`` and ``entry``) become one tree entry with jagged
collections; a table without a collection (LHCb ``Tracks``) or without event keys (generated SHiP
muons) is written one row per entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class CollectionLayout:
    """One jagged collection: ``counter`` branch and ``prefix + field`` branches.

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

    def collection_of(self, column: str) -> CollectionLayout | None:
        for collection in self.collections:
            if column in collection.columns:
                return collection
        return None

    @property
    def jagged(self) -> bool:
        return bool(self.collections)


def layout_from_config(tree: str, identity: list[str], table: Mapping[str, Any]) -> OutputLayout:
    """Build the layout from a dataset's ``tree``, ``identity`` and one ``tables.<name>`` entry."""
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
            _collection("gen", match["collection"], match["fields"], match.get("output_prefix", ""), {})
        )
    return OutputLayout(
        tree=tree,
        identity=tuple(identity),
        collections=tuple(collections),
        match_index=match["index"] if match is not None and collections else None,
    )


def _collection(name, collection, fields, output_prefix, rename) -> CollectionLayout:
    columns = {}
    for field_name in fields:
        column = f"{output_prefix}{field_name}"
        column = rename.get(column, rename.get(field_name, column))
        columns[column] = field_name
    return CollectionLayout(name=name, counter=collection["counter"], prefix=collection["prefix"], columns=columns)
