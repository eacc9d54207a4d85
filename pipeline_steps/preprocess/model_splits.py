"""The ``preprocess_model`` rule's work: ingested (or SHiP-categorised) tables -> splits + fitted transforms.

For models of kind ``covariance_gan`` and ``flow``:

1. read the model's columns from every input table (identity, conditions, the physical columns its
   targets need, the weight), failing with the file and column on a missing column, and with the
   raw ROOT file and entry on a NaN or +-inf (every model variable must be finite);
2. sort rows by identity (so the output does not depend on file order) and assign each row to
   train/validation/test by a hash of its event's identity (:mod:`split`; every object of an event in one split);
3. compute the model-space targets (derived variables, covariance representation), check that every
   variable can be transformed (finite; inside a log's domain after ``log_offset``/``clip``), and fit
   the transforms on the training split only (:mod:`transforms`);
4. write per split: identity, physical columns, ``weight``, ``cond__*`` and ``targ__*`` (float32),
   then ``transforms.json`` + ``.npz`` and the diagnostic plots.

What real data needs that a toy may not have is done in the open: ``transforms.json`` ``report``
(and the log) says, per variable, how many rows a ``clip`` bound changed and how many rows had a
ratio's reference below its ``floor`` (see :mod:`transforms`, :mod:`derived`).

SHiP (``categorised: true``): the inputs are ``cat{1..4}.parquet`` of the categorise stage, already
normalised to [-1, 1] (so the default transform is passthrough) and carrying ``category`` (int8,
1..4), which can be a condition. Categories 1-2 (muons from the target) have no StartX/StartY:
their physical *and* ``targ__`` values are filled with 0.0; a model should ignore them there
(generation sets them to zero for those categories anyway). Undoing the normalisation is the
categorise stage's job (``categorise.denormalise``), not this one's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.covariance import covariance_matrices, spd_mask
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.figures import figure_style
from pipeline_steps.common.frames import concat_parts
from pipeline_steps.common.identity import (
    check_event_identity, identity_columns, report_events_in_several_files, row_origin, split_keys,
)
from pipeline_steps.common.logs import step_logging
from pipeline_steps.preprocess.derived import DerivedVariable
from pipeline_steps.preprocess.model_variables import input_columns, read_model_variables
from pipeline_steps.preprocess.report import dominant_rows, preprocessing_report
from pipeline_steps.preprocess.plots import plot_correlations, plot_distributions
from pipeline_steps.preprocess.split import SPLIT_NAMES, assign_split, check_splits_filled
from pipeline_steps.preprocess.model_transforms import ModelTransforms, model_space_targets, save_transforms
from pipeline_steps.preprocess.physical_support import PhysicalSupport
from pipeline_steps.preprocess.transforms import LOG_KINDS, TRANSFORM_KINDS, fit_variable_transforms, invalid_values

logger = logging.getLogger(__name__)

NOT_FROM_TARGET_ONLY = ("StartX", "StartY")  # SHiP variables that categories 1-2 do not have
TARGET_CATEGORIES = (1, 2)
OUTPUT_KEYS = SPLIT_NAMES + ("transforms", "distributions", "correlations")


@dataclass(frozen=True)
class ModelPreprocessSettings:
    """The model's config slice, checked once. Transform kinds are resolved per variable."""

    model: str
    conditions: list[str]
    targets: list[str]
    derived: dict[str, DerivedVariable]
    fractions: dict[str, float]
    condition_kinds: dict[str, str]
    target_kinds: dict[str, str]
    dequantize: list[str]
    decorrelate_conditions: bool
    target_representation: str
    identity: list[str]
    entry_is_event: bool  # the table is read from a collection: each raw entry is one event
    weight: str | None = None
    categorised: bool = False
    seed: int = 0
    support: bool = True
    log_offsets: dict[str, float] = field(default_factory=dict)
    clips: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    point_mass_share: float | None = None
    bounded_sums: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_params(cls, model: str, slice_: Mapping[str, Any], seed: int) -> "ModelPreprocessSettings":
        prep = dict(slice_.get("preprocessing") or {})
        categorised = bool(slice_.get("categorised", False))
        variables = read_model_variables(model, slice_)
        for name, kind in {**variables.condition_kinds, **variables.target_kinds}.items():
            if kind not in TRANSFORM_KINDS:
                raise ConfigError(f"models.{model}.preprocessing: {name!r} has transform {kind!r}; "
                                  f"expected one of {list(TRANSFORM_KINDS)}")
        return cls(
            model=model, conditions=variables.conditions, targets=variables.targets, derived=variables.derived,
            fractions={name: float(slice_["split"][name]) for name in SPLIT_NAMES},
            condition_kinds=variables.condition_kinds, target_kinds=variables.target_kinds,
            dequantize=list(prep.get("dequantize") or []),
            decorrelate_conditions=bool(prep.get("decorrelate_conditions", False)),
            target_representation=prep.get("target_representation", "elements"),
            identity=list(identity_columns(slice_.get("identity", []))),
            entry_is_event=bool(slice_.get("entry_is_event", False)),
            weight=slice_.get("weight"), categorised=categorised, seed=int(seed),
            support=bool(prep.get("support", True)), clips=variables.clips, log_offsets=variables.log_offsets,
            point_mass_share=None if prep.get("point_mass_share") is None else float(prep["point_mass_share"]),
            bounded_sums=[list(group) for group in prep.get("bounded_sums") or []],
        )

    @property
    def physical_columns(self) -> list[str]:
        """Columns read from the inputs besides identity: conditions, target sources, weight."""
        return list(input_columns(self.conditions, self.targets, self.derived, self.weight))

    @property
    def extra_columns(self) -> list[str]:
        """Columns read only for a derived variable (``gen_mass`` of ``massRatio`` when it is no condition)."""
        asked = input_columns(self.conditions, self.targets, self.derived, None)
        return [column for column, key in asked.items() if key.startswith("derived.")]


