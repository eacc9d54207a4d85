"""Atomic outputs: a failed job must never leave a half-written file behind.

Everything a step writes goes first to a temporary name in the *same* folder (so the final
``os.replace`` is a rename on one filesystem, atomic on POSIX) and is renamed only once the
write has finished without an exception.

A hard kill (OOM killer, a node lost, SIGKILL) skips every ``finally``, so the temporary name says who
wrote it: ``.<final name>.<host>_<pid namespace>_<pid>.<random>.tmp<suffix>``. The next write of the
same final path removes the leftovers whose writer is gone. A pid only means something on its own
host and in its own pid namespace (containers), and results live on filesystems that many nodes
share, so a temporary of another host or namespace is kept: its writer may be alive. A workflow job
knows more (:func:`claim_sole_writer`): it is the only live writer of its outputs, so it removes every
earlier writer's leftovers of them, of any host.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
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
    suffix = final_path.suffix if suffix is None else suffix
    with _naming(final_path):
        final_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(final_path, ending=f".tmp{suffix}")
        fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(final_path), suffix=f".tmp{suffix}",
                                        dir=final_path.parent)
        os.fchmod(fd, _default_mode(0o666))
        os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        with _naming(final_path):
            yield tmp_path
            os.replace(tmp_path, final_path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def _naming(final_path: Path) -> Iterator[None]:
    """An OS error while making ``final_path`` names it: a full disk had said only "[Errno 28] No space left
    on device", and a read-only folder named the hidden temporary file instead of the output."""
    try:
        yield
    except OSError as error:  # the original text and file name stay: the error may be about an input
        if error.errno is None:
            raise OSError(f"while writing {final_path}: {error}") from error
        raise OSError(error.errno, f"while writing {final_path}: {error.strerror or error}", error.filename) from error


@contextlib.contextmanager
def atomic_dir(final_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``final_dir``; it replaces ``final_dir`` on success."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final_dir, ending=".tmp")
    tmp_dir = Path(tempfile.mkdtemp(prefix=_temporary_prefix(final_dir), suffix=".tmp", dir=final_dir.parent))
    tmp_dir.chmod(_default_mode(0o777))
    try:
        yield tmp_dir
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(tmp_dir, final_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)


def _temporary_prefix(final_path: Path) -> str:
    """``.<final name>.<host>_<pid namespace>_<pid>.``: hidden, and naming the process that writes it."""
    host, namespace = _this_host()
    return f".{final_path.name}.{host}_{namespace}_{os.getpid()}."


@functools.cache
def _this_host() -> tuple[str, str]:
    """(host name without dots or underscores, pid namespace id): where a pid can be checked."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    try:
        namespace = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:  # not Linux: no pid namespaces
        namespace = "0"
    return host, namespace


#: ``<host>_<pid namespace>_<pid>.<random>``: the writer's part of a temporary's name (mkstemp's random part
#: takes ``[a-z0-9_]``; the host has no dots or underscores, so another output's temporary never matches).
_WRITER_TAG = re.compile(r"(?P<host>[A-Za-z0-9-]+)_(?P<namespace>\d+)_(?P<pid>\d+)\.[a-z0-9_]+")
_sole_writer = False


def claim_sole_writer() -> None:
    """Declare this process the only live writer of every output it writes, as a workflow job is: from now on
    a write removes the leftovers of any earlier writer of the same output, on any host.

    Why a job may: Snakemake runs one job per output, and its lock on the working directory keeps any other
    ``snakemake`` off the outputs it plans; a retried job's earlier attempt was killed, or given up by the
    executor. Why it must: the SLURM
    profile retries a job with more memory after an OOM kill, and the retry lands on another node, so the
    killed attempt's partial file (a generated ROOT file, a checkpoint folder) had stayed hidden on the
    shared filesystem for good; a pid reused by an unrelated process had kept one alive on the same host
    too. Its own temporaries stay (the pid is this process's). A process that is not a workflow job (a
    notebook, a test, the bundle runner) never claims it and keeps the checks of :func:`_writer_is_gone`.
    Two runs that do share outputs: ``snakemake --nolock``, and a run started again (``--unlock``) while jobs
    of a head process that died still run; the README says to wait for those or cancel them first. The old
    job's output then fails to appear (its temporary is gone), and the new job writes the same bytes.
    """
    global _sole_writer
    _sole_writer = True


def _remove_stale_temporaries(final_path: Path, ending: str) -> None:
    """Remove temporaries of ``final_path`` whose writer is gone (:func:`_writer_is_gone`)."""
    prefix = f".{final_path.name}."
    for entry in os.scandir(final_path.parent):
        name = entry.name
        if name.startswith(prefix) and name.endswith(ending) and _writer_is_gone(name[len(prefix) : -len(ending)]):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):  # another job cleaned it first
                    os.unlink(entry.path)


def _writer_is_gone(tag: str) -> bool:
    """True for a ``<host>_<namespace>_<pid>.<random>`` tag of another process once this one is the sole
    writer (:func:`claim_sole_writer`); otherwise only for one of this host and namespace whose pid has exited.

    Anything else (an older naming, another host, a live or foreign-owned pid) counts as alive."""
    writer = _WRITER_TAG.fullmatch(tag)
    if writer is None:
        return False
    same_host = (writer["host"], writer["namespace"]) == _this_host()
    if same_host and int(writer["pid"]) == os.getpid():
        return False
    if _sole_writer:
        return True
    if not same_host:
        return False
    try:
        os.kill(int(writer["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user has this pid
        return False
    return False


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
