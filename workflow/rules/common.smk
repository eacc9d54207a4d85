# Config validation, input functions and wildcard constraints. Nothing here computes data.
import functools
import glob
import sys

from pipeline_steps.workflow_config import (
    categorised_datasets,
    check_raw_files,
    expand_file_patterns,
    expose_package_to_jobs,
    files_by_stem,
    is_blacklisted,
    models_of_kind,
    stored_signature,
    validate_config,
)
from pipeline_steps.common.source_hash import source_hash
from pipeline_steps.scan.expansion import expand_scans

validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

# A model with `scan:` becomes one ordinary model per scan point, here, once: every rule below sees
# the instances (e.g. jets__hidden_dim-64__n_bins-8) and never the scan itself (pipeline_steps/scan/expansion.py).
SCANS = expand_scans(config)
if SCANS:
    validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

expose_package_to_jobs(workflow.basedir)

_FINAL_TARGET_FUNCTIONS = []


def register_final_targets(targets_function):
    """Each stage's rule file registers what `rule all` should build from it."""
    _FINAL_TARGET_FUNCTIONS.append(targets_function)


def final_targets():
    return [t for targets_function in _FINAL_TARGET_FUNCTIONS for t in targets_function()]


def toy_files(dataset):
    """Toy files a dataset without `files` gets: data/raw/<dataset>/<n>.root."""
    n_files = config["datasets"][dataset]["toy"]["n_files"]
    return [f"data/raw/{dataset}/{index}.root" for index in range(n_files)]


def toy_params(dataset, index):
    """Params of the toy_dataset rule, i.e. the dataset's `toy` slice. Refuses datasets read from `files`."""
    settings = config["datasets"][dataset]
    if "files" in settings:
        raise ValueError(
            f"data/raw/{dataset}/{index}.root was requested from rule toy_dataset, but "
            f"datasets.{dataset} has `files` ({settings['files']}): the toy generator never writes "
            f"a dataset that is read from the user's files; check the paths/globs in `files`"
        )
    if "toy" not in settings:
        raise ValueError(f"datasets.{dataset}: neither `files` nor a `toy` section; one is required")
    if int(index) >= settings["toy"]["n_files"]:
        raise ValueError(
            f"data/raw/{dataset}/{index}.root: index {index} >= datasets.{dataset}.toy.n_files "
            f"({settings['toy']['n_files']})"
        )
    return settings["toy"]


# @stored_signature: functions of the rules with one job per raw file (pipeline_steps/workflow_config.py).
@stored_signature
def toy_slice(wildcards):
    """params of toy_dataset: the dataset's `toy` slice (toy_params)."""
    return toy_params(wildcards.dataset, wildcards.index)


@stored_signature
def dataset_tree(wildcards):
    """params of toy_dataset: the TTree the dataset's files hold."""
    return config["datasets"][wildcards.dataset]["tree"]


@functools.cache
def dataset_files(dataset):
    """Every raw file a dataset names, blacklist not yet applied: the user's globs, or the toy files.

    Cached, like everything below that reads it: input functions ask once per job, and globbing a
    1000-file dataset 1000 times would make planning quadratic."""
    settings = config["datasets"][dataset]
    if "files" in settings:
        return tuple(expand_file_patterns(dataset, settings["files"]))
    return tuple(toy_files(dataset))


@functools.cache
def raw_file_by_stem(dataset):
    """{stem: path} of a dataset's files, blacklist removed (planning errors: pipeline_steps/workflow_config.py)."""
    settings = config["datasets"][dataset]
    origin = f"datasets.{dataset}.files {settings['files']}" if "files" in settings else f"datasets.{dataset}.toy"
    by_stem = files_by_stem(dataset, dataset_files(dataset), config.get("blacklist", []), origin)
    if "files" in settings:
        check_raw_files(dataset, list(by_stem.values()))
    return by_stem


def raw_files(dataset):
    """Raw ROOT files of a dataset, blacklist removed, sorted by path."""
    return list(raw_file_by_stem(dataset).values())


@stored_signature
def ingest_reading(wildcards):
    """params of ingest_table: only how the dataset's files are read (a mapping edit elsewhere reruns nothing)."""
    settings = config["datasets"][wildcards.dataset]
    return {key: settings[key] for key in ("tree", "step_size", "empty_tree", "identity") if key in settings}


@stored_signature
def ingest_mapping(wildcards):
    """params of ingest_table: only this table's branch mapping."""
    return config["datasets"][wildcards.dataset]["tables"][wildcards.table]


def ingest_file_summaries(wildcards):
    """Input of ingest_summary: the per-file JSONs of every table of a dataset."""
    return [
        f"results/ingest/{wildcards.dataset}/{table}/{stem}.json"
        for table in tables_of(wildcards.dataset)
        for stem in file_stems(wildcards.dataset)
    ]


def _resolve_raw_files():
    """Every dataset's files, resolved once when the workflow is read: a typo in `files` or a blacklist that
    empties a dataset fails here, before any job, and not as an input-function error of some rule."""
    for dataset in config["datasets"]:
        raw_file_by_stem(dataset)
    _report_absent_blacklist_entries()


def _report_absent_blacklist_entries():
    """Blacklist entries that match no file (on disk or expected from toy data): reported once, not fatal."""
    candidates = [path for dataset in config["datasets"] for path in dataset_files(dataset)]
    for entry in config.get("blacklist", []):
        if not any(is_blacklisted(path, [entry]) for path in candidates) and not glob.glob(entry):
            print(f"warning: blacklist entry {entry!r} matches no raw file; nothing to exclude", file=sys.stderr)


def file_stems(dataset):
    return list(raw_file_by_stem(dataset))


