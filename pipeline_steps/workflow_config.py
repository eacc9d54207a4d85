"""The config contract: schema validation with key paths, and small queries on the config.

Snakemake's own ``validate`` reports the first jsonschema error in jsonschema's words; a physicist
editing a 300-line YAML needs the *path* of the offending key and what was expected there, for
every problem at once, before any job starts.
"""

from __future__ import annotations

import fnmatch
import glob
import inspect
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import jsonschema
import yaml

from pipeline_steps.common.errors import ConfigError

URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
"""``root://eosuser.cern.ch//eos/...``, ``https://...``, ``file://...``: a user's first try with XRootD paths.

Without this check such a pattern fell through to the path checks and read "does not exist (a relative
path is read from the working directory ...)", which points at the wrong cause."""


_StrictIntegerValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, instance: isinstance(instance, int) and not isinstance(instance, bool)),
)
"""JSON Schema counts 2.0 as an integer; the code then ran ``range(2.0)`` or ``f"{2.0:02d}"`` and stopped
with a bare TypeError/ValueError (``toy.n_files: 2.0``, ``ingest_parts: 2.0``). Here an integer key
takes a whole number written as one."""

YAML_EXPONENT_STRING = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
"""``1e-3`` or ``1.e4``... which YAML 1.1 (PyYAML, Snakemake's loader) reads as a string, not a number:
its floats need a dot and a signed exponent (``1.0e-3``, ``1.0e+4``)."""


def validate_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise ConfigError listing every schema violation as ``<key.path>: <what was expected>``.

    Also checks what a schema cannot: that models name existing datasets and that split
    fractions add up to one, and for flow and covariance-GAN models, that every variable they name is a
    column of their table and no variable is both a condition and a target (``_model_variable_problems``).
    """
    schema = yaml.safe_load(Path(str(schema_path)).read_text())
    validator = _StrictIntegerValidator(schema)
    problems = [_describe(error) for error in sorted(validator.iter_errors(dict(config)), key=_error_order)]
    if not problems:
        problems = _cross_reference_problems(config)
    if not problems:
        problems = [problem for name in config["models"] for problem in _model_variable_problems(config, name)]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def drop_null_entries(config: dict, schema_path: str | Path) -> list[tuple[str, ...]]:
    """Remove, in place, every entry set to ``null`` in a mapping of named entries; return their keys
    (tuples: a name may hold a dot, as ``rename: {trk.pt: pt}`` does; ``key_path`` spells them).

    Snakemake merges ``--configfile`` files key by key, so an override can add or change a dataset, a
    model, a table or a preprocessing entry but had no way to remove one: a physicist with only NanoAOD
    still planned the default LHCb and ATLAS chains from toy files, and a target dropped from a model kept
    its ``preprocessing.clip`` entry. ``models: {tracks_cov: null}`` now leaves the model out. Only the
    mappings whose keys the user names (``datasets``, ``models``, ``tables``, ``rename``, ``derived``,
    ``per_variable``, ``clip``, ...: ``additionalProperties`` with a schema) drop entries, and only where
    ``null`` is not a value the entry may take; a ``null`` anywhere else still reaches the validation,
    which names it.
    """
    schema = yaml.safe_load(Path(str(schema_path)).read_text())
    dropped: list[tuple[str, ...]] = []
    _drop_null_entries(config, schema, schema.get("$defs", {}), (), dropped)
    return dropped


def check_dropped_entries_exist(dropped: Sequence[tuple[str, ...]], documents: Mapping[str, Any]) -> None:
    """ConfigError for a ``null`` entry that no config file (``documents``: {path: document}, as
    ``check_unique_keys`` read them) gives a value: a misspelt name (``models: {tracks_covv: null}``) had
    been reported as left out while ``tracks_cov`` still ran."""
    unknown = [keys for keys in dropped
               if not any(_value_at(document, keys) is not None for document in documents.values())]
    if unknown:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(
            f"{key_path(keys)}: null leaves out an entry, but no config file ({', '.join(documents)}) "
            f"gives one of this name; a misspelt name?" for keys in unknown))


def _value_at(document: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def _drop_null_entries(node: Any, schema: Mapping[str, Any], definitions: Mapping[str, Any],
                       path: tuple, dropped: list[tuple[str, ...]]) -> None:
    schema = _resolved(schema, definitions)
    if not isinstance(node, dict):
        return
    properties = schema.get("properties", {})
    entries = schema.get("additionalProperties")
    for key in list(node):
        if key in properties:
            _drop_null_entries(node[key], properties[key], definitions, (*path, key), dropped)
        elif isinstance(entries, dict):
            if node[key] is None and not _accepts_null(_resolved(entries, definitions)):
                del node[key]
                dropped.append((*path, key))
            else:
                _drop_null_entries(node[key], entries, definitions, (*path, key), dropped)


def _resolved(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> Mapping[str, Any]:
    """``{$ref: "#/$defs/name", ...}`` -> that definition with the keys written beside the reference, which
    JSON Schema 2020-12 applies too (``{$ref: ..., minItems: 1}``); the schema's only kind of reference."""
    while "$ref" in schema:
        beside = {key: value for key, value in schema.items() if key != "$ref"}
        schema = {**definitions[schema["$ref"].removeprefix("#/$defs/")], **beside}
    return schema


