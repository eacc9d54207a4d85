"""Streamed, atomic, byte-reproducible TTree writing with uproot.

Why not ``file[name] = data``: uproot 5.7 writes an RNTuple that way; the real sources (and our
readers) are TTrees, so the tree is created with ``mktree`` and filled chunk by chunk with
``extend`` (one basket per branch per chunk: memory is bounded by the chunk, not the file).

Why the extra care for reproducibility: uproot puts three non-reproducible things in a file:
a random UUID (``uuid_function`` replaces it), the wall-clock time in every TKey/TDirectory
(``uproot._util.datetime_to_code``, patched for the duration of the write) and the file's own
name in the TFile record (we hand uproot an open file object, so the name is always
``dynamic.root`` instead of the random temporary name of the atomic write). The same seed and
chunks then give the same bytes; ``tests/test_toy_writer.py`` proves it.
"""

from __future__ import annotations

import os
import uuid
from typing import Iterable, Mapping

import awkward as ak
import numpy as np
import uproot

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.reproducible import fixed_root_timestamps

#: Chunk of entries generated and written at once (bounds memory whatever the file size).
CHUNK_ENTRIES = 5000

Branches = Mapping[str, "np.ndarray | ak.Array"]


def write_tree(
    path: str | os.PathLike,
    tree_name: str,
    chunks: Iterable[Branches],
    file_uuid: uuid.UUID,
    counters: Mapping[str, str] | None = None,
) -> int:
    """Write ``chunks`` (dicts of branch -> array, same keys each time) as one TTree; return entries.

    Flat branches are numpy arrays; a collection is a jagged ``ak.zip`` of records under its
    prefix without the underscore (``{"Jet": ak.zip({"pt": ...})}`` -> ``nJet``, ``Jet_pt``).
    ``counters`` renames a collection's counter (``{"clus": "nClusters"}``); default ``n<name>``.
    """
    counters = dict(counters or {})
    n_entries = 0
    with atomic_path(path) as tmp, open(tmp, "wb+") as sink, fixed_root_timestamps():
        with uproot.recreate(sink, uuid_function=lambda: file_uuid) as root_file:
            tree = None
            for chunk in chunks:
                if tree is None:
                    tree = root_file.mktree(
                        tree_name,
                        branch_types(chunk),
                        counter_name=lambda name: counters.get(name, f"n{name}"),
                    )
                tree.extend(dict(chunk))
                n_entries += len(next(iter(chunk.values())))
            if tree is None:
                raise ValueError(f"write_tree: no chunks for tree {tree_name!r} in {path}")
    return n_entries


def branch_types(chunk: Branches) -> dict[str, object]:
    """uproot ``mktree`` types of a chunk: numpy dtype for flat, record list type for collections."""
    types: dict[str, object] = {}
    for name, array in chunk.items():
        if isinstance(array, ak.Array):
            types[name] = array.type.content
        else:
            types[name] = np.asarray(array).dtype
    return types


def uuid_from_seed(seed_sequence: np.random.SeedSequence) -> uuid.UUID:
    """A UUID (version-4 layout) that is a pure function of the file's seed."""
    words = seed_sequence.generate_state(4, np.uint32)
    value = int.from_bytes(words.tobytes(), "little")
    return uuid.UUID(int=value, version=4)
