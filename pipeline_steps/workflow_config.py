"""The config contract: schema validation with key paths, and small queries on the config.

Snakemake's own ``validate`` reports the first jsonschema error in jsonschema's words; a physicist
editing a 300-line YAML needs the *path* of the offending key and what was expected there, for
every problem at once, before any job starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import os

import jsonschema
import yaml

from pipeline_steps.common.errors import ConfigError


def validate_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise ConfigError listing every schema violation as ``<key.path>: <what was expected>``.

    Also checks what a schema cannot: that models name existing datasets and that split
    fractions add up to one.
    """
    schema = yaml.safe_load(Path(str(schema_path)).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = [_describe(error) for error in sorted(validator.iter_errors(dict(config)), key=_error_order)]
    if not problems:
        problems = _cross_reference_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def expose_package_to_jobs(workflow_basedir: str | Path) -> None:
    """Put the checkout on PYTHONPATH for every job Snakemake starts.

    Jobs run their thin scripts with the python of their conda env (or the venv). Finding
    ``pipeline_steps`` through PYTHONPATH means no env needs this package installed and a code edit
    takes effect at once; cluster jobs re-read the Snakefile, so they set it again.
    """
    entries = [str(workflow_basedir), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(entry for entry in entries if entry)


def models_of_kind(config: Mapping[str, Any], kind: str | None = None) -> list[str]:
    """Names of the configured models, optionally only those of one kind."""
    return [name for name, model in config["models"].items() if kind is None or model["kind"] == kind]


def categorised_datasets(config: Mapping[str, Any]) -> list[str]:
    """Datasets that go through the SHiP categorisation (a model asks for ``categorised: true``)."""
    return sorted({m["dataset"] for m in config["models"].values() if m.get("categorised")})


def key_path(path) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _error_order(error: jsonschema.ValidationError) -> tuple:
    return tuple(str(part) for part in error.absolute_path)


def _describe(error: jsonschema.ValidationError) -> str:
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f" (allowed keys: {', '.join(allowed)})" if allowed else ""
        return f"{where}: {error.message}{hint}"
    if error.validator == "required":
        return f"{where}: missing required key: {error.message}"
    if error.validator == "type":
        return f"{where}: expected {error.validator_value}, got {error.instance!r}"
    if error.validator == "enum":
        return f"{where}: expected one of {error.validator_value}, got {error.instance!r}"
    return f"{where}: {error.message}"


def _cross_reference_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    datasets = config["datasets"]
    for name, model in config["models"].items():
        for key in ("dataset", "control_dataset"):
            if key in model and model[key] not in datasets:
                problems.append(
                    f"models.{name}.{key}: expected one of the datasets {sorted(datasets)}, got {model[key]!r}"
                )
        if model["dataset"] in datasets and model["table"] not in datasets[model["dataset"]]["tables"]:
            problems.append(
                f"models.{name}.table: dataset {model['dataset']!r} has tables "
                f"{sorted(datasets[model['dataset']]['tables'])}, got {model['table']!r}"
            )
        total = sum(model["split"].values())
        if abs(total - 1.0) > 1e-9:
            problems.append(f"models.{name}.split: fractions must add up to 1, they add up to {total:g}")
    return problems
