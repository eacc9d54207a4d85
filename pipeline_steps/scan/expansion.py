"""Hyperparameter scans: one config model with ``scan:`` -> one ordinary model per scan point.

The SHiP and CalRatio studies tuned by copying template folders and submitting a shell script per
grid point. Here ``models.<name>.scan`` holds a ``grid`` ({dotted.key: [values]}, the Cartesian
product) and/or a list of ``points`` ([{dotted.key: value}]); dotted keys address the model entry,
e.g. ``hyperparameters.hidden_dim`` or ``training.learning_rate``. ``expand_scans`` runs once on the
config dict at start-up (common.smk): the scanned model is replaced by instances named from their
point only, e.g. ``jets__hidden_dim-64__n_bins-8``, so every rule sees ordinary models, a cluster runs
the points as independent jobs, and adding a point never renames (or reruns) the others.

A scan is refused at planning where its ranking would compare nothing or unlike things: a key that
decides what the points are compared on (their features, weights or test rows), a key the model's
``training.schedule`` overrides (two rates 100x apart had trained byte-identical GANs, ranked by
name), a metric its kind does not have (CalRatio has no real-vs-generated AUC: the default ``auc``
failed after every training), ``validation_loss`` across points whose loss measures different things,
and two different values that would share one instance name (``64`` and ``"64"``, or values equal to
six digits).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.model_kinds import MODEL_KINDS, ModelKind, kind_of

__all__ = ["ScanGroup", "expand_scans", "instance_name", "scan_points", "validate_instances", "METRICS"]

#: every kind's scan metrics (ModelKind.scan_metrics), in registry order
METRICS = tuple(dict.fromkeys(metric for kind in MODEL_KINDS.values() for metric in kind.scan_metrics))
#: Top-level model keys a point may not set: what the model is, and what its points are compared on.
UNSCANNABLE = {key: "it changes what the model is, not how" for key in ("kind", "dataset", "table", "control_dataset",
                                                                          "scan")} | {
    key: "it changes what the points are compared on (their features, weights or test rows)"
    for key in ("conditions", "targets", "derived", "weight", "categorised", "split")}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")  # no regex metacharacter but "." (matches itself)


@dataclass(frozen=True)
class ScanGroup:
    """A scanned model: its kind, ranking metric and {instance name: point} in scan order."""

    model: str
    kind: str
    metric: str
    points: dict[str, dict[str, Any]] = field(default_factory=dict)
    preprocessing: dict[str, dict[str, Any]] = field(default_factory=dict)
    """{instance: the point's ``preprocessing`` keys whose values differ from the scanned model's}: what
    names the point's preprocessing (``workflow_plan._preprocessing_names``)."""

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
        kind = kind_of(model)
        metric = _metric(scan, kind, where)
        base = {key: value for key, value in model.items() if key != "scan"}
        points: dict[str, dict[str, Any]] = {}
        preprocessing: dict[str, dict[str, Any]] = {}
        for point in scan_points(scan, where):
            instance = instance_name(name, point)
            if _seen(points, instance, point, where):
                continue  # the same point twice (grid and points, or 1000000 and 1.0e6): one instance
            if instance in models:
                raise ConfigError(f"{where}: scan point {point} is named {instance!r}, which is already a model")
            if instance in expanded:  # another scan's point: `m` with {x: 1, y: 2} and `m__x-1` with {y: 2}
                raise ConfigError(f"{where}: scan point {point} is named {instance!r}, which a point of another "
                                  f"scan is named too; rename one of the scanned models")
            expanded[instance] = apply_point(base, point, where)
            _check_point_matters(expanded[instance], point, kind, metric, where)
            points[instance] = point
            preprocessing[instance] = {key: value for key, value in point.items()
                                       if _under(key, "preprocessing") and not _set_in(base, key, value)}
        groups[name] = ScanGroup(model=name, kind=model["kind"], metric=metric, points=points,
                                 preprocessing=preprocessing)
    models.clear()
    models.update(expanded)
    return groups


def validate_instances(config: Mapping[str, Any], groups: Mapping[str, ScanGroup], schema_path: str) -> None:
    """``validate_config`` of the expanded config, each problem said once per scanned model with its points.

    A typo in a grid key (``hyperparameters.hiden_dim``) had been reported once per instance, naming
    instances the user never wrote: 125 lines for a 5x5x5 grid.
    """
    from pipeline_steps.workflow_config import validate_config

    try:
        validate_config(config, schema_path)
    except ConfigError as error:
        raise ConfigError(_per_scan(str(error), groups)) from None


