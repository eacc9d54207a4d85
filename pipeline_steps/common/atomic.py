"""Atomic outputs: a failed job must never leave a half-written file behind.

Everything a step writes goes first to a temporary name in the *same* folder (so the final
``os.replace`` is a rename on one filesystem, atomic on POSIX) and is renamed only once the
write has finished without an exception.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it into place on success.

    The temporary file keeps the final suffix (writers such as uproot and pyarrow look at it).
    On any exception the temporary file is removed and the final path is left untouched.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = final_path.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.stem}.", suffix=f".tmp{suffix}", dir=final_path.parent)
    os.fchmod(fd, _default_mode(0o666))
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, final_path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(final_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``final_dir``; it replaces ``final_dir`` on success."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".tmp", dir=final_dir.parent))
    tmp_dir.chmod(_default_mode(0o777))
    try:
        yield tmp_dir
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(tmp_dir, final_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)


def _default_mode(base: int) -> int:
    """The mode ``open()``/``mkdir()`` would give (``base & ~umask``), not mkstemp's private 0600/0700.

    Outputs are shared results: a group member must be able to read them. The umask can only be
    read by setting it, so it is set and restored at once.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return base & ~umask


def write_text_atomic(final_path: str | os.PathLike, text: str) -> None:
    """Write a small text file (JSON, CSV) atomically."""
    with atomic_path(final_path) as tmp:
        tmp.write_text(text)
