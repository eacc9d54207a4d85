"""Open a raw ROOT file, check it can give what the mapping needs, and iterate it in bounded steps.

Every failure a user can cause with their files (missing, not ROOT, truncated, wrong tree, missing
branch, empty tree, unreadable basket) becomes one InputError that names the file, the tree or the
branch, and what exists instead, so a cluster job's log says what to fix.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import lzma
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import awkward as ak
import cramjam
import uproot

from pipeline_steps.common.errors import InputError
from pipeline_steps.ingest.branch_parts import is_ttree

LOGGER = logging.getLogger("pipeline_steps.ingest")

# Exceptions uproot and its decompressors raise on damaged files; anything else is a bug and propagates. cramjam
# (ZSTD, LZ4; an uproot requirement) raises its own DecompressionError on a corrupt basket, lzma LZMAError.
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zlib.error, lzma.LZMAError, struct.error,
               cramjam.DecompressionError, uproot.deserialization.DeserializationError)


def _said(error: Exception) -> str:
    """``Type: message`` on one line: uproot's messages run over several (a job log's error line would break)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


@contextlib.contextmanager
def open_tree(path: str | os.PathLike, tree_name: str, threads: int = 1) -> Iterator[tuple[object, int]]:
    """Yield the TTree ``tree_name`` of the ROOT file at ``path``, checked for existence, truncation and a
    writer that never closed it, and the bytes past the end its header records (``_check_closed``).

    With ``threads`` > 1 uproot decompresses that many baskets at once (its ``decompression_executor``; the
    decompressors release the GIL). Real NanoAOD is written with LZMA level 9, whose decompression is ~90 % of
    reading it: on the bench's NanoAOD-like file (LZMA-9, 12 MB) one ingestion took 0.71 s on one thread and
    0.41 s on two, with the same bytes written (``benchmarks/bench_ingest.py``). Decompression is exact, so the
    output does not depend on ``threads``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"raw file {str(path)!r} does not exist (expected a ROOT file with tree {tree_name!r})")
    past_end = _check_complete(path)
    with contextlib.ExitStack() as stack:
        options = {}
        if threads > 1:
            options["decompression_executor"] = stack.enter_context(ThreadPoolExecutor(threads, "decompress"))
        try:
            file = stack.enter_context(uproot.open(path, **options))
        except READ_ERRORS as error:
            raise InputError(f"{path}: cannot be opened as a ROOT file ({_said(error)})") from None
        _check_closed(file, path, past_end)
        yield _tree(file, path, tree_name), past_end


def check_branches(tree, existing: list[str], branches: list[str], where: str,
                   alternatives: dict[str, str] | None = None) -> None:
    """InputError naming every branch of ``branches`` missing from ``existing`` (the tree's ``branch_names``) with
    the existing branches that look close, and the other name a selection's name could have been read from
    (``alternatives``: ``jet_HLT_IsoMu24`` -> ``HLT_IsoMu24``)."""
    missing = [branch for branch in branches if branch not in existing]
    if not missing:
        return
    hints = []
    for branch in missing:
        close = difflib.get_close_matches(branch, existing, n=3, cutoff=0.6)
        nor = f"nor {alternatives[branch]!r}; " if branch in (alternatives or {}) else ""
        hints.append(f"{branch!r} ({nor}close: {close})" if close else f"{branch!r} ({nor}no similar branch)")
    raise InputError(
        f"{where}: missing branch{'es' if len(missing) > 1 else ''} {', '.join(hints)}; "
        f"the tree has {len(existing)} branches, e.g. {sorted(existing)[:12]}{_unnamed_counters(tree, branches)}"
    )


def _unnamed_counters(tree, branches: list[str]) -> str:
    """Where a requested branch is counted by a branch the config does not name: say which.

    A counter rarely looks like the config's name for it (NanoAOD's ``nJet``, ``NJet`` in the HZZ sample,
    Delphes' ``Jet_size``), so the close matches above often miss it, while the file itself says which branch
    counts each jagged branch (its leaf count, ``Jet_Px[NJet]``). The counter is the branch that owns that
    leaf: uproot's ``count_branch`` named ``vetoPoint.fUniqueID`` for FairShip's ``vetoPoint.fX``, whose count
    leaf ``vetoPoint_`` is the ``TClonesArray`` branch ``vetoPoint``'s.
    """
    if not is_ttree(tree):
        return ""  # an RNTuple's collections know their own sizes: it has no count leaves to point at
    counted_by = {}
    try:
        leaf_owners = {leaf.member("fName"): owner.name for owner in tree.itervalues(recursive=True)
                       for leaf in owner.member("fLeaves")}
        for branch in branches:
            leaf = tree[branch].count_leaf if branch in tree else None
            counter = None if leaf is None else leaf_owners.get(leaf.member("fName"))
            if counter is not None and counter not in branches:
                counted_by.setdefault(counter, branch)
    except READ_ERRORS:  # a hint only: never in place of the missing-branch error it adds to
        pass
    return "".join(f"; {branch!r} is counted by {counter!r}, which the config does not name (a collection's or "
                   f"sequence's counter?)" for counter, branch in counted_by.items())


def iterate_entries(tree, branches: list[str], step_size: int, where: str) -> Iterator[tuple[int, ak.Array]]:
    """Yield ``(first entry, arrays)`` for consecutive steps of at most ``step_size`` entries.

    Memory is bounded by the step, not by the file. Damaged baskets become InputError naming the
    entry range.
    """
    start = 0
    iterator = tree.iterate(branches, step_size=step_size, library="ak", report=True)
    while True:
        try:
            arrays, report = next(iterator)
        except StopIteration:
            return
        except READ_ERRORS as error:
            raise InputError(
                f"{where}: cannot read entries from {start} on; the file is damaged ({_said(error)})"
            ) from None
        start = report.tree_entry_stop
        yield report.tree_entry_start, arrays


def empty_arrays(tree, branches: list[str], where: str) -> ak.Array:
    """Zero entries of ``branches`` with their real types: the schema of an empty table."""
    try:
        return tree.arrays(branches, entry_start=0, entry_stop=0, library="ak")
    except READ_ERRORS as error:
        raise InputError(f"{where}: cannot read the branch types ({_said(error)})") from None


def _check_complete(path: Path) -> int:
    """A file shorter than its header's end-of-file pointer was truncated (an interrupted copy).

    Read from the header's first bytes before uproot opens the file: ROOT writes a file's list of keys and
    its streamers at its end, so a ROOT-written file cut anywhere but in its last tenth fails in
    ``uproot.open`` itself, as "expected Chunk of length 381, received 0 bytes", not naming the cut.
    The header (big-endian): ``root``, fVersion, fBEGIN, then fEND as 4 bytes, or 8 from version 1000000
    (files past 2 GB). A file that does not start with ``root`` is left to ``uproot.open``'s own message.
    Returns the bytes past the header's end (``_check_closed``).
    """
    with open(path, "rb") as stream:
        header = stream.read(20)
    if len(header) < 16 or header[:4] != b"root":
        return 0
    version = int.from_bytes(header[4:8], "big")
    expected = int.from_bytes(header[12:20] if version >= 1_000_000 else header[12:16], "big")
    found = path.stat().st_size
    if found < expected:
        raise InputError(f"{path}: truncated ROOT file: the header says {expected} bytes, the file has {found} "
                         f"(an interrupted copy? copy it again)")
    return found - expected


def _check_closed(file, path: Path, past_end: int) -> None:
    """A file its writer never closed (a job killed while writing): refused where it has no list of keys,
    named in the log where it has bytes past its header's end.

    ROOT writes the top directory's keys, and moves the header's end, only on ``Close``, ``Write`` or a
    TTree's ``AutoSave``. With no keys ROOT says "probably not closed, trying to recover" (its own test:
    ``fSeekKeys`` not past ``fBEGIN``); uproot had opened such a file as empty, and ingestion reported
    "no tree 'Events'; the file has trees []", as if the name were wrong. After an AutoSave the keys exist
    and ROOT and uproot both read, without a word, the entries of the last AutoSave only (1000 of 3000 in
    ``tests/data/root_written_unclosed.root``); the baskets written later lie past the header's end. ROOT
    opens such a file without a word (its test is only that the header's end is not past the file's), and
    nothing here shows that a closed file never has bytes there, so that is a warning, not a refusal.
    """
    if file.fSeekKeys <= file.file.fBEGIN:
        raise InputError(f"{path}: ROOT file not closed by its writer (no list of keys; ROOT: 'probably not "
                         f"closed'): a job killed while writing? produce it again or blacklist it")
    if past_end:
        LOGGER.warning("%s: %d bytes lie past the end its header records: if its writer was killed before closing "
                       "it, its trees hold only the entries of their last AutoSave", path, past_end)


def _tree(file, path: Path, tree_name: str):
    """The TTree, or the RNTuple (ROOT's successor of TTree, which uproot reads through the same ``keys``,
    ``arrays`` and ``iterate``): a NanoAOD converted by ROOT's ``RNTupleImporter`` keeps its names, projected
    (``Jet_pt`` a variable-length field, ``nJet`` its cardinality)."""
    trees = sorted(file.keys(filter_classname=["TTree", "TNtuple*", "ROOT::RNTuple"], cycle=False))
    try:
        tree = file[tree_name]
    except uproot.KeyInFileError:
        if not file.keys():  # "the file has trees []" had read as a wrong name; a file cut and padded with zeros
            raise InputError(f"{path}: no tree {tree_name!r}: the file holds no objects at all (written empty, or "
                             f"damaged where ROOT writes its list of keys, at the end)") from None
        raise InputError(f"{path}: no tree {tree_name!r}; the file has trees {trees}") from None
    except READ_ERRORS as error:
        raise InputError(f"{path}: cannot read tree {tree_name!r} ({_said(error)})") from None
    if not isinstance(tree, (uproot.behaviors.TBranch.HasBranches, uproot.behaviors.RNTuple.RNTuple)):
        # a TDirectory has no classname attribute in uproot (it had surfaced as an AttributeError)
        kind = "directory" if isinstance(tree, uproot.ReadOnlyDirectory) else getattr(tree, "classname", type(tree).__name__)
        raise InputError(f"{path}: {tree_name!r} is a {kind}, not a TTree; the file has trees {trees}")
    return tree