def run(tables: Sequence[str | Path], outputs: Mapping[str, str | Path], params: Any,
        log: str | Path | None = None) -> None:
    """Rule entry: ``tables`` ingested (or cat1..4) Parquet files; ``outputs`` keyed by OUTPUT_KEYS.

    ``params`` has ``model`` (name), ``config`` (the model's slice + ``identity``) and ``seed``.
    """
    with step_logging(log):
        settings = ModelPreprocessSettings.from_params(_param(params, "model"), _param(params, "config"),
                                                       _param(params, "seed"))
        logger.info("model %s: %d input tables", settings.model, len(tables))
        rows = read_inputs(tables, settings)
        splits, model_transforms = preprocess(rows, settings)
        write_outputs(splits, model_transforms, rows, settings, outputs)


def read_inputs(tables: Sequence[str | Path], settings: ModelPreprocessSettings) -> pd.DataFrame:
    """Concatenate the needed columns of every table, sorted by identity (file order irrelevant)."""
    frames = [_read_table(Path(path), settings) for path in tqdm(list(tables), desc="read tables")]
    if not frames:
        raise InputError(f"model {settings.model}: no input tables")
    rows = concat_parts(frames, f"model {settings.model}: the input tables")
    if rows.empty:
        raise InputError(f"model {settings.model}: the input tables {list(map(str, tables))} have no rows")
    order = settings.identity + (["category"] if settings.categorised else [])
    return rows.sort_values(order, kind="stable").reset_index(drop=True)


def preprocess(rows: pd.DataFrame, settings: ModelPreprocessSettings
               ) -> tuple[dict[str, pd.DataFrame], ModelTransforms]:
    """Pure middle: split, fit on train, transform every split. Returns ({split: table}, transforms)."""
    if settings.entry_is_event:
        check_event_identity(rows, settings.identity, f"model {settings.model}")
    _check_numeric(rows, settings)
    split_of_row = assign_split(rows[split_keys(settings.identity)], settings.fractions, settings.seed)
    not_positive_definite = _check_covariances(rows, settings)
    model_targets = model_space_targets(rows, settings.targets, settings.derived, settings.target_representation)
    _check_transformable(rows, rows, settings.condition_kinds, settings)
    _check_transformable(rows, model_targets, settings.target_kinds, settings)
    check_splits_filled(split_of_row, rows, settings.identity, settings.fractions, f"model {settings.model}")
    train = split_of_row == "train"
    dequantize = set(settings.dequantize)
    model_transforms = ModelTransforms(
        conditions=fit_variable_transforms(
            rows.loc[train], settings.condition_kinds, [n for n in settings.conditions if n in dequantize],
            settings.decorrelate_conditions, seed=settings.seed, offsets=settings.log_offsets, clips=settings.clips),
        targets=fit_variable_transforms(
            model_targets.loc[train], settings.target_kinds, [n for n in settings.targets if n in dequantize],
            False, seed=settings.seed + 1, offsets=settings.log_offsets, clips=settings.clips,
            point_mass_share=settings.point_mass_share, exact_integers=True),
        derived=settings.derived, target_representation=settings.target_representation, model=settings.model,
        support=_training_support(rows.loc[train], settings),
    )
    model_transforms.report = preprocessing_report(rows, model_targets, model_transforms, settings.point_mass_share)
    report_events_in_several_files(rows, settings.identity, f"model {settings.model}", model_transforms.report)
    if not_positive_definite:
        model_transforms.report["not_positive_definite"] = not_positive_definite
    splits = {}
    for index, name in enumerate(SPLIT_NAMES):
        mask = split_of_row == name
        splits[name] = _split_table(rows.loc[mask], model_targets.loc[mask], model_transforms, settings, index)
        logger.info("split %s: %d rows", name, int(mask.sum()))
    model_transforms.report["dominant_rows"] = dominant_rows(splits)
    return splits, model_transforms


