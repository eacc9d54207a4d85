"""The ``preprocess_calratio`` rule's work: main + control region -> splits, sequences, transforms.

Reads the ingested CalRatio jet tables (identity, label/is_data, mcEventWeight, jet_*, llp_* and the
list columns clus_*/track_*/MSeg_*), sorts them by identity (file order never matters), assigns
splits by identity hash, equalises weights (:mod:`calratio_inputs`), fits the jet-feature
transforms and the sequence standardisation on the *main training split* only, applies them to
every split of both regions and writes the contract files of pipeline_steps/README.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.identity import (
    identity_columns, report_events_in_several_files, row_origin, split_keys,
)
from pipeline_steps.common.logs import step_logging
from pipeline_steps.preprocess import calratio_inputs as cr
from pipeline_steps.preprocess.split import SPLIT_NAMES, assign_split, check_splits_filled
from pipeline_steps.preprocess.model_transforms import ModelTransforms, save_transforms
from pipeline_steps.preprocess.transforms import fit_variable_transforms

LOGGER = logging.getLogger(__name__)
LLP_COLUMNS = ("llp_mS", "llp_mH", "llp_Lxy", "llp_Lz")


@dataclass(frozen=True)
class CalRatioSettings:
    """The rule's config slice, typed: one calratio_rnn model and its datasets' layout.

    ``params``: ``model`` (the model's config), ``name``, ``seed`` and ``layout`` =
    {``sequences``: the table's ``sequences`` mapping, ``identity`` / ``control_identity``: the main
    and control datasets' identity branches}.
    """

    name: str
    conditions: tuple[str, ...]
    kinds: dict[str, str]
    dequantize: tuple[str, ...]
    decorrelate: bool
    weight: str
    fractions: dict[str, float]
    sequences: tuple[cr.SequenceSpec, ...]
    pad_value: float
    identity: tuple[str, ...]
    control_identity: tuple[str, ...]
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "CalRatioSettings":
        model, name, tables = params["model"], str(params["name"]), params["layout"]
        prep = model.get("preprocessing", {})
        lengths = prep.get("sequence_lengths", {})
        layout = tables["sequences"]
        missing = sorted(set(layout) - set(lengths))
        if missing:
            raise ConfigError(f"models.{name}.preprocessing.sequence_lengths: no length for sequences {missing}; "
                              f"the table defines {sorted(layout)}")
        specs = tuple(cr.SequenceSpec(s, layout[s].get("prefix", ""), tuple(layout[s]["fields"]), int(lengths[s]))
                      for s in layout)
        default, per_variable = prep.get("default", "standard"), prep.get("per_variable", {})
        return cls(
            name=name, conditions=tuple(model["conditions"]),
            kinds={c: per_variable.get(c, default) for c in model["conditions"]},
            dequantize=tuple(prep.get("dequantize", [])), decorrelate=bool(prep.get("decorrelate_conditions", False)),
            weight=model.get("weight", "mcEventWeight"), fractions=dict(model["split"]), sequences=specs,
            pad_value=float(prep.get("pad_value", 0.0)),
            identity=identity_columns(tables["identity"]), control_identity=identity_columns(tables["control_identity"]),
            seed=int(params["seed"]),
        )


def run(main_tables: Sequence[str | Path], control_tables: Sequence[str | Path], output_dir: str | Path,
        params: Mapping[str, Any], log: str | Path | None = None) -> None:
    """Write ``<split>.parquet``, ``cr_<split>.parquet``, their ``*_sequences.npz`` and ``transforms.json``."""
    settings = CalRatioSettings.from_params(params)
    output_dir = Path(output_dir)
    with step_logging(log):
        main = _read_region(main_tables, settings, settings.identity, "main")
        control = _read_region(control_tables, settings, settings.control_identity, "cr")
        main["mc_weight"], main_factor = cr.main_mc_weights(main["jets"]["label"], main["jets"]["weight"],
                                                            f"{len(main_tables)} main tables")
        control["mc_weight"], cr_factor = cr.control_mc_weights(control["jets"]["is_data"], control["jets"]["weight"],
                                                                f"{len(control_tables)} control-region tables")
        train = main["split"] == "train"
        model_transforms = _fit_jet_transforms(main["jets"].loc[train], settings)
        model_transforms.report = {region: data["report"] for region, data in (("main", main), ("cr", control))}
        scalings = {s.name: cr.fit_sequence_scaling(main["padded"][s.name][train], main["lengths"][s.name][train])
                    for s in settings.sequences}
        for region, data in (("main", main), ("cr", control)):
            for split in SPLIT_NAMES:
                _write_split(output_dir, region, split, data, model_transforms, scalings, settings)
        _write_transforms(output_dir / "transforms.json", model_transforms, scalings, settings,
                          {"main_qcd_factor": main_factor, "cr_mc_factor": cr_factor})


def _read_region(paths: Sequence[str | Path], settings: CalRatioSettings, identity: tuple[str, ...],
                 region: str) -> dict[str, Any]:
    """Read, sort by identity, split, pad: everything per region before any fitting."""
    if not paths:
        raise InputError(f"preprocess_calratio {settings.name}: no {region} tables given")
    tables = [_read_table(path, settings, identity, region) for path in tqdm(list(paths), desc=f"read {region}")]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:  # is_data bool in one file, int32 in another
        raise InputError(f"preprocess_calratio {settings.name}: the {region} tables {[str(p) for p in paths]} do "
                         f"not share column types ({error}); write each branch with one type in every file") from error
    table = table.take(pc.sort_indices(table, sort_keys=[(name, "ascending") for name in identity]))
    sequence_columns = [c for spec in settings.sequences for c in spec.columns]
    jets = table.drop_columns(sequence_columns).to_pandas()
    jets = jets.rename(columns={settings.weight: "weight"})
    if region == "main":
        _check_classes(jets, "label", cr.MAIN_LABELS, f"main tables of {settings.name}")
        jets = jets.drop(columns=[c for c in ("is_data",) if c in jets.columns])
    else:
        if "is_data" in jets.columns:
            _check_classes(jets, "is_data", {0: "MC", 1: "data"}, f"control-region tables of {settings.name}")
        jets["is_data"] = _control_is_data(jets)
        jets = jets.drop(columns=[c for c in ("label",) if c in jets.columns])
    _check_finite(jets, list(settings.conditions) + ["weight"], f"{region} tables of {settings.name}")
    padded, lengths = {}, {}
    for spec in settings.sequences:
        padded[spec.name], lengths[spec.name] = cr.sequence_arrays(table, spec, settings.pad_value, f"{region} tables")
    split = assign_split(jets[split_keys(identity)], settings.fractions, settings.seed)
    check_splits_filled(split, jets, identity, settings.fractions, f"{region} tables of {settings.name}")
    column, classes = ("label", cr.MAIN_LABELS) if region == "main" else ("is_data", {0: "MC", 1: "data"})
    _check_classes_in_splits(jets[column].to_numpy(), split, column, classes, f"{region} tables of {settings.name}")
    LOGGER.info("%s: %d jets, splits %s", region, len(jets), {s: int((split == s).sum()) for s in SPLIT_NAMES})
    return {"jets": jets, "padded": padded, "lengths": lengths, "split": split, "identity": identity,
            "report": _region_report(table, jets, settings, region, identity)}


def _region_report(table: pa.Table, jets: pd.DataFrame, settings: CalRatioSettings, region: str,
                   identity: tuple[str, ...]) -> dict[str, Any]:
    """What preprocessing did to a region's jets that a physicist should know: sequences cut to their
    ``sequence_lengths`` (the first objects in stored order are kept), jets of negative weight (NLO,
    used signed), events that several raw files hold. The first two had gone by without a count (348 of
    3000 jets with more than 30 clusters)."""
    truncated = {}
    for spec in settings.sequences:
        stored = pc.fill_null(pc.list_value_length(table.column(spec.columns[0])), 0).to_numpy() if spec.columns else []
        truncated[spec.name] = int(np.sum(np.asarray(stored) > spec.length))
    report = {"jets": len(jets), "truncated_sequences": truncated,
              "negative_weights": int((jets["weight"].to_numpy() < 0).sum())}
    if any(truncated.values()):
        LOGGER.warning("%s: jets whose sequences were cut to sequence_lengths (first objects kept, in stored "
                       "order): %s of %d", region, truncated, len(jets))
    if report["negative_weights"]:
        LOGGER.info("%s: %d of %d jets have a negative weight (used signed)", region, report["negative_weights"],
                    len(jets))
    report_events_in_several_files(jets, identity, f"{region} tables of {settings.name}", report)
    return report


def _read_table(path: str | Path, settings: CalRatioSettings, identity: tuple[str, ...], region: str) -> pa.Table:
    try:
        available = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(f"{path}: cannot read the ingested CalRatio table ({error})") from error
    required = list(identity) + list(settings.conditions) + [settings.weight]
    required += ["label"] if region == "main" else []
    required += [c for spec in settings.sequences for c in spec.columns]
    missing = [c for c in required if c not in available]
    if region == "cr" and "is_data" not in available and "label" not in available:
        missing.append("is_data (or label)")
    if missing:
        raise InputError(f"{path}: missing columns {missing} for {region} inputs of model {settings.name}; found {available}")
    optional = [c for c in ("label", "is_data", *LLP_COLUMNS) if c in available]
    return pq.read_table(path, columns=list(dict.fromkeys(required + optional)))


def _control_is_data(jets: pd.DataFrame) -> np.ndarray:
    if "is_data" in jets.columns:
        return jets["is_data"].to_numpy().astype(np.int8)
    return (jets["label"].to_numpy() == cr.CR_DATA_LABEL).astype(np.int8)


def _check_classes(jets: pd.DataFrame, column: str, classes: Mapping[int, str], source: str) -> None:
    """Every jet in one of the known classes: a label of 3 in the test split had gone into the metrics as
    background, and in training stopped the job without a file or entry."""
    values = jets[column].to_numpy()
    unknown = ~np.isin(values, list(classes))
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        raise InputError(f"{source}: {int(unknown.sum())} jets have {column} values {sorted(set(values[unknown].tolist()))}, "
                         f"expected {dict(classes)}; the first in {row_origin(jets, first)}: drop them with the "
                         f"dataset's `selection` (named as in `fields`, before `rename`) or map them upstream")


def _check_classes_in_splits(values: np.ndarray, split: np.ndarray, column: str, classes: Mapping[int, str],
                             source: str) -> None:
    """Every class in every split: the networks learn each class from train, the epoch is chosen on validation
    and the metrics are taken on test. A main sample without BIB jets had trained a BIB output on nothing,
    without a word, and a control region without data jets an adversary with nothing to tell apart."""
    counts = {name: {classes[label]: int(((split == name) & (values == label)).sum()) for label in classes}
              for name in SPLIT_NAMES}
    missing = [f"{classes[label]} ({column} {label}) in {name}" for name in SPLIT_NAMES for label in classes
               if counts[name][classes[label]] == 0]
    if missing:
        raise InputError(f"{source}: no jets of {', '.join(missing)}; jets per split and class: {counts}. Every "
                         f"class is needed in every split: ingest files that hold it, or raise that split's fraction")


def _check_finite(jets: pd.DataFrame, columns: list[str], source: str) -> None:
    for name in columns:
        values = jets[name].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            first = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(f"{source}: column {name} has {int((~np.isfinite(values)).sum())} NaN/inf values, the "
                             f"first in {row_origin(jets, first)}")


def _fit_jet_transforms(train_jets: pd.DataFrame, settings: CalRatioSettings) -> ModelTransforms:
    conditions = fit_variable_transforms(train_jets, settings.kinds, settings.dequantize, settings.decorrelate,
                                         settings.seed)
    targets = fit_variable_transforms(train_jets, {"label": "passthrough"}, seed=settings.seed)
    return ModelTransforms(conditions=conditions, targets=targets, model=settings.name)


def _write_split(output_dir: Path, region: str, split: str, data: Mapping[str, Any], transforms: ModelTransforms,
                 scalings: Mapping[str, cr.SequenceScaling], settings: CalRatioSettings) -> None:
    rows = data["split"] == split
    jets = data["jets"].loc[rows].reset_index(drop=True)
    class_column = "label" if region == "main" else "is_data"
    kept = list(data["identity"]) + [class_column] + list(settings.conditions)
    kept += [c for c in LLP_COLUMNS if c in jets.columns and c not in kept] + ["weight"]
    table = jets[list(dict.fromkeys(kept))].copy()
    table["mc_weight"] = data["mc_weight"][rows]
    encoded = transforms.conditions.forward(jets, dtype=np.float32)
    for index, name in enumerate(settings.conditions):
        table[f"cond__{name}"] = encoded[:, index]
    stem = split if region == "main" else f"cr_{split}"
    with atomic_path(output_dir / f"{stem}.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    arrays = {}
    for spec in settings.sequences:
        lengths = data["lengths"][spec.name][rows]
        arrays[spec.name] = scalings[spec.name].forward(data["padded"][spec.name][rows], lengths, settings.pad_value)
        arrays[f"{spec.name}_length"] = lengths.astype(np.int32)
    with atomic_path(output_dir / f"{stem}_sequences.npz") as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    LOGGER.info("wrote %s: %d jets", stem, len(table))


def _write_transforms(path: Path, transforms: ModelTransforms, scalings: Mapping[str, cr.SequenceScaling],
                      settings: CalRatioSettings, weight_factors: Mapping[str, float]) -> None:
    """transforms.json (+ .npz) via the shared saver, plus a ``calratio`` section for the sequences."""
    save_transforms(transforms, path)
    document = json.loads(path.read_text())
    document["calratio"] = {
        "pad_value": settings.pad_value,
        "sequences": {spec.name: {"prefix": spec.prefix, "fields": list(spec.fields), "length": spec.length,
                                  **scalings[spec.name].to_dict()} for spec in settings.sequences},
        "mc_weight": dict(weight_factors),
        "labels": {"signal": cr.SIGNAL_LABEL, "qcd": cr.QCD_LABEL, "bib": cr.BIB_LABEL},
    }
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")
