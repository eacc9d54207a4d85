# Config validation, input functions and wildcard constraints. Nothing here computes data.
import functools
import glob
import os

from pipeline_steps.workflow_config import (
    categorised_datasets,
    expose_package_to_jobs,
    models_of_kind,
    validate_config,
)
from pipeline_steps.provenance import source_hash


validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

expose_package_to_jobs(workflow.basedir)

_FINAL_TARGET_FUNCTIONS = []


def register_final_targets(targets_function):
    """Each stage's rule file registers what `rule all` should build from it."""
    _FINAL_TARGET_FUNCTIONS.append(targets_function)


def final_targets():
    return [t for targets_function in _FINAL_TARGET_FUNCTIONS for t in targets_function()]


def _blacklisted(path):
    from fnmatch import fnmatch

    return any(
        fnmatch(path, pattern) or fnmatch(os.path.basename(path), pattern)
        for pattern in config.get("blacklist", [])
    )


def toy_files(dataset):
    """Toy files a dataset without `files` gets: data/raw/<dataset>/<n>.root."""
    n_files = config["datasets"][dataset]["toy"]["n_files"]
    return [f"data/raw/{dataset}/{index}.root" for index in range(n_files)]


def raw_files(dataset):
    """Raw ROOT files of a dataset, blacklist removed: the user's globs, or the toy files."""
    settings = config["datasets"][dataset]
    if "files" in settings:
        paths = sorted({p for pattern in settings["files"] for p in (glob.glob(pattern) or [pattern])})
    else:
        paths = toy_files(dataset)
    return [p for p in paths if not _blacklisted(p)]


@functools.cache
def raw_file_by_stem(dataset):
    """{stem: path} with a clear error when two files of one dataset share a stem.

    Cached: input functions ask once per job, and globbing a 1000-file dataset 1000 times would make
    planning quadratic."""
    by_stem = {}
    for path in raw_files(dataset):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in by_stem:
            raise ValueError(
                f"datasets.{dataset}.files: {by_stem[stem]} and {path} have the same file stem "
                f"'{stem}'; outputs are named by stem, so rename one of them"
            )
        by_stem[stem] = path
    return by_stem


def file_stems(dataset):
    return list(raw_file_by_stem(dataset))


def raw_file(wildcards):
    """Input function: the raw ROOT file behind results/ingest/<dataset>/<table>/<stem>.parquet."""
    return raw_file_by_stem(wildcards.dataset)[wildcards.stem]


def ingested_tables(dataset, table):
    return [f"results/ingest/{dataset}/{table}/{stem}.parquet" for stem in file_stems(dataset)]


def tables_of(dataset):
    return list(config["datasets"][dataset]["tables"])


def model_names(kind=None):
    return models_of_kind(config, kind)


def categorised_table(dataset):
    """The table that the `categorised: true` model(s) of a dataset read (SHiP: `muons`)."""
    tables = sorted({m["table"] for m in config["models"].values() if m.get("categorised") and m["dataset"] == dataset})
    if len(tables) != 1:
        raise ValueError(f"dataset {dataset!r}: categorised models must all read one table, found {tables}")
    return tables[0]


def categorise_muon_table(wildcards):
    """Input function: one ingested table behind results/categorise/<dataset>/minmax/<stem>.json."""
    return f"results/ingest/{wildcards.dataset}/{categorised_table(wildcards.dataset)}/{wildcards.stem}.parquet"


def categorise_muon_tables(wildcards):
    return ingested_tables(wildcards.dataset, categorised_table(wildcards.dataset))


def categorise_minmax_partials(wildcards):
    return [f"results/categorise/{wildcards.dataset}/minmax/{stem}.json" for stem in file_stems(wildcards.dataset)]


def calratio_main_tables(wildcards):
    model = config["models"][wildcards.model]
    return ingested_tables(model["dataset"], model["table"])


def calratio_control_tables(wildcards):
    model = config["models"][wildcards.model]
    return ingested_tables(model["control_dataset"], model["table"])


def calratio_layout(wildcards):
    """params slice of preprocess_calratio: the table's sequences and both datasets' identity branches."""
    model = config["models"][wildcards.model]
    main, control = config["datasets"][model["dataset"]], config["datasets"][model["control_dataset"]]
    return {
        "sequences": main["tables"][model["table"]].get("sequences", {}),
        "identity": main.get("identity", []),
        "control_identity": control.get("identity", []),
    }


def _alternatives(names):
    return "|".join(names) if names else "(?!x)x"


wildcard_constraints:
    dataset=_alternatives(list(config["datasets"])),
    model=_alternatives(list(config["models"])),
    stem=r"[^/]+",
    table=r"[A-Za-z0-9_]+",
