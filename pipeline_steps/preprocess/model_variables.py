"""The variables of a flow or covariance-GAN model, checked against each other and against its table.

Both preprocessing (at run time) and planning (``workflow_config.validate_config``, before any job)
call these, so a typo in ``conditions``, ``targets``, ``weight``, ``derived.<v>.of`` or a
``preprocessing`` key stops ``snakemake`` at once, naming the key, instead of stopping the
preprocess job after every raw file was ingested, naming a Parquet file. Light on purpose: no
pandas, no frameworks (planning imports it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.preprocess.derived import DerivedVariable, parse_derived

logger = logging.getLogger(__name__)


NAMED_KEYS = ("per_variable", "dequantize", "log_offset", "clip")
"""``preprocessing`` keys whose entries name variables (a list, or a mapping keyed by variable)."""

LOG_KINDS = ("log_standard", "log10_quantile_normal")
"""The transform kinds that take a logarithm, so the only ones a ``log_offset`` applies to (``transforms.py``
implements them; the kind names themselves are checked by the config schema)."""

N_COVARIANCE_ELEMENTS = 15
"""Targets a ``target_representation`` other than ``elements`` rewrites: the 5x5 covariance's upper triangle
(``covariance_representation.N_ELEMENTS``, which imports numpy; a test keeps the two equal)."""


@dataclass(frozen=True)
class ModelVariables:
    """A model's conditions and targets, its derived targets, its clip bounds and log offsets, and each
    variable's transform kind, checked."""

    conditions: list[str]
    targets: list[str]
    derived: dict[str, DerivedVariable]
    clips: dict[str, tuple[float | None, float | None]]
    condition_kinds: dict[str, str]
    target_kinds: dict[str, str]
    log_offsets: dict[str, float]

    @property
    def physical_targets(self) -> list[str]:
        """The targets as the tables hold them: a derived target by its source (``ptRatio`` -> ``pt``)."""
        return [self.derived[t].source if t in self.derived else t for t in self.targets]


def read_model_variables(model: str, slice_: Mapping[str, Any]) -> ModelVariables:
    """The variables of ``models.<model>`` (``slice_``: its config), every ConfigError naming the key there."""
    prep = slice_.get("preprocessing") or {}
    conditions, targets = list(slice_["conditions"]), list(slice_["targets"])
    try:
        derived = parse_derived(slice_.get("derived"))
    except ConfigError as error:  # parse_derived names "derived.<v>..."
        raise ConfigError(f"models.{model}.{error}") from None
    clips = {name: clip_bounds(model, name, bounds) for name, bounds in (prep.get("clip") or {}).items()}
    check_variable_names(model, conditions, targets, {key: list(prep.get(key) or []) for key in NAMED_KEYS}, derived)
    default = prep.get("default", "passthrough" if slice_.get("categorised") else "standard")
    per_variable = prep.get("per_variable") or {}
    condition_kinds = {name: per_variable.get(name, default) for name in conditions}
    target_kinds = {name: per_variable.get(name, prep.get("targets", default)) for name in targets}
    offsets = prep.get("log_offset") or {}
    check_log_offsets(model, {**condition_kinds, **target_kinds}, offsets, clips)
    check_target_representation(model, prep.get("target_representation", "elements"), targets)
    variables = ModelVariables(conditions, targets, derived, clips, condition_kinds, target_kinds,
                               {name: float(offset) for name, offset in offsets.items()})
    check_bounded_sums(model, slice_, variables.physical_targets)
    return variables


def check_bounded_sums(model: str, slice_: Mapping[str, Any], physical_targets: list[str]) -> None:
    """Each ``preprocessing.bounded_sums`` group names two or more continuous physical targets (a derived
    one by its source), and the model applies the training support, which holds them. The signs of the
    training values are the preprocess job's to check (``physical_support.check_bounded_sum``)."""
    prep = slice_.get("preprocessing") or {}
    groups = prep.get("bounded_sums") or []
    where = f"models.{model}.preprocessing.bounded_sums"
    if groups and (slice_.get("categorised") or prep.get("support") is False):
        raise ConfigError(f"{where}: applied with the training support, which this model has not "
                          f"({'categorised' if slice_.get('categorised') else 'support: false'})")
    dequantised = set(prep.get("dequantize") or [])
    for group in groups:
        unknown = [part for part in group if part not in physical_targets]
        if len(group) < 2 or unknown:
            raise ConfigError(f"{where} {list(group)}: expected two or more of the model's physical targets "
                              f"{physical_targets}" + (f"; {unknown} are none (a derived target counts by its "
                                                       f"physical source)" if unknown else ""))
        discrete = [part for part in group if part in dequantised]
        if discrete:
            raise ConfigError(f"{where} {list(group)}: {discrete} are dequantised (discrete); a bounded sum holds "
                              f"continuous parts")


