"""Chunks of columns -> one Parquet file, streamed row group by row group (bounded memory).

The Arrow schema is fixed before the first chunk (from a zero-entry read), so an empty tree or a
chunk where every row fails the selection still writes the right column types, and the same input
always gives the same bytes (no timestamps, fixed compression).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"


def arrow_table(columns: dict[str, object]) -> pa.Table:
    """Columns (numpy arrays, awkward list arrays) -> an Arrow table; dtypes kept (float32 stays float32)."""
    return pa.table({name: _arrow_array(name, values) for name, values in columns.items()})


class TableWriter:
    """Write Arrow tables of one schema to ``path`` as consecutive row groups."""

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.schema = schema
        self._writer = pq.ParquetWriter(str(path), schema, compression=COMPRESSION, store_schema=True)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema))

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
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(np.ascontiguousarray(values))
