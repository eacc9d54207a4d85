"""One model's transforms: conditions and targets, derived targets, the covariance representation,
the physical support; stored as ``transforms.json`` + ``transforms.npz`` (never pickle).

``ModelTransforms`` bundles the conditions' and targets' fitted transforms
(``transforms.VariableTransforms``) with the derived-target definitions and the covariance target
representation, and ``targets_to_physical`` undoes both. Preprocessing writes it with
``save_transforms``; generation, validation and export load it with ``load_transforms``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import InputError
from pipeline_steps.preprocess import covariance_representation as cov_repr
from pipeline_steps.preprocess.derived import DerivedVariable, compute_derived, invert_derived
from pipeline_steps.preprocess.physical_support import PhysicalSupport
from pipeline_steps.preprocess.transforms import VariableTransforms

__all__ = ["FORMAT_VERSION", "ModelTransforms", "model_space_targets", "save_transforms", "load_transforms"]

FORMAT_VERSION = 1


@dataclass
class ModelTransforms:
    """Everything needed to go from physical rows to model inputs and back, for one model.

    ``targets`` act on the *model-space* targets: derived variables (``ptRatio``) computed and,
    for covariance targets, the 15 elements replaced slot by slot by ``target_representation``.
    """

    conditions: VariableTransforms
    targets: VariableTransforms
    derived: dict[str, DerivedVariable] = field(default_factory=dict)
    target_representation: str = "elements"
    model: str = ""
    support: PhysicalSupport = field(default_factory=PhysicalSupport)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def condition_names(self) -> list[str]:
        return self.conditions.names

    @property
    def target_names(self) -> list[str]:
        return self.targets.names

    def physical_to_targets(self, df: pd.DataFrame) -> pd.DataFrame:
        """Physical rows -> model-space targets (derived computed, covariance representation applied)."""
        return model_space_targets(df, self.target_names, self.derived, self.target_representation)

    def targets_to_physical(self, targets_df: pd.DataFrame, conditions_df: pd.DataFrame) -> pd.DataFrame:
        """Model-space targets (``targets.inverse`` output) -> physical columns.

        Undoes the covariance representation (back to the 15 elements) and each derived variable
        (ratio: a = r * b; difference: a = d + b; delta_phi: a = wrap(d + b) into (-pi, pi]),
        reading ``b`` from ``conditions_df`` (physical units). A derived column is replaced by the
        variable it was derived from (``ptRatio`` -> ``pt``); other columns keep their names.
        """
        targets = targets_df.reset_index(drop=True)
        if self.target_representation != "elements":
            values = cov_repr.from_representation(targets[self.target_names].to_numpy(np.float64),
                                                  self.target_representation)
            targets = pd.DataFrame(values, columns=self.target_names)
        conditions = conditions_df.reset_index(drop=True)
        columns = {}
        for name in self.target_names:
            if name in self.derived:
                spec = self.derived[name]
                columns[spec.source] = invert_derived(spec, targets[name].to_numpy(),
                                                      _column(conditions, spec.reference, "targets_to_physical"))
            else:
                columns[name] = targets[name].to_numpy()
        return pd.DataFrame(columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "conditions": self.conditions.to_dict(),
            "targets": self.targets.to_dict(),
            "derived": {name: spec.to_dict() for name, spec in self.derived.items()},
            "target_representation": self.target_representation,
            "support": self.support.to_dict(),
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelTransforms":
        return cls(
            conditions=VariableTransforms.from_dict(data["conditions"]),
            targets=VariableTransforms.from_dict(data["targets"]),
            derived={name: DerivedVariable.from_dict(name, spec) for name, spec in data.get("derived", {}).items()},
            target_representation=data.get("target_representation", "elements"),
            model=data.get("model", ""),
            support=PhysicalSupport.from_dict(data.get("support")),
            report=dict(data.get("report") or {}),
        )


def model_space_targets(df: pd.DataFrame, target_names: list[str], derived: Mapping[str, DerivedVariable],
                        representation: str = "elements") -> pd.DataFrame:
    """Physical rows -> the targets a model learns (before the fitted transforms), float64.

    Derived targets are computed from their physical columns; with a covariance representation
    other than ``elements`` the 15 ``cov_ij`` columns (row-major upper triangle, config order) are
    replaced slot by slot by the representation's values.
    """
    columns = {}
    for name in target_names:
        columns[name] = (compute_derived(derived[name], df) if name in derived
                         else _column(df, name, "physical_to_targets").astype(np.float64))
    targets = pd.DataFrame(columns, index=df.index)
    if representation != "elements":
        values = cov_repr.to_representation(targets[target_names].to_numpy(np.float64), representation)
        targets = pd.DataFrame(values, columns=target_names, index=df.index)
    return targets


def _column(df: pd.DataFrame, name: str, what: str) -> np.ndarray:
    if name not in df.columns:
        raise InputError(f"{what}: column {name!r} missing; the table has {list(df.columns)}")
    return df[name].to_numpy()


# --------------------------------------------------------------------------------------------- storage
def save_transforms(model_transforms: ModelTransforms, path_json: str | Path) -> None:
    """Write ``transforms.json`` (small values) and ``transforms.npz`` beside it (arrays), atomically.

    Arrays are replaced in the JSON by ``{"npz": "<key>"}`` references; nothing is pickled, and the
    npz is read back with ``allow_pickle=False``. A non-finite number anywhere (a mean of -inf) is
    refused before anything is written: JSON has no inf, and Python would write ``-Infinity``.
    """
    path_json = Path(path_json)
    path_npz = path_json.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {}
    document = _extract_arrays(model_transforms.to_dict(), "", arrays)
    document["arrays_file"] = path_npz.name
    _check_finite_document(document, arrays, path_json)
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    with atomic_path(path_npz) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    write_text_atomic(path_json, text)


def _check_finite_document(document: Any, arrays: Mapping[str, np.ndarray], path_json: Path) -> None:
    """InputError naming the first key (``targets/variables/3/params/mean``) holding NaN or +-inf."""
    bad = _first_non_finite(document, "")
    bad = bad or next((k for k, a in arrays.items()
                       if np.issubdtype(a.dtype, np.number) and not np.all(np.isfinite(a))), None)
    if bad is not None:
        raise InputError(f"{path_json}: refusing to write non-finite transform parameter {bad!r} "
                         f"(NaN or +-inf); a model input is not finite")


def _first_non_finite(value: Any, key: str) -> str | None:
    if isinstance(value, float) and not np.isfinite(value):
        return key
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _first_non_finite(v, f"{key}/{k}" if key else str(k))
        if found is not None:
            return found
    return None


def load_transforms(path_json: str | Path) -> ModelTransforms:
    """Load what ``save_transforms`` wrote (the loader generation and export use)."""
    path_json = Path(path_json)
    try:
        document = json.loads(path_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path_json}: cannot read the transforms JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        found = document.get("format_version") if isinstance(document, dict) else type(document).__name__
        raise InputError(f"{path_json}: not a transforms file of format_version {FORMAT_VERSION} (found {found!r}); "
                         f"rerun its preprocess job")
    path_npz = path_json.with_name(document.get("arrays_file", path_json.with_suffix(".npz").name))
    try:
        with np.load(path_npz, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except OSError as error:
        raise InputError(f"{path_npz}: cannot read the transforms arrays beside {path_json} ({error})") from error
    try:
        return ModelTransforms.from_dict(_insert_arrays(document, arrays, path_npz))
    except (KeyError, TypeError, AttributeError, ValueError) as error:  # an edited or truncated document
        raise InputError(f"{path_json}: malformed transforms ({type(error).__name__}: {error}); rerun its "
                         f"preprocess job") from error


def _extract_arrays(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"npz": key}
    if isinstance(value, dict):
        return {k: _extract_arrays(v, f"{key}/{k}" if key else str(k), arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_extract_arrays(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _insert_arrays(value: Any, arrays: Mapping[str, np.ndarray], path_npz: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {"npz"}:
            if value["npz"] not in arrays:
                raise InputError(f"{path_npz}: array {value['npz']!r} missing")
            return arrays[value["npz"]]
        return {k: _insert_arrays(v, arrays, path_npz) for k, v in value.items()}
    if isinstance(value, list):
        return [_insert_arrays(v, arrays, path_npz) for v in value]
    return value