def _check_numeric(rows: pd.DataFrame, settings: ModelPreprocessSettings) -> None:
    """Every model variable holds numbers or flags: a string branch (the Zmumu sample's ``Type``, 'GT'/'TT')
    as a condition had stopped on numpy's bare "could not convert string to float"."""
    derived_sources = [name for spec in settings.derived.values() for name in (spec.source, spec.reference)]
    variables = [*settings.conditions, *(t for t in settings.targets if t not in settings.derived), *derived_sources,
                 *([settings.weight] if settings.weight else [])]
    for name in dict.fromkeys(variables):
        if name in rows.columns and not (pd.api.types.is_numeric_dtype(rows[name]) or
                                         pd.api.types.is_bool_dtype(rows[name])):
            examples = sorted({str(value) for value in rows[name].head(1000)})[:5]
            raise InputError(f"model {settings.model}: variable {name!r} holds {rows[name].dtype} values such as "
                             f"{examples} (first in {row_origin(rows, 0)}); a model variable must be numeric or a "
                             f"flag: map a label to integers upstream, or leave it out of conditions and targets")


def _check_covariances(rows: pd.DataFrame, settings: ModelPreprocessSettings) -> dict[str, Any] | None:
    """Real covariance targets that are not symmetric positive definite: counted, with the first one's raw file.

    A track fit cannot use them, and a generator learns them as real (130 of 10000 injected matrices,
    |rho| = 1.5 or a negative variance, had gone into training without a word and taken the generated SPD
    fraction from 0.88 to 0.76). ``elements`` keeps them, warned and counted in ``report``; the other
    representations cannot hold them and stop here, naming the first (they had said "some matrices").
    """
    matrices = covariance_matrices({name: rows[name] for name in settings.targets if name in rows.columns})
    if matrices is None:
        return None
    bad = ~spd_mask(matrices)
    if not bad.any():
        return None
    first = row_origin(rows, int(np.flatnonzero(bad)[0]))
    found = (f"model {settings.model}: {int(bad.sum())} of {len(rows)} real covariance matrices are not symmetric "
             f"positive definite, the first in {first}")
    if settings.target_representation != "elements":
        raise InputError(f"{found}; target_representation {settings.target_representation!r} needs positive "
                         f"definite matrices: drop those rows with the dataset's `selection` (a variance, e.g. "
                         f"cov_44 > 0, named as in `fields`) or fix them upstream")
    logger.warning("%s; they are trained on as they are (target_representation 'elements'): drop them with the "
                   "dataset's `selection` if a track fit could not use them", found)
    return {"count": int(bad.sum()), "rows": len(rows), "first": first}


def _check_transformable(rows: pd.DataFrame, table: pd.DataFrame, kinds: Mapping[str, str],
                         settings: ModelPreprocessSettings) -> None:
    """Every value of every variable can go through its transform; else name the raw file and entry.

    Catches a derived target that is not finite (a ratio over a zero reference) and a log of a value
    at or below -offset, before a fit would turn one bad row into a non-finite column.
    """
    for name, kind in kinds.items():
        values = table[name].to_numpy()
        bad = invalid_values(name, values, kind, settings.log_offsets.get(name), settings.clips.get(name))
        if bad.any():
            origin = f"derived {settings.derived[name].to_dict()}" if name in settings.derived else "column"
            expected = ("finite values" if kind not in LOG_KINDS else
                        f"finite values > {-settings.log_offsets.get(name, 0.0) + 0.0:g} for {kind} (set "
                        f"preprocessing.log_offset or a clip low bound)")
            raise InputError(f"model {settings.model}: variable {name!r} ({origin}) has {int(bad.sum())} values it "
                             f"cannot transform, first {values[bad][0]} in {row_origin(rows, np.flatnonzero(bad)[0])}; "
                             f"expected {expected}")


