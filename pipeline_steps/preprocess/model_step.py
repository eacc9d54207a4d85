"""The ``preprocess_model`` rule: ingested (or SHiP-categorised) tables -> splits + fitted transforms.

For models of kind ``covariance_gan`` and ``flow``:

1. read the model's columns from every input table (identity, conditions, the physical columns its
   targets need, the weight), failing with the file and column on a missing column or a NaN;
2. sort rows by identity (so the output does not depend on file order) and assign each row to
   train/validation/test by a hash of its identity (:mod:`split`);
3. compute the model-space targets (derived variables, covariance representation) and fit the
   transforms on the training split only (:mod:`transforms`);
4. write per split: identity, physical columns, ``weight``, ``cond__*`` and ``targ__*`` (float32),
   then ``transforms.json`` + ``.npz`` and the diagnostic plots.

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
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.preprocess import covariance_representation as cov_repr
from pipeline_steps.preprocess.derived import DerivedVariable, parse_derived
from pipeline_steps.preprocess.plots import plot_correlations, plot_distributions
from pipeline_steps.preprocess.split import SPLIT_NAMES, assign_split
from pipeline_steps.preprocess.transforms import (
    TRANSFORM_KINDS,
    ModelTransforms,
    PhysicalSupport,
    fit_variable_transforms,
    model_space_targets,
    save_transforms,
)

logger = logging.getLogger(__name__)

BASE_IDENTITY = ("source_file", "entry", "object_index")
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
    weight: str | None = None
    categorised: bool = False
    seed: int = 0
    extra_columns: list[str] = field(default_factory=list)
    support: bool = True

    @classmethod
    def from_params(cls, model: str, slice_: Mapping[str, Any], seed: int) -> "ModelPreprocessSettings":
        prep = dict(slice_.get("preprocessing") or {})
        categorised = bool(slice_.get("categorised", False))
        default = prep.get("default", "passthrough" if categorised else "standard")
        per_variable = dict(prep.get("per_variable") or {})
        conditions, targets = list(slice_["conditions"]), list(slice_["targets"])
        derived = parse_derived(slice_.get("derived"))
        dequantize = list(prep.get("dequantize") or [])
        _check_names(model, conditions, targets, per_variable, dequantize, derived)
        condition_kinds = {name: per_variable.get(name, default) for name in conditions}
        target_kinds = {name: per_variable.get(name, prep.get("targets", default)) for name in targets}
        for name, kind in {**condition_kinds, **target_kinds}.items():
            if kind not in TRANSFORM_KINDS:
                raise ConfigError(f"models.{model}.preprocessing: {name!r} has transform {kind!r}; "
                                  f"expected one of {list(TRANSFORM_KINDS)}")
        representation = prep.get("target_representation", "elements")
        if representation != "elements" and len(targets) != cov_repr.N_ELEMENTS:
            raise ConfigError(f"models.{model}.preprocessing.target_representation={representation!r} needs the "
                              f"15 covariance elements as targets (cov_00 .. cov_44), got {len(targets)} targets")
        sources = [c for spec in derived.values() for c in (spec.source, spec.reference)]
        physical = conditions + [t for t in targets if t not in derived]
        return cls(
            model=model, conditions=conditions, targets=targets, derived=derived,
            fractions={name: float(slice_["split"][name]) for name in SPLIT_NAMES},
            condition_kinds=condition_kinds, target_kinds=target_kinds, dequantize=dequantize,
            decorrelate_conditions=bool(prep.get("decorrelate_conditions", False)),
            target_representation=representation,
            identity=list(BASE_IDENTITY) + [c for c in slice_.get("identity", []) if c not in BASE_IDENTITY],
            weight=slice_.get("weight"), categorised=categorised, seed=int(seed),
            extra_columns=[c for c in dict.fromkeys(sources) if c not in physical],
            support=bool(prep.get("support", True)),
        )

    @property
    def physical_columns(self) -> list[str]:
        """Columns read from the inputs besides identity: conditions, target sources, weight."""
        names = self.conditions + [t for t in self.targets if t not in self.derived] + self.extra_columns
        if self.weight:
            names.append(self.weight)
        return list(dict.fromkeys(names))


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
    rows = pd.concat(frames, ignore_index=True)
    if rows.empty:
        raise InputError(f"model {settings.model}: the input tables {list(map(str, tables))} have no rows")
    order = settings.identity + (["category"] if settings.categorised else [])
    return rows.sort_values(order, kind="stable").reset_index(drop=True)


def preprocess(rows: pd.DataFrame, settings: ModelPreprocessSettings
               ) -> tuple[dict[str, pd.DataFrame], ModelTransforms]:
    """Pure middle: split, fit on train, transform every split. Returns ({split: table}, transforms)."""
    split_of_row = assign_split(rows[settings.identity], settings.fractions, settings.seed)
    model_targets = model_space_targets(rows, settings.targets, settings.derived, settings.target_representation)
    train = split_of_row == "train"
    if not train.any():
        raise InputError(f"model {settings.model}: no rows in the training split ({len(rows)} rows in all)")
    dequantize = set(settings.dequantize)
    model_transforms = ModelTransforms(
        conditions=fit_variable_transforms(
            rows.loc[train], settings.condition_kinds, [n for n in settings.conditions if n in dequantize],
            settings.decorrelate_conditions, seed=settings.seed),
        targets=fit_variable_transforms(
            model_targets.loc[train], settings.target_kinds, [n for n in settings.targets if n in dequantize],
            False, seed=settings.seed + 1),
        derived=settings.derived, target_representation=settings.target_representation, model=settings.model,
        support=_training_support(rows.loc[train], settings),
    )
    splits = {}
    for index, name in enumerate(SPLIT_NAMES):
        mask = split_of_row == name
        splits[name] = _split_table(rows.loc[mask], model_targets.loc[mask], model_transforms, settings, index)
        logger.info("split %s: %d rows", name, int(mask.sum()))
    return splits, model_transforms


def _training_support(train_rows: pd.DataFrame, settings: ModelPreprocessSettings) -> PhysicalSupport:
    """The physical targets' training range (and discrete values) that generated rows are held to.

    Off with ``preprocessing.support: false``, and for SHiP categories, whose per-category
    denormalisation (``categories.json``) already bounds each variable.
    """
    if not settings.support or settings.categorised:
        return PhysicalSupport()
    physical = [settings.derived[t].source if t in settings.derived else t for t in settings.targets]
    discrete = [t for t in settings.targets if t in set(settings.dequantize) and t not in settings.derived]
    return PhysicalSupport.fit(train_rows[physical], discrete)


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
    transformed = {f"cond__{n}": conditions[:, i] for i, n in enumerate(settings.conditions)}
    transformed.update({f"targ__{n}": targets[:, i] for i, n in enumerate(settings.targets)})
    return pd.concat([table, pd.DataFrame(transformed)], axis=1)


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
    _check_no_nan(path, table, settings.physical_columns)
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
    _check_no_nan(path, table, settings.physical_columns)
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


def _check_no_nan(path: Path, table: pd.DataFrame, columns: list[str]) -> None:
    for name in columns:
        values = table[name]
        if pd.api.types.is_numeric_dtype(values) and values.isna().any():
            raise InputError(f"{path}: column {name!r} has {int(values.isna().sum())} NaN values; "
                             f"expected finite inputs for every model variable")


def _check_names(model: str, conditions: list[str], targets: list[str], per_variable: Mapping[str, str],
                 dequantize: list[str], derived: Mapping[str, DerivedVariable]) -> None:
    known = set(conditions) | set(targets)
    for key, names in (("per_variable", per_variable), ("dequantize", dequantize)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"models.{model}.preprocessing.{key}: {unknown} are neither conditions nor targets")
    overlap = set(conditions) & set(targets)
    if overlap:
        raise ConfigError(f"models.{model}: {sorted(overlap)} are both conditions and targets")
    for name in derived:
        if name not in targets:
            logger.warning("models.%s.derived.%s is not a target; it is ignored", model, name)


def _param(params: Any, key: str) -> Any:
    if isinstance(params, Mapping):
        return params[key]
    return getattr(params, key)
