"""Row identity: the columns that name the raw object a row came from, from ingest to generation.

Ingest writes them first in every table (pipeline_steps/README.md, "Ingested tables"); categorise,
preprocess and generate carry them through, the split of a row is a hash of them, and generation
groups the rows of one raw event by ``EVENT_KEYS`` to write them back as one tree entry.
"""

from __future__ import annotations

from typing import Iterable

EVENT_KEYS = ("source_file", "entry")
"""The raw event: the raw file's name and the TTree entry."""

IDENTITY_COLUMNS = (*EVENT_KEYS, "object_index")
"""The raw object: its event and its index inside the collection (0 for flat trees)."""


def identity_columns(dataset_identity: Iterable[str] = ()) -> tuple[str, ...]:
    """``IDENTITY_COLUMNS`` followed by the dataset's ``identity`` branches (``run``, ``event``...) not among them."""
    return IDENTITY_COLUMNS + tuple(name for name in dataset_identity if name not in IDENTITY_COLUMNS)