def _training_support(train_rows: pd.DataFrame, settings: ModelPreprocessSettings) -> PhysicalSupport:
    """The physical targets' training range (and discrete values) that generated rows are held to.

    Off with ``preprocessing.support: false``, and for SHiP categories, whose denormalisation
    (``categorise.categories.denormalise``) clips generated values to the category's [-1, 1]; neither
    may have ``bounded_sums`` (``model_variables.check_bounded_sums``).
    """
    if not settings.support or settings.categorised:
        return PhysicalSupport()
    physical = [settings.derived[t].source if t in settings.derived else t for t in settings.targets]
    discrete = [t for t in settings.targets if t in set(settings.dequantize) and t not in settings.derived]
    try:
        return PhysicalSupport.fit(train_rows[physical], discrete, settings.bounded_sums)
    except ConfigError as error:  # "preprocessing.bounded_sums ...": the training values' signs
        raise ConfigError(f"models.{settings.model}.{error}") from None


def write_outputs(splits: Mapping[str, pd.DataFrame], model_transforms: ModelTransforms, rows: pd.DataFrame,
                  settings: ModelPreprocessSettings, outputs: Mapping[str, str | Path]) -> None:
    """Parquet per split, transforms JSON + npz, and the two diagnostic plots (all atomic)."""
    for name in SPLIT_NAMES:
        with atomic_path(outputs[name]) as tmp:
            splits[name].to_parquet(tmp, index=False)
    save_transforms(model_transforms, outputs["transforms"])
    train = splits["train"]
    physical = pd.concat([train[settings.conditions].reset_index(drop=True),
                          model_transforms.physical_to_targets(train).reset_index(drop=True)], axis=1)
    transformed = train[[f"cond__{c}" for c in settings.conditions] + [f"targ__{t}" for t in settings.targets]]
    with figure_style():
        plot_distributions(physical, transformed, outputs["distributions"], title=f"{settings.model}: training split")
        plot_correlations(train[settings.conditions], train[[f"cond__{c}" for c in settings.conditions]],
                          outputs["correlations"], title=f"{settings.model}: conditions")


def _split_table(rows: pd.DataFrame, model_targets: pd.DataFrame, model_transforms: ModelTransforms,
                 settings: ModelPreprocessSettings, split_index: int) -> pd.DataFrame:
    """Contract columns: identity, [category], physical, [weight], cond__*, targ__* (float32)."""
    identity = settings.identity + (["category"] if settings.categorised else [])
    physical = list(dict.fromkeys(settings.conditions + settings.targets + settings.extra_columns))
    physical = [c for c in physical if c not in identity]
    table = rows[identity].reset_index(drop=True)
    for name in physical:
        source = model_targets if name in settings.derived else rows
        table[name] = source[name].to_numpy()
    if settings.weight:
        table["weight"] = rows[settings.weight].to_numpy()
    seed = settings.seed + 1000 * (split_index + 1)
    conditions = model_transforms.conditions.forward(rows, seed=seed)
    targets = model_transforms.targets.forward(model_targets, seed=seed + 1)
    if settings.categorised:
        targets = _zero_unmodelled(targets, rows["category"].to_numpy(), settings.targets)
    _check_finite_transformed(rows, conditions, settings.conditions, settings.model)
    _check_finite_transformed(rows, targets, settings.targets, settings.model)
    transformed = {f"cond__{n}": conditions[:, i] for i, n in enumerate(settings.conditions)}
    transformed.update({f"targ__{n}": targets[:, i] for i, n in enumerate(settings.targets)})
    return pd.concat([table, pd.DataFrame(transformed)], axis=1)


def _check_finite_transformed(rows: pd.DataFrame, values: np.ndarray, names: list[str], model: str) -> None:
    """The float32 model inputs are finite (a huge finite value can still overflow float32)."""
    bad_rows, bad_columns = np.nonzero(~np.isfinite(values))
    if len(bad_rows):
        raise InputError(f"model {model}: transformed {names[bad_columns[0]]!r} is not finite "
                         f"({values[bad_rows[0], bad_columns[0]]}) in {row_origin(rows, bad_rows[0])}; "
                         f"{len(bad_rows)} values in all; expected finite model inputs (is the value too large?)")


