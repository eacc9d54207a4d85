"""The verification batch of an export: real held-out rows, fixed noise, the framework's answers.

Generative models take the first ``rows`` rows of the test split (``cond__*`` columns, transformed)
and standard-normal noise from ``numpy.random.default_rng(seed)``; the framework's outputs are mapped
to physical units with this project's own transforms (``load_transforms``, ``denormalise_mixed``) so
that the bundle's numpy implementation is checked against them. CalRatio takes the test jets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.errors import InputError

log = logging.getLogger(__name__)


def read_conditions(test_split: str | Path, conditions: list[str], rows: int) -> tuple[np.ndarray, pd.DataFrame]:
    """(transformed conditions float32 [rows, k], physical conditions DataFrame) of the first ``rows`` rows.

    A test split with fewer rows is repeated up to ``rows``: every row gets its own noise, so the batch
    still has the spread the verification's column scales and 99.9% quantile need (a 2-row split had been
    "verified" on 2 rows, below ``export.verify_rows``' minimum)."""
    table = pd.read_parquet(test_split).head(rows).reset_index(drop=True)
    wanted = [f"cond__{c}" for c in conditions] + list(conditions)
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise InputError(f"{test_split}: columns {missing} missing; expected the model's conditions (physical and cond__*)")
    if table.empty:
        raise InputError(f"{test_split}: no rows to verify the export with")
    if len(table) < rows:
        log.info("%s has %d rows; their conditions are repeated to the %d verification rows, each with its own noise",
                 test_split, len(table), rows)
        table = table.iloc[np.resize(np.arange(len(table)), rows)].reset_index(drop=True)
    return table[[f"cond__{c}" for c in conditions]].to_numpy(np.float32), table[list(conditions)]


def standard_normal(rows: int, dim: int, seed: int) -> np.ndarray:
    """The noise convention of the bundle: ``default_rng(seed).standard_normal((rows, dim))`` as float32."""
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def physical_targets(model_transforms, generated: np.ndarray, conditions_physical: pd.DataFrame,
                     categories: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Framework-side physical outputs (this project's transforms), as the generate stage computes them."""
    model_space = model_transforms.targets.inverse(generated)
    if categories is not None:
        from pipeline_steps.categorise.categories import denormalise_mixed

        table = model_space.assign(category=conditions_physical["category"].to_numpy())
        physical = denormalise_mixed(table, categories)
        return {name: physical[name].to_numpy() for name in model_transforms.target_names}
    physical = model_transforms.support.apply(model_transforms.targets_to_physical(model_space, conditions_physical))
    return {name: physical[name].to_numpy() for name in physical.columns}


def write_verification(path: str | Path, groups: Mapping[str, Mapping[str, Any]]) -> None:
    """verification.npz with keys ``group/name`` (no pickles: plain numeric arrays only)."""
    arrays = {f"{group}/{name}": np.asarray(value) for group, values in groups.items() for name, value in values.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
