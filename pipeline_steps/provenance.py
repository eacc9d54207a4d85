"""Hashes that tie outputs to their inputs and to the code that made them.

Snakemake reruns a job when its ``script:`` text changes, but not when a module that script
imports changes. Rules therefore carry ``params: code=source_hash(...)`` of the modules they use,
and a code edit in one step reruns exactly the jobs that use it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks (raw ROOT files can be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def source_hash(*modules: str) -> str:
    """Short sha256 over the source of package sub-modules, e.g. ``source_hash("ingest", "common")``.

    A name is a module file (``models/flow``) or a sub-package folder (``ingest``); folders are
    hashed file by file in sorted order so the value is stable across machines.
    """
    digest = hashlib.sha256()
    for module in sorted(modules):
        for path in _module_files(module):
            digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _module_files(module: str) -> list[Path]:
    target = PACKAGE_ROOT / module
    if target.is_dir():
        return sorted(target.rglob("*.py"))
    file = target.with_suffix(".py")
    if not file.exists():
        raise FileNotFoundError(f"source_hash: no module or package {module!r} under {PACKAGE_ROOT}")
    return [file]
