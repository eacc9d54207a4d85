"""The sha256 of the raw ROOT files, taken once per ingest part by a job of its own (rule ``checksum_raw``).

``bundle.json`` (export) and ``results/provenance.json`` record the sha256 of every raw file a model was
trained on. They had hashed the files themselves, so every export of a dataset's models and the provenance
job read the whole dataset again: three full reads of a NanoAOD dataset per run (the jets and muon models'
exports, then provenance), and provenance, which reruns after any model's edit, reread every dataset. A real
dataset is terabytes on EOS or GPFS, where that is hours of reading for a 32-byte answer. Now one job per
ingest part hashes the part's files once, and again only when they change (it has the ingest job's input:
a new, replaced or touched file reruns both); export and provenance read these small JSONs. The checksums
so recorded are those of the files as ingested, which is what the model was made from.

Each JSON maps a raw file's path, as the workflow names it, to its sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.source_hash import sha256_file

__all__ = ["checksums_of", "read_checksums", "write_part_checksums"]


def write_part_checksums(raw_files: Sequence[str], output: str | Path) -> dict[str, str]:
    """Hash each raw file (read in 1 MiB chunks) and write ``{path: sha256}`` atomically; return it."""
    checksums = {}
    for path in raw_files:
        if not Path(path).is_file():
            raise InputError(f"raw file {path}: does not exist (or is not a file); expected a ROOT file to checksum")
        checksums[str(path)] = sha256_file(path)
    write_text_atomic(output, json.dumps(checksums, indent=1, sort_keys=True) + "\n")
    return checksums


def read_checksums(files: Iterable[str | Path]) -> dict[str, str]:
    """``{path: sha256}`` merged from checksum JSONs written by :func:`write_part_checksums`, sorted by path."""
    merged: dict[str, str] = {}
    for file in files:
        try:
            document = json.loads(Path(file).read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"raw-file checksums {file}: cannot be read as JSON ({error}); "
                             f"expected {{path: sha256}} from rule checksum_raw") from error
        if not isinstance(document, dict):
            raise InputError(f"raw-file checksums {file}: holds a {type(document).__name__}, expected {{path: sha256}}")
        merged.update(document)
    return dict(sorted(merged.items()))


def checksums_of(paths: Iterable[str], checksums: Mapping[str, str], where: str) -> dict[str, str]:
    """The recorded sha256 of each of ``paths``; a path without one is an error naming it and ``where``."""
    missing = sorted(set(paths) - set(checksums))
    if missing:
        raise InputError(f"{where}: no recorded sha256 for raw file {missing[0]}"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; the checksum JSONs "
                         f"given (rule checksum_raw) cover {len(checksums)} files")
    return {path: checksums[path] for path in sorted(set(paths))}
