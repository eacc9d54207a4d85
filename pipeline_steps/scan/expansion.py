"""Hyperparameter scans: one config model with ``scan:`` -> one ordinary model per scan point.

The SHiP and CalRatio studies tuned by copying template folders and submitting a shell script per
grid point. Here ``models.<name>.scan`` holds a ``grid`` ({dotted.key: [values]}, the Cartesian
product) and/or a list of ``points`` ([{dotted.key: value}]); dotted keys address the model entry,
e.g. ``hyperparameters.hidden_dim`` or ``training.learning_rate``. ``expand_scans`` runs once on the
config dict at start-up (common.smk): the scanned model is replaced by instances named from their
point only, e.g. ``jets__hidden_dim-64__n_bins-8``, so every rule sees ordinary models, a cluster runs
the points as independent jobs, and adding a point never renames (or reruns) the others.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline_steps.common.errors import ConfigError

__all__ = ["ScanGroup", "expand_scans", "instance_name", "scan_points", "METRICS", "DEFAULT_METRIC"]

METRICS = ("auc", "chi2_ndf", "overlap", "validation_loss", "ks")
DEFAULT_METRIC = "auc"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")  # no regex metacharacter but "." (matches itself)


@dataclass(frozen=True)
class ScanGroup:
    """A scanned model: its kind, ranking metric and {instance name: point} in scan order."""

    model: str
    kind: str
    metric: str
    points: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def instances(self) -> list[str]:
        return list(self.points)

    def as_params(self) -> dict[str, Any]:
        """The slice the rank_scan rule carries (plain data, stable order)."""
        return {"model": self.model, "kind": self.kind, "metric": self.metric, "points": self.points}


def scan_points(scan: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """The grid's Cartesian product (keys in sorted order), then the explicit points."""
    grid = scan.get("grid") or {}
    points: list[dict[str, Any]] = []
    if grid:
        keys = sorted(grid)
        for key in keys:
            if not isinstance(grid[key], list) or not grid[key]:
                raise ConfigError(f"{where}.grid.{key}: expected a non-empty list of values, got {grid[key]!r}")
        points += [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    for index, point in enumerate(scan.get("points") or []):
        if not isinstance(point, Mapping) or not point:
            raise ConfigError(f"{where}.points[{index}]: expected a non-empty mapping of dotted keys, got {point!r}")
        points.append(dict(point))
    if not points:
        raise ConfigError(f"{where}: expected a non-empty `grid` or `points`, found neither")
    return points


def instance_name(model: str, point: Mapping[str, Any]) -> str:
    """``<model>__<key>-<value>__...``: keys by their last dotted part (full path if ambiguous), sorted."""
    last_parts = [key.rsplit(".", 1)[-1] for key in point]
    labels = {key: (key.rsplit(".", 1)[-1] if last_parts.count(key.rsplit(".", 1)[-1]) == 1 else key.replace(".", "-"))
              for key in point}
    parts = [f"{labels[key]}-{_format_value(point[key])}" for key in sorted(point, key=lambda k: labels[k])]
    return "__".join([model, *parts])


def expand_scans(config: dict[str, Any]) -> dict[str, ScanGroup]:
    """Replace every model with ``scan`` by its instances, in place; return the scans by model name.

    Idempotent: a config already expanded (no ``scan`` left) is returned unchanged with no groups.
    """
    models = config.get("models", {})
    groups: dict[str, ScanGroup] = {}
    expanded: dict[str, Any] = {}
    for name, model in models.items():
        if "scan" not in model:
            expanded[name] = model
            continue
        where = f"models.{name}.scan"
        scan = model["scan"]
        metric = scan.get("metric", DEFAULT_METRIC)
        if metric not in METRICS:
            raise ConfigError(f"{where}.metric: expected one of {list(METRICS)}, got {metric!r}")
        base = {key: value for key, value in model.items() if key != "scan"}
        points: dict[str, dict[str, Any]] = {}
        for point in scan_points(scan, where):
            instance = instance_name(name, point)
            if instance in points:
                continue  # the same point twice (grid and points): one instance
            if instance in models:
                raise ConfigError(f"{where}: scan point {point} is named {instance!r}, which is already a model")
            expanded[instance] = apply_point(base, point, where)
            points[instance] = point
        groups[name] = ScanGroup(model=name, kind=model["kind"], metric=metric, points=points)
    models.clear()
    models.update(expanded)
    return groups


def apply_point(model: Mapping[str, Any], point: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A deep copy of ``model`` with each dotted key set; the parent keys must exist as mappings."""
    instance = copy.deepcopy(dict(model))
    for key, value in point.items():
        parts = key.split(".")
        node = instance
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{where}: key {key!r}: models entry has no mapping at "
                                  f"{'.'.join(parts[:depth + 1])!r} (found {node.get(part)!r})")
            node = node[part]
        if parts[0] in ("kind", "dataset", "table", "control_dataset", "scan"):
            raise ConfigError(f"{where}: key {key!r} cannot be scanned (it changes what the model is, not how)")
        node[parts[-1]] = copy.deepcopy(value)
    return instance


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}".replace("e+", "e")  # 1e+06 -> 1e06
    elif isinstance(value, (list, tuple)):
        text = "_".join(_format_value(v) for v in value)
    elif isinstance(value, Mapping):
        text = "_".join(f"{k}-{_format_value(v)}" for k, v in sorted(value.items()))
    else:
        text = str(value)
    return _SAFE.sub("_", text)
