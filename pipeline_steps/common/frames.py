"""Concatenating the tables of separately ingested parts, one exact type per column.

Each ingest part fixes its column types from its own first file, so one dataset's parts can disagree:
NanoAOD's ``event`` is uint64, a private skim's is int64. ``pd.concat`` gives such a column float64,
which changes the values above 2^53 and, through the identity hash, moves existing rows to another
split when a file is added (``preprocess/split.py`` promises it does not). Here integer columns keep
an integer type that holds every value, or the mix is refused naming the column.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import InputError

INT64_MAX = np.iinfo(np.int64).max


def concat_parts(frames: Sequence[pd.DataFrame], source: str) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)``, integer columns of different types in one exact integer type.

    ``source`` names the tables in an error (a mix of uint64 values above 2^63 and negative values)."""
    frames = [frame for frame in frames if len(frame)] or list(frames)[:1]  # an empty part's types decide nothing
    for column in dict.fromkeys(column for frame in frames for column in frame.columns):
        dtypes = {frame[column].dtype for frame in frames if column in frame}
        # numpy integers only: pandas' nullable and Arrow integers promote among themselves without float64
        if len(dtypes) > 1 and all(isinstance(dtype, np.dtype) and dtype.kind in "iu" for dtype in dtypes):
            common = common_integer_type(column, [frame[column] for frame in frames if column in frame], source)
            frames = [frame.astype({column: common}) if column in frame else frame for frame in frames]
    return pd.concat(frames, ignore_index=True)


def common_integer_type(column: str, parts: Sequence[pd.Series], source: str) -> np.dtype:
    """numpy's promotion where it stays integer; for uint64 beside a signed type (which numpy makes
    float64) int64 when the unsigned values fit it, else uint64 when no signed value is negative."""
    common = np.result_type(*(part.dtype for part in parts))
    if common.kind in "iu":
        return common
    unsigned_max = max((int(part.max()) for part in parts if part.dtype.kind == "u" and len(part)), default=0)
    signed_min = min((int(part.min()) for part in parts if part.dtype.kind == "i" and len(part)), default=0)
    if unsigned_max <= INT64_MAX:
        return np.dtype(np.int64)
    if signed_min >= 0:
        return np.dtype(np.uint64)
    raise InputError(f"{source}: column {column!r} is uint64 in some tables, with values up to {unsigned_max}, and "
                     f"signed in others, with values down to {signed_min}; no integer type holds both (the files of "
                     f"one dataset should store it in one type)")
