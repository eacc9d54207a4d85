"""Byte-reproducible files: strip the wall-clock time and random names libraries stamp into outputs.

A clean rerun from the same raw files and config must give the same bytes (README,
"Reproducibility and reruns"). Three libraries break that unless told otherwise:

* Keras ``.keras`` archives: ``metadata.json`` holds ``date_saved``, the zip entry of
  ``model.weights.h5`` carries the save time, and ``config.json`` numbers objects shared between
  layers (an initializer) by their memory address (``shared_object_id``).
  ``normalise_keras_archive`` rewrites all three.
* ``torch.save(obj, path)`` names the archive's root folder after the file's stem, i.e. after
  the random temporary name of the atomic write. ``save_torch`` writes through a file object,
  so the root folder is always ``archive``.
* uproot stamps ``now()`` on every TKey/TDirectory and a time-based UUID in the header.
  ``fixed_root_timestamps`` pins the time; pass ``uuid_function=stable_uuid(text)``.

And one breaks it through the interpreter: tf2onnx names and orders the nodes of a converted Keras
LSTM graph by iterating over sets of strings, whose order follows ``PYTHONHASHSEED`` (the CalRatio
``model.onnx`` differed between two hash seeds, weights identical). ``run_with_fixed_hash_seed``
re-executes a job's script with ``PYTHONHASHSEED=0`` unless it already has it, so no job's output can
depend on the hash seed of the shell that started the workflow.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import uuid
import zipfile
from typing import Any, Callable, Iterator

#: The hash seed every job runs with (``run_with_fixed_hash_seed``).
JOB_HASH_SEED = "0"


def run_with_fixed_hash_seed() -> None:
    """Re-execute this process with ``PYTHONHASHSEED=JOB_HASH_SEED`` unless it already runs with it.

    Called first in every rule's script. ``os.execve`` keeps the process id, so Snakemake keeps
    waiting on the same job; ``sys.orig_argv`` repeats the interpreter's own flags and the script path.
    """
    import sys

    if os.environ.get("PYTHONHASHSEED") == JOB_HASH_SEED:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, list(sys.orig_argv), dict(os.environ, PYTHONHASHSEED=JOB_HASH_SEED))


def give_jobs_the_fixed_hash_seed() -> None:
    """Set ``PYTHONHASHSEED=JOB_HASH_SEED`` in Snakemake's own process, which its jobs inherit.

    Called once by the Snakefile (workflow/rules/common.smk). Snakemake's own hashing is fixed at its
    start, so this changes only the jobs' environment: each job's script then finds the seed set and
    does not re-execute itself (``run_with_fixed_hash_seed``), which costs a second interpreter start
    and a second unpickling of Snakemake's job object in its preamble, 0.10-0.14 s of CPU per job
    measured here (66 jobs in ``make run``, ~8 core-seconds). Cluster jobs re-read the Snakefile, so
    they set it again; a script started any other way still re-executes itself.
    """
    os.environ["PYTHONHASHSEED"] = JOB_HASH_SEED


#: The time stamped wherever a library insists on one (zip entries, Keras metadata, ROOT keys).
FIXED_DATETIME = datetime.datetime(2024, 1, 1, 0, 0, 0)


def normalise_keras_archive(path: str | os.PathLike) -> None:
    """Rewrite a ``.keras`` zip in place with fixed entry times and a fixed ``date_saved``.

    Called on the temporary file of an atomic write, before the rename. Entry order and
    compression are kept, so Keras loads the result exactly as before.
    """
    write_keras_archive(path, keras_archive_entries(path))


def keras_archive_entries(path: str | os.PathLike) -> list[tuple[zipfile.ZipInfo, bytes]]:
    """Every entry of a ``.keras`` zip, in order, with its bytes."""
    with zipfile.ZipFile(path) as source:
        return [(info, source.read(info.filename)) for info in source.infolist()]


def write_keras_archive(path: str | os.PathLike, entries: list[tuple[zipfile.ZipInfo, bytes]]) -> None:
    """Write ``entries`` as a ``.keras`` zip as :func:`normalise_keras_archive` leaves one (fixed times,
    fixed ``date_saved``, renumbered shared objects), keeping their order and compression."""
    fixed_time = FIXED_DATETIME.timetuple()[:6]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = FIXED_DATETIME.strftime("%Y-%m-%d@%H:%M:%S")
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            entry = zipfile.ZipInfo(info.filename, date_time=fixed_time)
            entry.compress_type = info.compress_type
            entry.external_attr = 0o644 << 16
            target.writestr(entry, data)


def _renumber_shared_objects(node: Any, numbers: dict[int, int]) -> Any:
    """Replace each ``shared_object_id`` (an ``id()``) by 1, 2, ... in order of first appearance.

    Equal ids stay equal, so Keras still shares the same objects when it loads the model.
    """
    if isinstance(node, dict):
        return {
            key: numbers.setdefault(value, len(numbers) + 1) if key == "shared_object_id" and isinstance(value, int)
            else _renumber_shared_objects(value, numbers)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renumber_shared_objects(item, numbers) for item in node]
    return node


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` whose bytes do not depend on the (temporary) file name."""
    import torch

    with open(path, "wb") as stream:
        torch.save(obj, stream)


def stable_uuid(text: str) -> Callable[[], uuid.UUID]:
    """A ``uuid_function`` for uproot that returns a UUID derived from ``text`` (e.g. the output path)."""
    value = uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4)
    return lambda: value


@contextlib.contextmanager
def fixed_root_timestamps() -> Iterator[None]:
    """Make uproot stamp FIXED_DATETIME instead of ``now()`` on every TKey/TDirectory while writing."""
    import uproot

    original = uproot._util.datetime_to_code
    fixed = original(FIXED_DATETIME)
    uproot._util.datetime_to_code = lambda _when: fixed
    try:
        yield
    finally:
        uproot._util.datetime_to_code = original