def check_log_offsets(model: str, kinds: Mapping[str, str], offsets: Mapping[str, Any],
                      clips: Mapping[str, tuple[float | None, float | None]]) -> None:
    """A ``log_offset`` only on a log transform and finite, and a log's clip low bound inside its domain.

    These had been found by the preprocess job, after every raw file was ingested; the kinds and bounds
    are all in the config, so planning says it (``transforms.py`` checks again where it applies them)."""
    where = f"models.{model}.preprocessing"
    for name, offset in offsets.items():
        if kinds[name] not in LOG_KINDS:
            raise ConfigError(f"{where}.log_offset.{name}: only the log transforms {list(LOG_KINDS)} take an offset; "
                              f"{name!r} has {kinds[name]!r}")
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
            raise ConfigError(f"{where}.log_offset.{name}: expected a finite number, got {offset!r}")
    for name, (low, _) in clips.items():
        offset = float(offsets.get(name, 0.0))
        if kinds[name] in LOG_KINDS and low is not None and not low + offset > 0:
            raise ConfigError(f"{where}.clip.{name}: {kinds[name]} needs clip low + log_offset > 0 (the log of the "
                              f"clipped values must exist), got {low:g} + {offset:g}")


def check_target_representation(model: str, representation: str, targets: list[str]) -> None:
    """A covariance representation other than ``elements`` rewrites exactly the 15 covariance elements."""
    if representation != "elements" and len(targets) != N_COVARIANCE_ELEMENTS:
        raise ConfigError(f"models.{model}.preprocessing.target_representation={representation!r} needs the "
                          f"{N_COVARIANCE_ELEMENTS} covariance elements as targets (cov_00 .. cov_44), got "
                          f"{len(targets)} targets")


def check_variable_names(model: str, conditions: list[str], targets: list[str], named: Mapping[str, Any],
                         derived: Mapping[str, DerivedVariable]) -> None:
    """Every variable named under a ``preprocessing`` key (``named``: key -> names) is a condition or target,
    and no variable is both."""
    known = set(conditions) | set(targets)
    for key, names in named.items():
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"models.{model}.preprocessing.{key}: {unknown} are neither conditions nor targets (a "
                              f"--configfile override replaces a list but merges a mapping into the one before it, so "
                              f"a variable left out of conditions or targets must also leave this key there)")
    overlap = set(conditions) & set(targets)
    if overlap:
        raise ConfigError(f"models.{model}: {sorted(overlap)} are both conditions and targets")
    for name in derived:
        if name not in targets:
            logger.warning("models.%s.derived.%s is not a target; it is ignored", model, name)


def input_columns(conditions: list[str], targets: list[str], derived: Mapping[str, DerivedVariable],
                  weight: str | None) -> dict[str, str]:
    """{column read from the model's table: the config key that asks for it}, in reading order:
    conditions, targets that are not derived, the columns of every derived variable, the weight."""
    asked: dict[str, str] = {}
    for name in conditions:
        asked.setdefault(name, "conditions")
    for name in targets:
        if name not in derived:
            asked.setdefault(name, "targets")
    for name, spec in derived.items():
        for column in (spec.source, spec.reference):
            asked.setdefault(column, f"derived.{name}.of")
    if weight:
        asked.setdefault(weight, "weight")
    return asked


def missing_column_problems(model: str, asked: Mapping[str, str], table: str, columns: list[str]) -> list[str]:
    """One line per config key that names columns the model's table does not have."""
    by_key: dict[str, list[str]] = {}
    for column, key in asked.items():
        if column not in columns:
            by_key.setdefault(key, []).append(column)
    return [f"models.{model}.{key}: {missing} are not columns of {table}; it has {columns}"
            for key, missing in by_key.items()]


def clip_bounds(model: str, name: str, bounds: Any) -> tuple[float | None, float | None]:
    """``preprocessing.clip.<name>: [low, high]`` (either may be null) as finite floats, low below high.

    Checked here, with the key, so that reversed bounds stop planning; the transforms check them again
    where they are applied (``transforms.py``), with what only the data and the transform kind can say."""
    where = f"models.{model}.preprocessing.clip.{name}"
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2 or all(b is None for b in bounds):
        raise ConfigError(f"{where}: expected [low, high] with at least one number (null for no bound), got {bounds!r}")
    if any(b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b))
           for b in bounds):
        raise ConfigError(f"{where}: expected finite numbers or null, got {list(bounds)!r}")
    low, high = (None if b is None else float(b) for b in bounds)
    if low is not None and high is not None and not low < high:
        raise ConfigError(f"{where}: expected low < high, got [{low}, {high}]")
    return low, high
