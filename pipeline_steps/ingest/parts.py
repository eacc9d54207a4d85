"""Which ingest job reads which raw file: a dataset's files are spread over at most ``ingest_parts`` parts.

Snakemake spends about 2 ms of its own per job when it plans, so one ingest job per raw file and table
made a 1000-file x 5-dataset plan take 17 s; with parts it is one job per part and table, whatever the
number of files.

A file's part is a hash of its stem (unique within a dataset), not its place in the sorted list: adding
or blacklisting a file changes the files of its own part only, so only that part is ingested again
(on average ``n_files / ingest_parts`` files), and never a neighbour that a shifted list would have
moved. A dataset with fewer files than parts keeps about one file per part. blake2b, not ``hash()``:
the assignment must not depend on PYTHONHASHSEED or the machine.

Imports nothing heavy: the workflow plan uses it while Snakemake reads the rules.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

DEFAULT_INGEST_PARTS = 64


def part_index(stem: str, n_parts: int) -> int:
    """The part (0 .. n_parts - 1) a file of this stem belongs to."""
    digest = hashlib.blake2b(stem.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_parts


def part_name(index: int, n_parts: int) -> str:
    """``part07`` of 64 parts: zero-padded, so that names sort as their numbers do."""
    return f"part{index:0{len(str(n_parts - 1))}d}"


def partition(path_by_stem: Mapping[str, str], n_parts: int) -> dict[str, list[str]]:
    """``{part name: [paths]}`` of the non-empty parts, parts in order and paths as given (sorted)."""
    if n_parts < 1:
        raise ValueError(f"ingest_parts must be >= 1, got {n_parts}")
    parts: dict[int, list[str]] = {}
    for stem, path in path_by_stem.items():
        parts.setdefault(part_index(stem, n_parts), []).append(path)
    return {part_name(index, n_parts): parts[index] for index in sorted(parts)}