@stored_signature
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


@stored_signature
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


def preprocessed_model_names():
    """Models whose inputs the preprocess_model rule makes, i.e. the generative kinds (flow, covariance_gan)."""
    return model_names("flow") + model_names("covariance_gan")


def preprocess_model_inputs(wildcards):
    """Input function of preprocess_model: the ingested tables, or the SHiP category tables."""
    model = config["models"][wildcards.model]
    if model.get("categorised"):
        folder = f"results/categorise/{model['dataset']}"
        return {
            "tables": [f"{folder}/cat{category}.parquet" for category in (1, 2, 3, 4)],
            "categories": f"{folder}/categories.json",
        }
    return {"tables": ingested_tables(model["dataset"], model["table"])}


def preprocess_model_slice(wildcards):
    """params of preprocess_model: the model's preprocessing keys plus its dataset's identity branches."""
    model = config["models"][wildcards.model]
    keys = ("conditions", "targets", "derived", "split", "preprocessing", "weight", "categorised")
    model_slice = {key: model[key] for key in keys if key in model}
    model_slice["identity"] = config["datasets"][model["dataset"]].get("identity", [])
    return model_slice


def generative_model_names():
    """Models that generate rows (and are validated by the BDT figure of merit)."""
    return model_names("covariance_gan") + model_names("flow")


def model_categories(wildcards):
    """categories.json of a categorised (SHiP) model's dataset; nothing for other models."""
    model = config["models"][wildcards.model]
    return [f"results/categorise/{model['dataset']}/categories.json"] if model.get("categorised") else []


def generation_model_slice(wildcards):
    """params of generate/validate: the model's variables, not its training settings."""
    model = config["models"][wildcards.model]
    keys = ("kind", "conditions", "targets", "derived", "categorised", "weight")
    return {key: model[key] for key in keys if key in model}


def model_output_layout(wildcards):
    """params of generate/validate: the tree, identity branches and table of the model's dataset."""
    model = config["models"][wildcards.model]
    dataset = config["datasets"][model["dataset"]]
    return {
        "tree": dataset["tree"],
        "identity": dataset.get("identity", []),
        "table": dataset["tables"][model["table"]],
    }


def model_tree(wildcards):
    """params of export: the TTree of the model's dataset, recorded in bundle.json as io.tree."""
    return model_output_layout(wildcards)["tree"]


def scan_names():
    """Scanned models (by their own name), each expanded into instances by expand_scans."""
    return list(SCANS)


def scan_slice(wildcards):
    """params of rank_scan: the scan's kind, metric and {instance: point}."""
    return SCANS[wildcards.scan].as_params()


def scan_metrics(wildcards):
    """Input of rank_scan: every instance's metrics.json, in scan order."""
    return [f"results/validate/{name}/metrics.json" for name in SCANS[wildcards.scan].instances]


def scan_histories(wildcards):
    """Input of rank_scan: every instance's training history, in scan order."""
    return [f"results/train/{name}/history.csv" for name in SCANS[wildcards.scan].instances]


def model_datasets(model_name):
    """The datasets a model reads: its `dataset` and, for CalRatio, its `control_dataset`."""
    model = config["models"][model_name]
    return [model[key] for key in ("dataset", "control_dataset") if key in model]


#: The file a trained model of each kind is used from (generate, export).
_TRAINED_MODEL_FILE = {"flow": "model.pt", "covariance_gan": "generator.keras", "calratio_rnn": "chosen.keras"}


def _export_bundles_built():
    """True once export.smk defines the job that makes results/export/<model>/bundle.json."""
    # Output patterns carry their wildcard constraints inline: results/export/{model,jets|...}/bundle.json
    return any(
        str(path).startswith("results/export/{model") and str(path).endswith("}/bundle.json")
        for rule in workflow.rules
        for path in rule.output
    )


def model_artifacts(model_name):
    """Files that stand for a finished model in provenance.json: the trained file and, if any, the bundle."""
    kind = config["models"][model_name]["kind"]
    files = [f"results/train/{model_name}/{_TRAINED_MODEL_FILE[kind]}"]
    if _export_bundles_built():
        files.append(f"results/export/{model_name}/bundle.json")
    return files


def provenance_raw_inputs(wildcards):
    """Input of the provenance job: every raw ROOT file a model was trained on (blacklist removed)."""
    return sorted({path for model in config["models"] for ds in model_datasets(model) for path in raw_files(ds)})


def provenance_model_outputs(wildcards):
    return [path for model in config["models"] for path in model_artifacts(model)]


def provenance_model_slices(wildcards):
    """params of the provenance job: per model its config slice (model + datasets read), raw inputs, artifacts."""
    return {
        model: {
            "config": {
                "model": config["models"][model],
                "datasets": {ds: config["datasets"][ds] for ds in model_datasets(model)},
                "blacklist": config.get("blacklist", []),
            },
            "raw_inputs": [path for ds in model_datasets(model) for path in raw_files(ds)],
            "outputs": model_artifacts(model),
        }
        for model in config["models"]
    }


def export_raw_files(wildcards):
    """Raw files behind a model (its dataset and, for CalRatio, the control dataset): export provenance."""
    model = config["models"][wildcards.model]
    datasets = [model["dataset"]] + ([model["control_dataset"]] if "control_dataset" in model else [])
    return [path for dataset in datasets for path in raw_files(dataset)]


def _alternatives(names):
    return "|".join(names) if names else "(?!x)x"


_resolve_raw_files()


wildcard_constraints:
    dataset=_alternatives(list(config["datasets"])),
    model=_alternatives(list(config["models"])),
    stem=r"[^/]+",
    table=r"[A-Za-z0-9_]+",
