"""CalRatio RNN inputs: padded per-jet sequences, the trainer's reweighting, and the split loader.

The CalRatio 2019 trainer feeds each jet's clusters, tracks and muon segments to Conv1D + LSTM
branches as fixed-length arrays. Here each ingested list column (``clus_pt`` ...) is cut to the
first ``length`` objects in stored order (the order the ntuple gives, e.g. clusters by pT) or
padded with ``pad_value`` up to it, giving float32 arrays [n_jets, length, n_fields].

Weights follow the trainer's data flow (raw ``weights`` -> ``mcWeights`` -> splits): ``weight`` is the
raw ``mcEventWeight``; ``mc_weight`` rescales the QCD jets so that QCD and signal have the same
total weight in the main sample (BIB untouched), and the multijet MC so that MC and data have the
same total in the control region. The factors are computed on the whole sample before the split,
as the trainer does.

Sequence features are standardised per feature with a mean/std fitted on the training split's
real (non-pad) entries only; pad entries keep ``pad_value`` so the network can recognise them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline_steps.common.errors import InputError
from pipeline_steps.common.identity import event_codes

__all__ = [
    "SIGNAL_LABEL",
    "QCD_LABEL",
    "BIB_LABEL",
    "SequenceSpec",
    "SequenceScaling",
    "pad_ragged",
    "pad_lists",
    "sequence_arrays",
    "fit_sequence_scaling",
    "main_mc_weights",
    "control_mc_weights",
    "load_split",
    "load_calratio_preprocessing",
]

#: main-sample classes (the toy's and the trainer's three outputs)
SIGNAL_LABEL, QCD_LABEL, BIB_LABEL = 0, 1, 2
MAIN_LABELS = {SIGNAL_LABEL: "signal", QCD_LABEL: "QCD", BIB_LABEL: "BIB"}
#: without an ``is_data`` column, a control-region jet with this label is data (toy convention)
CR_DATA_LABEL = 1


@dataclass(frozen=True)
class SequenceSpec:
    """One per-jet sequence: its list columns (``prefix`` + field) and padded length."""

    name: str
    prefix: str
    fields: tuple[str, ...]
    length: int

    @property
    def columns(self) -> list[str]:
        return [f"{self.prefix}{field}" for field in self.fields]


@dataclass(frozen=True)
class SequenceScaling:
    """Per-feature standardisation of one sequence, fitted on non-pad training entries."""

    mean: np.ndarray
    std: np.ndarray

    def forward(self, padded: np.ndarray, lengths: np.ndarray, pad_value: float) -> np.ndarray:
        """Standardise real entries of [n, L, F]; pad entries stay ``pad_value``."""
        real = _real_mask(lengths, padded.shape[1])
        scaled = np.where(real[..., None], (padded - self.mean) / self.std, pad_value)
        return scaled.astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> "SequenceScaling":
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64))


def pad_ragged(lengths: np.ndarray, values: np.ndarray, length: int, pad_value: float) -> np.ndarray:
    """Flat ragged values (row i has ``lengths[i]`` entries, consecutive) -> [n, length] float32.

    Keeps each row's first ``length`` entries; shorter rows are filled with ``pad_value``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    values = np.asarray(values)
    if int(lengths.sum()) != values.size:
        raise InputError(f"pad: the lengths add up to {int(lengths.sum())} entries but {values.size} values were given")
    padded = np.full((lengths.size, length), pad_value, dtype=np.float32)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(length)[None, :]
    real = position < lengths[:, None]
    padded[real] = values[(starts[:, None] + position)[real]]
    return padded