def _zero_unmodelled(targets: np.ndarray, category: np.ndarray, names: list[str]) -> np.ndarray:
    """Categories 1-2 have no StartX/StartY: their targ__ values are 0.0 (documented above)."""
    from_target = np.isin(category, TARGET_CATEGORIES)
    for index, name in enumerate(names):
        if name in NOT_FROM_TARGET_ONLY:
            targets[from_target, index] = 0.0
    return targets


def _read_table(path: Path, settings: ModelPreprocessSettings) -> pd.DataFrame:
    try:
        available = pq.read_schema(path).names
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read as Parquet ({error})") from error
    if settings.categorised:
        return _read_category(path, available, settings)
    wanted = list(dict.fromkeys(settings.identity + settings.physical_columns))
    _require(path, available, wanted)
    table = pd.read_parquet(path, columns=wanted)
    _check_finite(path, table, settings.physical_columns)
    _check_weights(path, table, settings)
    return table


def _read_category(path: Path, available: list[str], settings: ModelPreprocessSettings) -> pd.DataFrame:
    """One cat<k>.parquet: add ``category`` when absent, fill StartX/StartY of categories 1-2 with 0.0."""
    category = _category_of(path, available)
    fillable = [c for c in settings.physical_columns if c in NOT_FROM_TARGET_ONLY and c not in available]
    if fillable and category is not None and category not in TARGET_CATEGORIES:
        raise InputError(f"{path}: category {category} must have columns {fillable}; found {available}")
    wanted = [c for c in dict.fromkeys(settings.identity + settings.physical_columns + ["category"])
              if c not in fillable and not (c == "category" and c not in available)]
    _require(path, available, wanted)
    table = pd.read_parquet(path, columns=wanted)
    if "category" not in table.columns:
        table["category"] = np.int8(category)
    table["category"] = table["category"].astype(np.int8)
    for name in fillable:
        table[name] = 0.0
    _check_finite(path, table, settings.physical_columns)
    _check_weights(path, table, settings)
    return table


def _category_of(path: Path, available: list[str]) -> int | None:
    """The category from the file name ``cat<k>.parquet``; None when only the column says it."""
    match = re.fullmatch(r"cat(\d+)", path.stem)
    if match:
        return int(match.group(1))
    if "category" in available:
        return None
    raise InputError(f"{path}: expected a categorise output named cat<k>.parquet or a 'category' column")


def _require(path: Path, available: list[str], wanted: list[str]) -> None:
    missing = [name for name in wanted if name not in available]
    if missing:
        raise InputError(f"{path}: missing columns {missing} needed by the model; the file has {available}")


def _check_finite(path: Path, table: pd.DataFrame, columns: list[str]) -> None:
    """NaN or +-inf in a model variable (condition, target source, weight): name the raw file and entry."""
    for name in columns:
        values = table[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        bad = ~np.isfinite(values.to_numpy(np.float64))
        if bad.any():
            first = np.flatnonzero(bad)[0]
            raise InputError(f"{path}: column {name!r} has {int(bad.sum())} non-finite values (NaN or +-inf), first "
                             f"{values.iloc[first]} in {row_origin(table, first)}; "
                             f"expected finite inputs for every model variable: drop such rows with the dataset's "
                             f"`selection`, which names the table's `fields` before `rename` (e.g. isfinite(<field>)), or fix them "
                             f"upstream")


def _check_weights(path: Path, table: pd.DataFrame, settings: ModelPreprocessSettings) -> None:
    """No negative weight: the flow's weighted likelihood and the BDT figure of merit need weights >= 0.

    NLO generators write negative event weights; they had passed preprocessing and stopped the training
    job on "column weight must be ... non-negative", naming a split instead of the raw file."""
    if not settings.weight:
        return
    values = table[settings.weight].to_numpy(np.float64)
    negative = values < 0
    if negative.any():
        first = np.flatnonzero(negative)[0]
        raise InputError(f"{path}: models.{settings.model}.weight {settings.weight!r} has {int(negative.sum())} "
                         f"negative values of {len(values)}, first {values[first]:g} in {row_origin(table, first)}; "
                         f"the flow's weighted likelihood and the figure of merit's BDT need weights >= 0 (for "
                         f"NLO samples remove the negative weights upstream, e.g. by resampling, or drop `weight`)")


def _param(params: Any, key: str) -> Any:
    if isinstance(params, Mapping):
        return params[key]
    return getattr(params, key)
