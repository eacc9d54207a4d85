"""Streamed, atomic ROOT output of generated rows in the input layout, and its reader.

The writer takes flat, ingest-style rows chunk by chunk (each chunk holds whole events, rows of
one event contiguous). Each chunk is turned at once into plain numpy columns (per-object values,
objects per event, per-event values taken at each event's first row) and the frame is let go;
the columns are buffered until ``block_rows`` rows are held and then written with one ``uproot``
``extend`` (one basket per branch). The file appears under its final name only when every block is
written (``atomic_path``).

Why it is written this way (``bench_generation`` in benchmarks/bench_generate_validate.py, README
"Performance"): writing 200k jets used to cost 7x the rest of generation (0.12x). Of that write,
about 65% was zlib inside uproot (see ``COMPRESSION``), 17% the per-chunk conversions (the event
keys of every row compared as one Python-object matrix, every ``source_file`` value made a numpy
unicode string that uproot then encoded back to bytes, ``ak.zip``/``ak.unflatten`` per collection)
and most of the rest uproot's per-``extend`` work. Columns are now built with numpy only, strings
through ``pd.factorize`` (a chunk holds one or a few distinct ``source_file`` values) and awkward
arrays assembled directly from offsets and contents. With the same compression and the same
chunks the bytes written are identical to the former writer's. What is left of the write (ZSTD,
the file writes, awkward's offset kernels: C code that releases the GIL) runs on a second thread
while the caller samples the next block (``_BlockWriter``), so a job of several blocks pays for
about the last block's write only. Branches that do not compress (full-mantissa generated floats) are
written raw (``RAW_ABOVE_RATIO``).

Per-object columns that belong to no collection (``object_index``) travel inside the first written
collection (``Jet_object_index``) so every generated object traces back to its raw row; the event
identity (``source_file``, ``entry``, ``run``, ...) is written as event-level branches.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import awkward as ak
import numpy as np
import pandas as pd
import uproot

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.identity import event_starts
from pipeline_steps.common.reproducible import fixed_root_timestamps, stable_uuid
from pipeline_steps.generate.layout import CollectionLayout, OutputLayout

PER_OBJECT_EXTRAS = ("object_index",)

DEFAULT_BLOCK_ROWS = 200_000
"""Rows (objects) held before one ``extend``, i.e. the entries of one basket of every branch.