def _accepts_null(schema: Mapping[str, Any]) -> bool:
    types = schema.get("type", [])
    return "null" in (types if isinstance(types, list) else [types]) or None in schema.get("enum", [])


def check_unique_keys(config_files: Sequence[str | Path]) -> dict[str, Any]:
    """Raise ConfigError for a key written twice in one mapping of a config file, naming file and lines;
    return each file's document ({path: document}, for ``check_dropped_entries_exist``).

    YAML loaders keep the last of two equal keys without a word (config.yaml once held
    ``validation.generated_events`` twice, so an edit of the first did nothing); the merged config
    Snakemake hands over cannot show it, so each file is read again with a loader that refuses it.
    """
    documents = {}
    for path in config_files:
        try:
            with open(path, encoding="utf-8") as stream:
                documents[str(path)] = yaml.load(stream, Loader=_UniqueKeyLoader) or {}
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the config file ({error})") from error
    return documents


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice (see :func:`check_unique_keys`)."""


def _unique_key_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, merged by construct_mapping
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in first_line:
                raise ConfigError(f"{key_node.start_mark.name}: line {line}: key {key!r} is already given on line "
                                  f"{first_line[key]} of the same mapping; YAML would keep only the last value")
            first_line[key] = line
        except TypeError:  # an unhashable key: the safe constructor reports it below
            pass
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_key_mapping)


def expose_package_to_jobs(workflow_basedir: str | Path) -> None:
    """Put the checkout on PYTHONPATH for every job Snakemake starts.

    Jobs run their thin scripts with the python of their conda env (or the venv). Finding
    ``pipeline_steps`` through PYTHONPATH means no env needs this package installed and a code edit
    takes effect at once; cluster jobs re-read the Snakefile, so they set it again.
    """
    entries = [str(workflow_basedir), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(entry for entry in entries if entry)


def check_job_interpreter_path(executable: str, uses_conda: bool) -> None:
    """Stop at planning when the Python that runs the jobs' scripts has whitespace in its path.

    Without ``--use-conda``, Snakemake starts a ``script:`` job as ``<its own python> '<script>'`` with
    the interpreter's path unquoted (snakemake/snakemake#2645, open in 9.x), so a checkout at
    ``/home/me/my analysis/`` (and its .venv) failed every job with ``bash: /home/me/my: No such file or
    directory`` after the install and the planning. Failing here names the cause and the fix. With
    ``--use-conda`` every rule's script runs the env's ``python`` from its PATH, so nothing is checked.
    """
    if not uses_conda and any(character.isspace() for character in executable):
        raise ConfigError(
            f"the Python that would run the jobs, {executable!r}, has whitespace in its path, and Snakemake's "
            f"script: jobs run that path unquoted (snakemake/snakemake#2645). Move the checkout (and its .venv) "
            f"to a path without spaces.")


Function = TypeVar("Function", bound=Callable[..., Any])


def stored_signature(function: Function) -> Function:
    """Store the function's signature on it (PEP 362 ``__signature__``) and return the function.

    For input and params functions of the rules with one job per raw file. Snakemake asks
    ``inspect.signature`` which arguments such a function takes two or three times per job, and working
    that out costs more than calling the function: at 1000 files x 5 datasets (12,000 jobs) about 4% of
    ``snakemake -n``. ``inspect.signature`` hands back a stored ``__signature__`` as it is, and a
    function's signature never changes, so Snakemake passes the same arguments as before.
    """
    function.__signature__ = inspect.signature(function)
    return function


def models_of_kind(config: Mapping[str, Any], kind: str | None = None) -> list[str]:
    """Names of the configured models, optionally only those of one kind."""
    return [name for name, model in config["models"].items() if kind is None or model["kind"] == kind]


def categorised_datasets(config: Mapping[str, Any]) -> list[str]:
    """Datasets that go through the SHiP categorisation (a model asks for ``categorised: true``)."""
    return sorted({m["dataset"] for m in config["models"].values() if m.get("categorised")})


def expand_file_patterns(dataset: str, patterns: Sequence[str]) -> list[str]:
    """The files behind ``datasets.<dataset>.files``, sorted, each file once.

    Every pattern must name something: a glob that matches nothing or a path that does not exist is
    a typo that would otherwise reach Snakemake as a literal path (a job with stem ``*``). A file
    reached twice (``raw/a.root`` and ``/data/raw/a.root``, or through a symlink) is the same file:
    it is kept once, under the first path the config gives, so that logs and provenance show the path
    the user wrote (on a cluster, ``/eos/user/...`` rather than the mount it resolves to).
    """
    by_resolved: dict[str, str] = {}
    for pattern in patterns:
        for path in _pattern_matches(dataset, pattern):
            by_resolved.setdefault(os.path.realpath(path), path)
    return sorted(by_resolved.values())


def check_raw_files(dataset: str, paths: Sequence[str]) -> None:
    """Refuse what a pattern can match but a job cannot read: a directory, a dangling link, a brace.

    Run on the files left after the blacklist, so that blacklisting such a path is a way out."""
    for path in paths:
        _check_raw_file(dataset, path)


def is_blacklisted(path: str, blacklist: Sequence[str]) -> bool:
    """A blacklist entry matches the whole path, only the file name (``bad_run.root``), or, holding a ``/``, the
    path's end (``job_3/out.root``: the ``source_file`` of a file whose name repeats, as the ingest summary
    and its warnings give it)."""
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(path, entry) or fnmatch.fnmatch(name, entry)
               or ("/" in entry and fnmatch.fnmatch(path, "*/" + entry)) for entry in blacklist)


def files_by_stem(dataset: str, paths: Sequence[str], blacklist: Sequence[str], origin: str) -> dict[str, str]:
    """``{stem: path}`` of a dataset's files without the blacklisted ones.

    A file's stem is its key within the dataset: it picks the file's ingest part
    (``ingest/parts.py``) and, with the file's extension, is the ``source_file`` its rows carry, which
    names their event with ``entry``. It is the file name without its extension, lengthened by as many
    parent folders as it takes to tell apart files of one name (``job_0/out`` and ``job_1/out``:
    batch jobs that each write ``out.root`` in their own folder, or two CRAB tasks' ``0000/output_1.root``).
    A file added beside namesakes changes the stems of those files only: every other file keeps its part.
    A dataset left without files would silently give an empty table. ``origin`` says where the paths came
    from, for the error message.
    """
    kept = [path for path in paths if not is_blacklisted(path, blacklist)]
    if not kept:
        raise ConfigError(
            f"datasets.{dataset}: every file is blacklisted: {origin} gives {len(paths)} file(s) and the "
            f"blacklist {list(blacklist)} excludes all of them; a dataset needs at least one file, so remove "
            f"the blacklist entries that match them, or the dataset"
        )
    by_name: dict[str, list[str]] = {}
    for path in kept:
        by_name.setdefault(os.path.splitext(os.path.basename(path))[0], []).append(path)
    stem_of: dict[str, str] = {}
    for name, same_name in by_name.items():
        stem_of.update(zip(same_name, _distinct_stems(dataset, name, same_name)))
    return {stem_of[path]: path for path in kept}


def source_file_name(stem: str, path: str) -> str:
    """The ``source_file`` of a file's rows: its stem (:func:`files_by_stem`) with the file's extension."""
    return stem + os.path.splitext(path)[1]


def _distinct_stems(dataset: str, name: str, paths: Sequence[str]) -> list[str]:
    """The stems of files whose names share the stem ``name``: the name alone for one file, else the shortest
    run of trailing folders (of the absolute paths) that tells every one of them apart."""
    if len(paths) == 1:
        return [name]
    folders = [os.path.dirname(os.path.abspath(path)).strip("/").split("/") for path in paths]
    for depth in range(1, max(map(len, folders)) + 1):
        stems = ["/".join([*parts[max(0, len(parts) - depth):], name]) for parts in folders]
        if len(set(stems)) == len(stems):
            return stems
    raise ConfigError(
        f"datasets.{dataset}.files: {' and '.join(paths)} are different files with the same file stem '{name}' "
        f"in one folder; a file's stem and folders name its rows, so rename (or link under another name) all but one"
    )


def key_path(path) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _error_order(error: jsonschema.ValidationError) -> tuple:
    return tuple(str(part) for part in error.absolute_path)


def _describe(error: jsonschema.ValidationError) -> str:
    message = _message(error)
    instance = error.instance
    if isinstance(instance, str) and YAML_EXPONENT_STRING.fullmatch(instance):
        message += (f" (YAML reads {instance!r} as a string: write the number with a dot and a signed "
                    f"exponent, e.g. 1.0e-3 or 1.0e+4, or in full)")
    return message


def _message(error: jsonschema.ValidationError) -> str:
    where = key_path(error.absolute_path)
    if error.validator in ("oneOf", "anyOf") and "description" in error.schema:
        return f"{where}: expected {error.schema['description']}, got {error.instance!r}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f" (allowed keys: {', '.join(allowed)})" if allowed else ""
        if where.endswith(".hyperparameters") and any("learning_rate" in str(key) for key in error.instance):
            hint += "; learning rates are training settings: training.learning_rate (config/README.md)"
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
        if model["kind"] != "calratio_rnn" and "control_dataset" in model:  # CalRatio's (config/README.md)
            problems.append(f"models.{name}.control_dataset: only kind calratio_rnn has a control region; "
                            f"kind is {model['kind']!r}")
        training = model.get("training", {})
        if "restart_epochs" in training and training.get("scheduler", "cosine") != "cosine_warm_restarts":
            problems.append(f"models.{name}.training.restart_epochs: the period of scheduler cosine_warm_restarts, "
                            f"which scheduler {training.get('scheduler', 'cosine')!r} ignores; set "
                            f"training.scheduler: cosine_warm_restarts or drop restart_epochs")
    for name, dataset in datasets.items():
        toy = dataset.get("toy") or {}
        if toy.get("rogue_file") is not None and toy["rogue_file"] >= toy["n_files"]:
            problems.append(f"datasets.{name}.toy.rogue_file: {toy['rogue_file']} is not one of the "
                            f"{toy['n_files']} toy files (0 .. {toy['n_files'] - 1})")
    return problems + _threshold_problems(config)


def _threshold_problems(config: Mapping[str, Any]) -> list[str]:
    """``validation.thresholds`` as the verdict reads them (fail not below warn), before any job."""
    from pipeline_steps.validate.verdict import thresholds_from_config

    try:
        thresholds_from_config(config.get("validation") or {})
    except ConfigError as error:
        return [str(error)]
    return []


def _model_variable_problems(config: Mapping[str, Any], name: str) -> list[str]:
    """A flow or covariance-GAN model's variables against each other and against its table's columns
    (``preprocess.model_variables``), which the ingest mapping fixes before any file is read.

    Without this, a typo in ``conditions`` passed planning and stopped the preprocess job after all of
    the dataset's files were ingested, naming a Parquet file instead of the key. A categorised (SHiP)
    model reads the categorise stage's tables, so its table is checked for what that stage reads (its
    variables and transform settings like any other model's);
    CalRatio reads its own inputs and its preprocessing checks their names.
    """
    from pipeline_steps.generate.layout import counter_event_field_problems
    from pipeline_steps.ingest.mapping import output_columns, table_from_config
    from pipeline_steps.preprocess.model_variables import input_columns, missing_column_problems, read_model_variables

    model = config["models"][name]
    if model["kind"] not in ("flow", "covariance_gan"):
        return []
    dataset = config["datasets"][model["dataset"]]
    try:
        mapping = table_from_config(model["table"], dataset["tables"][model["table"]])
    except ConfigError as error:  # "tables.<t>: ..."
        return [f"datasets.{model['dataset']}.{error}"]
    table = f"datasets.{model['dataset']}.tables.{model['table']}"
    columns = output_columns(mapping, list(dataset.get("identity") or []))
    problems = _categorised_model_problems(name, model, table, columns) if model.get("categorised") else []
    try:  # the variables against each other and their transform settings, categorised or not
        variables = read_model_variables(name, model)
    except ConfigError as error:
        return [*problems, str(error)]
    if model.get("categorised"):
        return problems
    asked = input_columns(variables.conditions, variables.targets, variables.derived, model.get("weight"))
    carried = [*variables.conditions, *([model["weight"]] if model.get("weight") else [])]
    return [*missing_column_problems(name, asked, table, columns),
            *counter_event_field_problems(table, dataset["tables"][model["table"]], carried)]


def _categorised_model_problems(name: str, model: Mapping[str, Any], table: str, columns: list[str]) -> list[str]:
    """A categorised model is SHiP's: its table must hold what the categorisation reads, its one condition
    is the category. ``categorised: true`` on another table had failed in the categorise job."""
    from pipeline_steps.categorise.category_ids import REQUIRED_COLUMNS

    problems = []
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        problems.append(f"models.{name}.categorised: the SHiP muon categorisation reads {list(REQUIRED_COLUMNS)}, and "
                        f"{table} lacks {missing}; categorised: true is for a SHiP muon table")
    if list(model["conditions"]) != ["category"]:
        problems.append(f"models.{name}.conditions: a categorised model has the one condition [category], "
                        f"got {list(model['conditions'])}")
    return problems


def _pattern_matches(dataset: str, pattern: str) -> list[str]:
    """The paths one entry of ``datasets.<dataset>.files`` names, with a clear error when there is none."""
    where = f"datasets.{dataset}.files: {pattern!r}"
    if URL_SCHEME.match(pattern):
        raise ConfigError(
            f"{where} is a URL, and raw files are read from a file system: Snakemake plans the jobs and decides "
            f"what to rerun from the files it can see and their modification times. Give the mounted path (EOS: "
            f"'/eos/...' where EOS is mounted, as on lxplus) or copy the files first (xrdcp) and list the copies"
        )
    relative = "" if os.path.isabs(pattern) else f" (a relative path is read from the working directory {os.getcwd()})"
    if glob.has_magic(pattern):
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise ConfigError(f"{where} matched no file{relative}")
        return matches
    if not os.path.lexists(pattern):
        raise ConfigError(f"{where} does not exist{relative}")
    return [pattern]


def _check_raw_file(dataset: str, path: str) -> None:
    """A raw input must be a file whose path Snakemake can carry (a brace would be read as a wildcard)."""
    where = f"datasets.{dataset}.files: {path!r}"
    try:
        is_directory = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        raise ConfigError(f"{where} is a symbolic link to a file that does not exist") from None
    if is_directory:
        raise ConfigError(f"{where} is a directory; expected ROOT files, e.g. {os.path.join(path, '*.root')!r}")
    if "{" in path or "}" in path:
        raise ConfigError(
            f"{where} has '{{' or '}}' in its path, and Snakemake would read them as a wildcard; rename the "
            f"file or folder, link it (ln -s) under a name without braces and list the link, or blacklist it"
        )
