"""Chunks of columns -> one Parquet file, streamed row group by row group (bounded memory).

The Arrow schema is fixed before the first chunk is written (from a zero-entry slice of the first
step, or a zero-entry read of an empty tree), so an empty tree or a chunk where every row fails the
selection still writes the right column types, and the same input always gives the same bytes (no
timestamps, fixed compression).

Numeric and boolean columns become Arrow arrays over their numpy buffers, and the file-name column
(fixed-width UTF-8 bytes, one name repeated) a string array over one buffer: ``pa.array`` would
import pandas on its first call (~45 MiB and 0.4-0.9 s per job) only to learn that numpy is not pandas.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, floating
_MAX_STRING_BYTES = 2**31 - 1  # int32 offsets of pa.string()


def arrow_table(columns: dict[str, object]) -> pa.Table:
    """Columns (numpy arrays, awkward list arrays) -> an Arrow table; dtypes kept (float32 stays float32)."""
    return pa.Table.from_arrays([_arrow_array(name, values) for name, values in columns.items()], names=list(columns))


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: integers and names (few distinct values), not floats
    (Parquet has no dictionaries for booleans).

    A row group holds one step (~100k objects), so a float column's dictionary never reaches
    Parquet's 1 MiB fallback limit: every value was hashed into a dictionary as large as the data,
    which made the file 1.5x larger than plain encoding + zstd and its writing and reading 2x slower.
    List columns (sequences) are plain too.
    """
    return [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_string(f.type)]


class TableWriter:
    """Write Arrow tables of one schema to ``path`` as consecutive row groups."""

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.schema = schema
        self._writer = pq.ParquetWriter(str(path), schema, compression=COMPRESSION, store_schema=True,
                                        use_dictionary=dictionary_columns(schema))

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            # cast only when a chunk's types differ (it imports pyarrow.compute, 0.1 s)
            self._writer.write_table(table if table.schema.equals(self.schema) else self._cast(table))

    def _cast(self, table: pa.Table) -> pa.Table:
        """``table`` in this file's types. Arrow's cast checks integer overflow but turns a float64 beyond
        float32's range into +-inf; that is refused here too, since a later file's 1e300 would reach
        training as inf with no word of where it came from."""
        import pyarrow.compute as pc

        cast = table.cast(self.schema)
        for name in table.schema.names:
            before, after = table.schema.field(name).type, self.schema.field(name).type
            if pa.types.is_floating(before) and pa.types.is_floating(after) and before.bit_width > after.bit_width:
                lost = (pc.sum(pc.is_finite(table[name])).as_py() or 0) - (pc.sum(pc.is_finite(cast[name])).as_py() or 0)
                if lost:
                    raise pa.ArrowInvalid(f"column {name!r}: {lost} finite {before} values lie beyond the {after} range")
        return cast

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _arrow_array(name: str, values) -> pa.Array:
    if isinstance(values, ak.Array):
        return ak.to_arrow(values, list_to32=True, extensionarray=False, string_to32=True)
    if name == "source_file":
        if values.dtype.kind == "S" and _fills_width(values):
            return _utf8_array(values)
        return pa.array([v.decode() if isinstance(v, bytes) else v for v in values.tolist()], type=pa.string())
    if values.ndim == 1 and values.dtype.kind in _NUMERIC_KINDS:
        return _numeric_array(values)
    return pa.array(np.ascontiguousarray(values))


def _numeric_array(values: np.ndarray) -> pa.Array:
    """Zero-copy where the buffer is native and contiguous; booleans are bit-packed as Arrow stores them."""
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    values = np.ascontiguousarray(values)
    if values.dtype.kind == "b":
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _fills_width(values: np.ndarray) -> bool:
    """True if no value is shorter than the dtype's width (numpy pads those with NUL bytes)."""
    width = values.dtype.itemsize
    if width == 0 or len(values) * width > _MAX_STRING_BYTES:
        return False
    return bool(np.all(np.ascontiguousarray(values).view(np.uint8).reshape(len(values), width)[:, -1] != 0))


def _utf8_array(values: np.ndarray) -> pa.Array:
    width = values.dtype.itemsize
    offsets = np.arange(0, (len(values) + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(values))])