def _per_scan(message: str, groups: Mapping[str, ScanGroup]) -> str:
    header, *lines = message.splitlines()
    owners = sorted(((instance, group) for group in groups.values() for instance in group.points),
                    key=lambda item: -len(item[0]))  # longest first: one name may prefix another
    problems: dict[str, list[dict[str, Any]]] = {}  # problem, said of the scanned model -> its points
    for line in (line.strip() for line in lines):
        owner = next(((i, g) for i, g in owners if line.startswith((f"models.{i}.", f"models.{i}:"))), None)
        if owner is None:
            problems.setdefault(line, [])
            continue
        instance, group = owner
        text = f"models.{group.model}" + line[len(f"models.{instance}"):]
        problems.setdefault(f"{text} (in models.{group.model}.scan points", []).append(group.points[instance])
    said = [text if not points else f"{text} {', '.join(map(str, points[:3]))}"
            f"{f' and {len(points) - 3} more' if len(points) > 3 else ''})" for text, points in problems.items()]
    return "\n  ".join([header, *said])


def apply_point(model: Mapping[str, Any], point: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A deep copy of ``model`` with each dotted key set; the parent keys must exist as mappings."""
    instance = copy.deepcopy(dict(model))
    for key, value in point.items():
        parts = key.split(".")
        if parts[0] in UNSCANNABLE:
            raise ConfigError(f"{where}: key {key!r} cannot be scanned ({UNSCANNABLE[parts[0]]})")
        node = instance
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{where}: key {key!r}: models entry has no mapping at "
                                  f"{'.'.join(parts[:depth + 1])!r} (found {node.get(part)!r})")
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
    return instance


def _metric(scan: Mapping[str, Any], kind: ModelKind, where: str) -> str:
    """``scan.metric``, or the kind's default; one its kind's validation writes."""
    metric = scan.get("metric", kind.scan_metrics[0])
    if metric not in kind.scan_metrics:
        known = "" if metric in METRICS else f" (the metrics are {list(METRICS)})"
        raise ConfigError(f"{where}.metric: a {kind.name} model is ranked by one of {list(kind.scan_metrics)}, "
                          f"got {metric!r}{known}")
    return metric


def _seen(points: Mapping[str, Mapping[str, Any]], instance: str, point: Mapping[str, Any], where: str) -> bool:
    """Whether ``point`` is already an instance; two different points under one name are an error.

    The same point: equal values, numbers equal whatever their type (1000000 and 1.0e6), but a flag is not
    a number (``True`` and ``1`` are two points, named ``-true`` and ``-1``; Python's ``True == 1`` had
    dropped the second silently)."""
    if instance in points and not _same_value(points[instance], point):
        raise ConfigError(f"{where}: points {points[instance]} and {point} would both be named {instance!r}; "
                          f"write the values apart (names keep 6 significant digits and turn other characters "
                          f"than letters, digits, '.', '-' and '_' into '_')")
    return instance in points or any(_same_value(existing, point) for existing in points.values())


def _same_value(a: Any, b: Any) -> bool:
    """``a == b``, except that a bool equals only a bool, at every level of mappings and lists."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_value(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return a == b


def _check_point_matters(instance: Mapping[str, Any], point: Mapping[str, Any], kind: ModelKind, metric: str,
                         where: str) -> None:
    """Refuse a key the model's schedule overrides, and validation_loss across keys that redefine the loss."""
    schedule = (instance.get("training") or {}).get("schedule")
    for key in point:
        if schedule and any(_under(key, f"training.{replaced}") for replaced in kind.schedule_replaces):
            raise ConfigError(f"{where}: key {key!r} has no effect: training.schedule sets "
                              f"{['training.' + r for r in kind.schedule_replaces]} of a {kind.name} model; scan "
                              f"points with different `training.schedule` steps, or remove the schedule")
        if metric == "validation_loss" and any(_under(key, defining) or _under(defining, key)  # or a parent of it
                                               for defining in kind.loss_defined_by):
            raise ConfigError(f"{where}: metric validation_loss cannot rank a scan of {key!r}: it changes what a "
                              f"{kind.name} model's validation loss measures; rank by one of "
                              f"{[m for m in kind.scan_metrics if m != 'validation_loss']}")


def _set_in(model: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether the dotted ``key`` of ``model`` holds ``value`` already (``_same_value``: a flag is not a number,
    inside a mapping too). A key the model does not set is not its default value: it names its own
    preprocessing, at the price of one more job."""
    node: Any = model
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return _same_value(node, value)


def _under(key: str, prefix: str) -> bool:
    """Whether dotted ``key`` is ``prefix`` or lies below it (a parent mapping may change other keys too)."""
    return key == prefix or key.startswith(prefix + ".")


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
