"""Real and generated rows in the same physical columns, ready for the BDT and the plots.

Real rows come from the held-out test split: the model's physical conditions plus its targets taken
back to the physical variables the ROOT file holds (``ptRatio`` -> ``pt`` via
``targets_to_physical``; SHiP: denormalised per category). Generated rows are read back from
``generated.root`` through the layout, i.e. exactly what an analysis would read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import InputError
from pipeline_steps.common.identity import IDENTITY_COLUMNS, event_codes, in_identity_order, row_origin
from pipeline_steps.generate.layout import OutputLayout
from pipeline_steps.generate.root_io import read_generated_root


@dataclass
class Comparison:
    """Real and generated tables with the feature columns, and their weights (None = unweighted)."""

    real: pd.DataFrame
    generated: pd.DataFrame
    features: list[str]
    physical_targets: list[str]
    real_weights: np.ndarray | None
    generated_weights: np.ndarray | None
    real_events: np.ndarray | None = None
    """One integer per real row naming its raw event (``common/identity.event_codes``); None: each row its own."""
    paired: bool = False
    """Generated row i was sampled from the conditions of real row i (a conditional model; checked by the
    rows' identity in ``check_pairs``). SHiP's categorised generation draws muons of its own: unpaired."""


def build_comparison(test_split: str | Path, generated_root: str | Path, model_transforms, layout: OutputLayout,
                     conditions: list[str], weight: str | None, categories_json: Mapping[str, Any] | None) -> Comparison:
    test = in_identity_order(pd.read_parquet(test_split))  # generation's order: generated row i pairs with row i
    generated = read_generated_root(generated_root, layout)
    targets = list(model_transforms.target_names)
    if categories_json is not None:
        from pipeline_steps.categorise.categories import denormalise_mixed

        needed = ["category", *targets, *(["weight"] if weight else [])]
        real = denormalise_mixed(test[[c for c in needed if c in test.columns]], categories_json).reset_index(drop=True)
        physical_targets = targets
        real_weights = real["weight"].to_numpy(np.float64) if weight and "weight" in real else None
        generated_weights = None  # unweighted draws of the weighted distribution
    else:
        physical = model_transforms.targets_to_physical(test[targets], test[conditions])
        physical_targets = list(physical.columns)
        real = pd.concat([test[conditions].reset_index(drop=True), physical], axis=1)
        real_weights = test["weight"].to_numpy(np.float64) if weight and "weight" in test else None
        generated_weights = (generated[weight].to_numpy(np.float64)
                             if weight and real_weights is not None and weight in generated else None)
    paired = categories_json is None
    if paired:
        check_pairs(test, generated, f"generated file {generated_root} (test split {test_split})")
    features = list(dict.fromkeys([*conditions, *physical_targets]))
    for name, table in (("test split " + str(test_split), real), ("generated file " + str(generated_root), generated)):
        missing = [c for c in features if c not in table.columns]
        if missing:
            raise InputError(f"{name}: columns {missing} missing; expected the features {features}")
    return Comparison(real[features].astype(np.float64), generated[features].astype(np.float64), features,
                      physical_targets, real_weights, generated_weights,
                      event_codes(test, layout.identity, f"test split {test_split}"), paired)


def check_pairs(test: pd.DataFrame, generated: pd.DataFrame, where: str) -> None:
    """Generated row i carries the identity of test row i (``IDENTITY_COLUMNS``), else an InputError.

    A conditional model generates one row from each test row's conditions and writes the row's identity
    beside it, in the test split's identity order (``in_identity_order``). The comparison pairs the two
    row by row (the BDT's train/evaluation cut, the halves, the bootstrap), so a generated file from
    another split or an older preprocessing (copied in by hand, or kept by ``--touch``) must not be
    compared as if it were this one's: the pairing had been inferred from equal lengths alone.
    """
    if len(generated) != len(test):
        raise InputError(f"{where}: {len(generated)} generated rows for {len(test)} test rows; a conditional model "
                         f"generates one row per test row, so this file was not generated from this test split: "
                         f"rerun its generate rule")
    keys = [key for key in IDENTITY_COLUMNS if key in test.columns]
    missing = [key for key in keys if key not in generated.columns]
    if missing:
        raise InputError(f"{where}: identity branches {missing} missing; generation writes {keys} beside every "
                         f"generated row, to pair it with the test row it was sampled from")
    differs = np.zeros(len(test), dtype=bool)
    for key in keys:
        differs |= _as_comparable(test[key]) != _as_comparable(generated[key])
    if differs.any():
        row = int(np.argmax(differs))
        raise InputError(f"{where}: generated row {row} comes from {row_origin(generated, row)}, test row {row} "
                         f"from {row_origin(test, row)} ({int(differs.sum())} of {len(test)} rows differ): the file "
                         f"was not generated from this test split; rerun its generate rule")


def _as_comparable(column: pd.Series) -> np.ndarray:
    """Numbers as they are, strings (``source_file``: pyarrow-backed in the split, numpy in the file) as str."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy()
    return column.astype(str).to_numpy()