def pad_lists(rows: Sequence[Sequence[float]], length: int, pad_value: float) -> np.ndarray:
    """:func:`pad_ragged` for a Python list of per-row sequences (tests, small inputs)."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    values = np.concatenate([np.asarray(r, dtype=np.float64) for r in rows]) if len(rows) else np.zeros(0)
    return pad_ragged(lengths, values, length, pad_value)


def sequence_arrays(table: pa.Table, spec: SequenceSpec, pad_value: float,
                    source: str = "CalRatio table") -> tuple[np.ndarray, np.ndarray]:
    """An Arrow table's list columns of one sequence -> padded [n, L, F] float32 and real lengths.

    Returned lengths are capped at ``spec.length`` (the number of real entries in the array).
    All fields of a sequence must have the same number of entries per jet.
    """
    missing = [c for c in spec.columns if c not in table.column_names]
    if missing:
        raise InputError(f"{source}: sequence {spec.name!r}: list columns {missing} missing; "
                         f"expected {spec.columns}")
    lengths = None
    planes = []
    for column in spec.columns:
        array = table.column(column)
        row_lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(np.int64)
        if lengths is None:
            lengths = row_lengths
        elif not np.array_equal(lengths, row_lengths):
            raise InputError(f"{source}: sequence {spec.name!r}: column {column} has other per-jet lengths "
                             f"than {spec.columns[0]}; every field of a sequence must have one entry per object")
        flat = pc.list_flatten(array).to_numpy(zero_copy_only=False).astype(np.float64)
        if not np.isfinite(flat).all():
            bad = int(np.searchsorted(np.cumsum(row_lengths), int(np.flatnonzero(~np.isfinite(flat))[0]), side="right"))
            where = (f"raw file {table.column('source_file')[bad].as_py()}, entry {table.column('entry')[bad].as_py()}"
                     if {"source_file", "entry"} <= set(table.column_names) else f"jet {bad}")
            raise InputError(f"{source}: column {column} has {int((~np.isfinite(flat)).sum())} NaN/inf entries, the "
                             f"first in {where}; a selection cannot reach a sequence's fields: fix them upstream or "
                             f"leave the file out with `blacklist`")
        planes.append(pad_ragged(row_lengths, flat, spec.length, pad_value))
    padded = np.stack(planes, axis=-1) if planes else np.zeros((table.num_rows, spec.length, 0), np.float32)
    return padded, np.minimum(lengths if lengths is not None else np.zeros(table.num_rows, np.int64), spec.length)


def fit_sequence_scaling(padded: np.ndarray, lengths: np.ndarray) -> SequenceScaling:
    """Mean/std per feature over real entries only (a constant or absent feature gets std 1)."""
    real = _real_mask(lengths, padded.shape[1])
    entries = padded[real].astype(np.float64)
    if entries.shape[0] == 0:
        return SequenceScaling(np.zeros(padded.shape[2]), np.ones(padded.shape[2]))
    std = entries.std(axis=0)
    return SequenceScaling(entries.mean(axis=0), np.where(std > 0, std, 1.0))


def main_mc_weights(labels: np.ndarray, weights: np.ndarray, source: str = "main sample") -> tuple[np.ndarray, float]:
    """mcWeights of the main sample: QCD scaled so its total equals the signal total; the factor."""
    labels, weights = np.asarray(labels), np.asarray(weights, dtype=np.float64)
    signal_total = math.fsum(weights[labels == SIGNAL_LABEL])
    qcd_total = math.fsum(weights[labels == QCD_LABEL])
    if signal_total <= 0 or qcd_total <= 0:
        raise InputError(f"{source}: cannot equalise signal and QCD weights: total signal weight {signal_total:g}, "
                         f"total QCD weight {qcd_total:g} (labels {SIGNAL_LABEL}=signal, {QCD_LABEL}=QCD); "
                         "expected both positive")
    factor = signal_total / qcd_total
    return np.where(labels == QCD_LABEL, weights * factor, weights), factor


def control_mc_weights(is_data: np.ndarray, weights: np.ndarray, source: str = "control region") -> tuple[np.ndarray, float]:
    """mcWeights of the control region: multijet MC scaled to the data's total weight; the factor."""
    is_data, weights = np.asarray(is_data).astype(bool), np.asarray(weights, dtype=np.float64)
    data_total, mc_total = math.fsum(weights[is_data]), math.fsum(weights[~is_data])
    if data_total <= 0 or mc_total <= 0:
        raise InputError(f"{source}: cannot equalise data and MC weights: total data weight {data_total:g}, "
                         f"total MC weight {mc_total:g}; expected both positive")
    factor = data_total / mc_total
    return np.where(is_data, weights, weights * factor), factor


def load_split(folder: str | Path, split: str, region: str = "main",
               identity: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """One split of a preprocessed CalRatio model as arrays, rows in the Parquet file's order.

    Keys: ``jets`` [n, n_cond] float32 (transformed jet features, config order), ``clusters``,
    ``tracks``, ``muon_segments`` [n, L, F] float32 (and ``<name>_length``), ``label`` (main) or
    ``is_data`` (cr), ``weight`` (raw), ``mc_weight`` (equalised), ``llp_mS``, ``llp_mH``, ``jet_pt``
    (physical; zeros when the table has no such column: a control region has no LLP), and with the
    dataset's ``identity`` branches ``events``: one integer per jet naming its event, by the keys its
    split followed (``common/identity.event_codes``). A split without its class, ``weight`` or
    ``mc_weight`` column is not preprocess_calratio's and is refused, naming the file: a missing
    ``mc_weight`` had been read as zeros.
    """
    if region not in ("main", "cr"):
        raise ValueError(f"load_split: region must be 'main' or 'cr', got {region!r}")
    stem = split if region == "main" else f"cr_{split}"
    folder = Path(folder)
    table = pd.read_parquet(folder / f"{stem}.parquet")
    with np.load(folder / f"{stem}_sequences.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    class_column = "label" if region == "main" else "is_data"
    missing = [name for name in (class_column, "weight", "mc_weight") if name not in table.columns]
    if missing:
        raise InputError(f"{folder / f'{stem}.parquet'}: no column {missing}; expected a split written by "
                         f"preprocess_calratio (rerun it)")
    condition_columns = [c for c in table.columns if c.startswith("cond__")]
    arrays["jets"] = table[condition_columns].to_numpy(dtype=np.float32)
    arrays[class_column] = table[class_column].to_numpy(dtype=np.int64)
    for name in ("weight", "mc_weight", "llp_mS", "llp_mH", "jet_pt"):
        arrays[name] = table[name].to_numpy(np.float64) if name in table.columns else np.zeros(len(table))
    if identity is not None:
        arrays["events"] = event_codes(table, identity, str(folder / f"{stem}.parquet"))
    return arrays


def load_calratio_preprocessing(transforms_json: str | Path) -> dict[str, Any]:
    """The CalRatio part of transforms.json: sequence specs, scalings, pad value, weight factors."""
    document = json.loads(Path(transforms_json).read_text())
    if "calratio" not in document:
        raise InputError(f"{transforms_json}: no 'calratio' section; not made by preprocess_calratio")
    section = document["calratio"]
    section["scalings"] = {name: SequenceScaling.from_dict(s) for name, s in section["sequences"].items()}
    return section


def _real_mask(lengths: np.ndarray, length: int) -> np.ndarray:
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]