Every ``extend`` pays a fixed cost (the TTree metadata rewritten, a key, a seek and a flush per
branch, the string branch's awkward pass) and a reader pays per basket as well, so baskets should
be large: uproot advises at least 100 kB per branch. 200k objects make 0.8 MB (float32) to 1.6 MB
(float64) baskets, four of the step's 50k-row chunks. A block is written once it holds ``block_rows``
rows, so it is whole chunks and may pass ``block_rows`` by less than one chunk: the step's chunks end
at an event boundary and hold a few rows more than 50k, and a block that had to stay under 200k was
three of them (150k rows, 7 instead of 5 extends and baskets for 1M rows; ``bench_generation``'s
ratio was 0.04 lower, the median of 7 interleaved pairs for float32 and for float64 fields, each pair
scattering by up to 0.07). Memory stays bounded: the buffer holds less than
``block_rows`` rows plus one chunk (about 250k x 60-100 bytes = 15-25 MB for NanoAOD jets) plus one
copy of them while a block is concatenated; a chunk that alone reaches ``block_rows`` is written on
its own.
"""

COMPRESSION = uproot.ZSTD(1)
"""ZSTD level 1 instead of uproot's default ZLIB(1), for speed.

zlib took 0.27 s of the 0.41 s that writing 200k jets cost (1 core); ZSTD(1) compresses the same
baskets in 0.025 s. The price is file size where mantissas are truncated as in NanoAOD: the toy
workflow's generated files grow by 0-41% (jets +20%, SHiP muons +41%, LHCb tracks 0%); with the
benchmark's full-precision floats by ~6%. LZ4 would write faster still (0.008 s) but makes those
files up to 1.9x larger than zlib's. ROOT reads ZSTD since 6.20; uproot through ``cramjam``,
which every uproot >= 5.4 requires.
"""


RAW_ABOVE_RATIO = 0.95
"""A numeric branch whose first block's sample compresses to more than this share of its bytes is written
uncompressed (``_incompressible``).

Generated floats carry full mantissas (the network's float32 output through float64 transforms), unlike
NanoAOD's truncated ones, and random mantissas barely compress: ZSTD(1) keeps 92-97 % of the bytes of
the benchmark's float64 targets, 88-93 % of its float32 conditions, while integers and identity keep
0-28 %. Compressing the former costs the writer, the bottleneck of a pipelined generation, ~1 ms per MB
(and every reader the decompression) for a few per cent of disk. Above 0.95 no branch can grow by more
than 1 / 0.95 - 1 = 5.3 % uncompressed, so neither can the file. On ``bench_generation``'s 1M float64
rows it keeps Jet_eta and Jet_phi raw (0.968, 0.961): one block's write takes ~51 instead of ~55 ms
(one thread, four repeats), and the file grows by 2 % (60.1 to 61.3 MB). The decision is made once per
file, on at most ``_RATIO_SAMPLE`` values of each branch of the first block: a deterministic function
of the rows, so the same rows still give the same bytes.
"""
_RATIO_SAMPLE = 8192
"""Values sampled per branch: 1 ms for the benchmark's 16 branches (32768 took 4 ms), and for each of them
a share within 0.013 of the whole 200k-value basket's (0.001 for every float)."""
_MIN_RATIO_SAMPLE = 4096
"""A branch with fewer values in the first block keeps the writer's compression. A frame's
fixed bytes and a sample too short to repeat itself had pushed integers past 0.95 on a one-event first
block (12 branches raw, the file 404 against 235 kB); at 4096 values the frame is < 0.2 % of a 4-byte
column and the shares are those of the larger samples (the sorted ``entry``: 0.198 against 0.220). Such a
file is small whatever it does, which is what compression then costs."""


@contextlib.contextmanager
def root_writer(path: str | Path, layout: OutputLayout, block_rows: int = DEFAULT_BLOCK_ROWS,
                compression: uproot.compression.Compression | None = COMPRESSION,
                ) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yield ``write(rows)``; each call appends whole events to ``layout.tree`` in ``path``.

    Rows are buffered up to ``block_rows`` (see ``DEFAULT_BLOCK_ROWS``); what is still buffered is
    written when the ``with`` body ends without an exception. An exception leaves no file
    (``atomic_path``). ``compression`` applies to every basket (see ``COMPRESSION``).
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    # An open file object (not the random temporary name), a UUID derived from the path and fixed
    # key times: the same rows give the same bytes (pipeline_steps.common.reproducible).
    with (
        atomic_path(path) as tmp_path,
        open(tmp_path, "wb+") as sink,
        fixed_root_timestamps(),
        uproot.recreate(sink, uuid_function=stable_uuid(Path(path).as_posix()), compression=compression) as root_file,
    ):
        writer = _BlockWriter(root_file, layout, block_rows, compression)
        try:
            yield writer.write
            writer.flush()
        finally:
            writer.close()  # waits for the block in flight; on error, before atomic_path removes the file
        if writer.tree is None:
            raise InputError(f"{path}: no generated rows to write (the conditions table was empty)")


def to_branches(rows: pd.DataFrame, layout: OutputLayout) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Flat rows -> ({key: array}, {collection key: (counter, prefix)}) for ``uproot`` extend."""
    part, names = _columns(rows, layout)
    return _branches(part), names


@dataclass
class _Strings:
    """Variable-length strings as ROOT and awkward store them: all bytes end to end + lengths."""

    lengths: np.ndarray  # int64, one per value
    data: np.ndarray  # uint8, utf-8 bytes of every value in order

    @classmethod
    def take(cls, codes: np.ndarray, uniques, positions: np.ndarray | None) -> "_Strings":
        """Values ``uniques[codes[positions]]`` (``pd.factorize`` output), built without a per-value loop.

        Where every distinct value has the same length, as a dataset's file names mostly do (CMS: a
        36-character GUID + ``.root``, 41 bytes per event), each value's bytes are one row of a byte matrix
        copied whole: 0.3 ms per 15k-event chunk against 1.6 ms through an int64 index per output byte,
        which stays for values of different lengths. This is the caller's CPU (~25 ms per million jets);
        the writer thread, not the caller, bounds a pipelined generation, so the benchmark's ratio does not
        move with it (PERFORMANCE_LOG.md, "file names of real length").
        """
        encoded = [("nan" if _is_missing(value) else str(value)).encode("utf-8") for value in uniques]
        unique_lengths = np.array([len(value) for value in encoded], dtype=np.int64)
        picked = codes if positions is None else codes[positions]
        lengths = unique_lengths[picked]
        pool = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if len(set(unique_lengths.tolist())) == 1:
            return cls(lengths, pool.reshape(len(encoded), -1)[picked].reshape(-1))
        unique_starts = np.cumsum(unique_lengths) - unique_lengths
        starts = np.cumsum(lengths) - lengths
        # byte j of the output comes from pool[start of its unique value + (j - start of its value)]
        source = np.repeat(unique_starts[picked] - starts, lengths) + np.arange(int(lengths.sum()))
        return cls(lengths, pool[source])

    @classmethod
    def concatenate(cls, parts: list["_Strings"]) -> "_Strings":
        return cls(np.concatenate([p.lengths for p in parts]), np.concatenate([p.data for p in parts]))

    def to_awkward(self) -> ak.Array:
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        chars = ak.contents.NumpyArray(self.data, parameters={"__array__": "char"})
        strings = ak.contents.ListOffsetArray(ak.index.Index64(offsets), chars, parameters={"__array__": "string"})
        return ak.Array(strings)


@dataclass
class _Part:
    """One chunk (or a block of chunks) as contiguous columns, ready for one ``extend``."""

    rows: int
    counts: np.ndarray | None  # objects per entry; None for one row per entry (flat layout)
    objects: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # collection key -> field -> values
    entries: dict[str, np.ndarray | _Strings] = field(default_factory=dict)  # branch -> one value per entry

    @classmethod
    def concatenate(cls, parts: list["_Part"]) -> "_Part":
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        return cls(
            rows=sum(p.rows for p in parts),
            counts=None if first.counts is None else np.concatenate([p.counts for p in parts]),
            objects={key: {name: np.concatenate([p.objects[key][name] for p in parts]) for name in fields}
                     for key, fields in first.objects.items()},
            entries={name: (_Strings.concatenate([p.entries[name] for p in parts]) if isinstance(value, _Strings)
                            else np.concatenate([p.entries[name] for p in parts]))
                     for name, value in first.entries.items()},
        )


class _BlockWriter:
    """Buffers converted chunks and writes them ``block_rows`` rows at a time (one ``extend`` each).

    Each block is converted and written on one background thread while the caller goes on
    sampling: one block in flight at most, so memory holds two blocks, and blocks are written in
    order by that single thread, so the bytes are those of a plain sequential write. An error on
    the writer thread is raised in the caller at its next ``write``/``flush``/``close``.
    """

    def __init__(self, root_file, layout: OutputLayout, block_rows: int,
                 compression: uproot.compression.Compression | None = COMPRESSION):
        self.root_file, self.layout, self.block_rows = root_file, layout, block_rows
        self.compression = compression
        self.parts: list[_Part] = []
        self.buffered = 0
        self.names: dict[str, tuple[str, str]] = {}
        self.tree = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="root-write")
        self._in_flight: Future | None = None

    def write(self, rows: pd.DataFrame) -> None:
        part, names = _columns(rows, self.layout)
        if not self.names:
            self.names = names
        if self.buffered and part.rows >= self.block_rows:
            self.flush()  # a chunk as large as a block is a block of its own
        self.parts.append(part)
        self.buffered += part.rows
        if self.buffered >= self.block_rows:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered block to the writer thread once the previous block is written."""
        if not self.parts:
            return
        parts, self.parts, self.buffered = self.parts, [], 0
        self._wait()
        self._in_flight = self._thread.submit(self._write_block, parts)

    def close(self) -> None:
        """Wait for the block in flight (raising its error) and stop the thread."""
        try:
            self._wait()
        finally:
            self._thread.shutdown(wait=True)

    def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def _write_block(self, parts: list[_Part]) -> None:
        names = self.names
        part = _Part.concatenate(parts)
        branches = _branches(part)
        if self.tree is None:
            self.tree = self.root_file.mktree(
                self.layout.tree,
                {key: _branch_type(value) for key, value in branches.items()},
                counter_name=lambda counted: names[counted][0],
                field_name=lambda outer, inner: f"{names[outer][1]}{inner}",
            )
            for name in _incompressible(part, names, self.compression):
                self.tree[name].compression = None
        self.tree.extend(branches)


def _incompressible(part: _Part, names: dict[str, tuple[str, str]],
                    compression: uproot.compression.Compression | None) -> list[str]:
    """Numeric branches of ``part`` that ``compression`` would keep above ``RAW_ABOVE_RATIO`` of their bytes."""
    if compression is None:
        return []
    numeric = {f"{names[key][1]}{field}": values for key, fields in part.objects.items() for field, values in fields.items()}
    numeric.update({name: values for name, values in part.entries.items() if isinstance(values, np.ndarray)})
    return [name for name, values in numeric.items()
            if len(values) >= _MIN_RATIO_SAMPLE and _compressed_share(values, compression) > RAW_ABOVE_RATIO]


def _compressed_share(values: np.ndarray, compression: uproot.compression.Compression) -> float:
    """Compressed / raw bytes of the first ``_RATIO_SAMPLE`` values, big-endian as ROOT stores them."""
    sample = np.ascontiguousarray(values[:_RATIO_SAMPLE])
    raw = sample.astype(sample.dtype.newbyteorder(">")).tobytes()
    return len(compression.compress(raw)) / len(raw)  # _MIN_RATIO_SAMPLE values or more: never empty


def _columns(rows: pd.DataFrame, layout: OutputLayout) -> tuple[_Part, dict[str, tuple[str, str]]]:
    """Flat rows -> a ``_Part`` of numpy columns and {collection key: (counter, prefix)}."""
    codes: dict[str, tuple[np.ndarray, object]] = {}  # factorized string columns, computed once
    if not layout.jagged:
        entries = {layout.entry_branch(c): _entry_values(rows, c, None, codes) for c in rows.columns}
        return _Part(len(rows), None, entries=entries), {}
    counts = _event_counts(rows, codes)
    starts = np.cumsum(counts) - counts
    written = [c for c in layout.collections if any(col in rows.columns for col in c.columns)]
    if not written:
        raise InputError(f"generated columns {list(rows.columns)} fill none of the tree's collections")
    part = _Part(len(rows), counts)
    names: dict[str, tuple[str, str]] = {}
    for position, collection in enumerate(written):
        fields = {collection.columns[col]: _numpy(rows[col]) for col in collection.columns if col in rows.columns}
        if position == 0:
            fields.update({extra: _numpy(rows[extra]) for extra in PER_OBJECT_EXTRAS if extra in rows.columns})
            if layout.match_index and len(written) > 1:
                fields[layout.match_index] = _local_index(counts)
        key = f"__{collection.name}"
        part.objects[key] = fields
        names[key] = (collection.counter, collection.prefix)
    in_collections = {col for c in written for col in c.columns} | set(PER_OBJECT_EXTRAS)
    for column in rows.columns:
        if column not in in_collections:
            part.entries[layout.entry_branch(column)] = _entry_values(rows, column, starts, codes)
    return part, names


def _branches(part: _Part) -> dict:
    """A ``_Part`` -> the mapping ``extend`` takes.

    A collection is one jagged awkward record assembled from the offsets and the numpy values of
    its fields (no ``ak.zip``/``ak.unflatten``, no copies); uproot writes its counter (``nJet``)
    and its ``prefix + field`` branches from it.
    """
    branches: dict = {}
    if part.objects:
        offsets = np.zeros(len(part.counts) + 1, dtype=np.int64)
        np.cumsum(part.counts, out=offsets[1:])
        index = ak.index.Index64(offsets)
        for key, fields in part.objects.items():
            contents = [ak.contents.NumpyArray(np.ascontiguousarray(values)) for values in fields.values()]
            record = ak.contents.RecordArray(contents, list(fields), length=int(offsets[-1]))
            branches[key] = ak.Array(ak.contents.ListOffsetArray(index, record))
    for name, values in part.entries.items():
        branches[name] = values.to_awkward() if isinstance(values, _Strings) else values
    return branches


def read_generated_root(path: str | Path, layout: OutputLayout) -> pd.DataFrame:
    """Read a file written by ``root_writer`` back into flat ingest-style columns (one row per object)."""
    try:
        tree = uproot.open(path)[layout.tree]
    except (OSError, KeyError) as error:
        raise InputError(f"{path}: cannot read tree {layout.tree!r}: {error}") from error
    arrays = tree.arrays(library="ak")
    names = set(arrays.fields)
    if not layout.jagged:
        return pd.DataFrame({layout.entry_column(name): _to_numpy(arrays[name]) for name in arrays.fields})
    present = [c for c in layout.collections if c.counter in names]
    counts = ak.to_numpy(arrays[present[0].counter]).astype(np.int64)
    columns: dict[str, np.ndarray] = {}
    branch_to_column = _branch_to_column(present, layout)
    collection_branches = set(branch_to_column) | {c.counter for c in present}
    for name in arrays.fields:
        if name in branch_to_column:
            if branch_to_column[name] is not None:
                columns[branch_to_column[name]] = _to_numpy(ak.flatten(arrays[name]))
        elif name not in collection_branches:
            columns[layout.entry_column(name)] = np.repeat(_to_numpy(arrays[name]), counts)
    return pd.DataFrame(columns)


def _branch_to_column(present: list[CollectionLayout], layout: OutputLayout) -> dict[str, str | None]:
    mapping: dict[str, str | None] = {}
    for position, collection in enumerate(present):
        mapping.update({collection.branch(col): col for col in collection.columns})
        if position == 0:
            mapping.update({f"{collection.prefix}{extra}": extra for extra in PER_OBJECT_EXTRAS})
            if layout.match_index:
                mapping[f"{collection.prefix}{layout.match_index}"] = None  # derived, not a column
    return mapping


def _event_counts(rows: pd.DataFrame, codes: dict) -> np.ndarray:
    """Objects per event: runs of equal (source_file, entry); one row per event without them.

    ``source_file``'s codes go into ``codes``, where the event-level branches find them again.
    """
    starts = event_starts(rows, lambda series: _factorized(series, codes)[0])
    return np.diff(np.append(starts, len(rows))).astype(np.int64)


def _entry_values(rows: pd.DataFrame, column: str, positions: np.ndarray | None, codes: dict) -> np.ndarray | _Strings:
    """One value per entry: the column at ``positions`` (each event's first row), or every row."""
    series = rows[column]
    if _is_numeric(series):
        values = _numpy(series)
        return values if positions is None else values[positions]
    return _Strings.take(*_factorized(series, codes), positions)


def _factorized(series: pd.Series, codes: dict) -> tuple[np.ndarray, object]:
    if series.name not in codes:
        codes[series.name] = pd.factorize(series, use_na_sentinel=False)
    return codes[series.name]


def _local_index(counts: np.ndarray) -> np.ndarray:
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(int(counts.sum())) - starts).astype(np.int32)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)


def _is_missing(value) -> bool:
    return value is None or (not isinstance(value, (str, bytes)) and bool(pd.isna(value)))


def _numpy(series: pd.Series) -> np.ndarray:
    if _is_numeric(series):
        return series.to_numpy()
    raise InputError(f"column {series.name!r} ({series.dtype}) is not numeric; only event-level columns "
                     f"(source_file) may hold strings")


def _to_numpy(array) -> np.ndarray:
    if isinstance(ak.type(array).content, ak.types.ListType) or str(ak.type(array).content) == "string":
        return np.asarray(ak.to_list(array), dtype=str)
    return ak.to_numpy(array)


def _branch_type(value):
    """The ``mktree`` type of one branch: awkward types and numpy dtypes as objects, never as
    datashape strings (``"string"``) that awkward would first parse with its grammar."""
    if isinstance(value, ak.Array):
        return ak.type(value)
    return value.dtype
