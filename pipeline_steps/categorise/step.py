"""Run functions of the SHiP categorisation rules: map (per-file min/max), reduce, categorise.

I/O lives here; the arithmetic is in :mod:`pipeline_steps.categorise.categories`. The map-reduce
mirrors the SHiP study's 66-file procedure as Snakemake jobs: one ``categorise_minmax`` job per
ingested file, one ``categorise_reduce`` gather job, then ``categorise`` normalises with the
global values.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.frames import concat_parts
from pipeline_steps.common.identity import identity_columns
from pipeline_steps.common.logs import step_logging
from pipeline_steps.categorise import categories as cat

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CategoriseSettings:
    """The rule's config slice: the dataset's extra identity branches (SHiP: none)."""

    identity: tuple[str, ...] = cat.IDENTITY_COLUMNS

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> "CategoriseSettings":
        extra = list(params["identity"]) if params is not None and "identity" in _keys(params) else []
        return cls(identity=identity_columns(extra))


def run_minmax(muons_file: str | Path, output: str | Path, log: str | Path | None = None) -> None:
    """Map job: one ingested muon table -> its per-category min/max JSON."""
    with step_logging(log):
        muons = read_muons(muons_file, cat.REQUIRED_COLUMNS)
        partial = cat.file_minmax(muons, source=str(muons_file))
        partial["table"] = Path(muons_file).name
        LOGGER.info("%s: %d muons, per category %s", muons_file, partial["n_rows"],
                    {c: v["n"] for c, v in partial["categories"].items()})
        write_text_atomic(output, json.dumps(partial, indent=1) + "\n")


def run_reduce(partial_files: Sequence[str | Path], output: str | Path, log: str | Path | None = None) -> None:
    """Gather job: all per-file JSONs -> global min/max, counts and the largest weight."""
    with step_logging(log):
        partials = [_read_json(path) for path in sorted(map(str, partial_files))]
        total = cat.reduce_minmax(partials)
        total["tables"] = [p.get("table", "") for p in partials]
        LOGGER.info("reduced %d files: %d muons, largest weight %s", len(partials), total["n_rows"], total["max_weight"])
        write_text_atomic(output, json.dumps(total, indent=1) + "\n")


def run_categorise(muons_files: Sequence[str | Path], minmax_file: str | Path, category_files: Sequence[str | Path],
                   categories_json: str | Path, params: Mapping[str, Any] | None = None,
                   log: str | Path | None = None) -> None:
    """All ingested tables + minmax.json -> cat1..cat4.parquet and categories.json."""
    if len(category_files) != len(cat.CATEGORIES):
        raise ValueError(f"categorise: expected {len(cat.CATEGORIES)} category outputs, got {len(category_files)}")
    settings = CategoriseSettings.from_params(params)
    with step_logging(log):
        columns = settings.identity + cat.REQUIRED_COLUMNS
        muons = concat_parts([read_muons(path, columns) for path in tqdm(list(muons_files), desc="read muons")],
                             f"categorise: the {len(muons_files)} muon tables")
        tables, described = cat.categorise(muons, _read_json(minmax_file), settings.identity,
                                           source=f"{len(muons_files)} muon tables")
        for category, path in zip(cat.CATEGORIES, category_files):
            write_parquet(tables[category], path)
            LOGGER.info("category %d: %d muons, share %.4f (weighted %.4f)", category, len(tables[category]),
                        described["categories"][str(category)]["share_unweighted"],
                        described["categories"][str(category)]["share_weighted"])
        write_text_atomic(categories_json, json.dumps(described, indent=1) + "\n")


def read_muons(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read the needed columns of one ingested muon table, with an error naming what is missing."""
    try:
        available = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(f"{path}: cannot read the ingested muon table ({error})") from error
    missing = [name for name in columns if name not in available]
    if missing:
        raise InputError(f"{path}: missing columns {missing}; expected the ingested SHiP muons table, found {available}")
    return pd.read_parquet(path, columns=list(dict.fromkeys(columns)))


def write_parquet(table: pd.DataFrame, path: str | Path) -> None:
    """Atomic Parquet write without the pandas index."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the min/max JSON ({error})") from error


def _keys(params: Mapping[str, Any]) -> list[str]:
    return list(params.keys())
