# Config validation, wildcard constraints and thin wrappers: each input or params function below turns
# Snakemake's wildcards into one question to PLAN (pipeline_steps/workflow_plan.py), where the answers
# live and are unit-tested; which env, trained file and code hashes a model kind has: MODEL_KINDS.
import sys

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from pipeline_steps.model_kinds import MODEL_KINDS
from pipeline_steps.workflow_config import (
    categorised_datasets,
    check_dropped_entries_exist,
    check_job_interpreter_path,
    check_unique_keys,
    drop_null_entries,
    expose_package_to_jobs,
    key_path,
    stored_signature,
    validate_config,
)
from pipeline_steps.categorise.category_ids import CATEGORIES
from pipeline_steps.workflow_plan import WorkflowPlan
from pipeline_steps.common.source_hash import source_hash
from pipeline_steps.common.reproducible import give_jobs_the_fixed_hash_seed
from pipeline_steps.local_scheduler import unthrottle_local_scheduler
from pipeline_steps.scan.expansion import expand_scans, validate_instances

check_job_interpreter_path(
    sys.executable, uses_conda=DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
)
_CONFIG_DOCUMENTS = check_unique_keys(workflow.configfiles)
# `models: {tracks_cov: null}` in an override leaves that model out (merging alone cannot remove an entry)
_DROPPED = drop_null_entries(config, workflow.source_path("../schemas/config.schema.yaml"))
check_dropped_entries_exist(_DROPPED, _CONFIG_DOCUMENTS)
for dropped in _DROPPED:
    print(f"config: {key_path(dropped)} is null: left out", file=sys.stderr)
validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

# A model with `scan:` becomes one ordinary model per scan point, here, once: every rule below sees
# the instances (e.g. jets__hidden_dim-64__n_bins-8) and never the scan itself (pipeline_steps/scan/expansion.py).
SCANS = expand_scans(config)
if SCANS:
    validate_instances(config, SCANS, workflow.source_path("../schemas/config.schema.yaml"))

expose_package_to_jobs(workflow.basedir)
give_jobs_the_fixed_hash_seed()


# Snakemake's default job rate limit re-runs its scheduler from ever more timers on a local run: 41 s of the head
# process's CPU in `make run` instead of 6 (pipeline_steps/local_scheduler.py). Cluster runs keep it.
onstart:
    unthrottle_local_scheduler(workflow)


PLAN = WorkflowPlan(config, SCANS)
PLAN.check_shared_preprocessing()
for unread in PLAN.tables_no_model_reads():
    print(f"config: {unread} is read by no model: ingested all the same (null it to leave it out)", file=sys.stderr)

_FINAL_TARGET_FUNCTIONS = []


def register_final_targets(targets_function):
    """Each stage's rule file registers what `rule all` should build from it."""
    _FINAL_TARGET_FUNCTIONS.append(targets_function)


def final_targets():
    return [t for targets_function in _FINAL_TARGET_FUNCTIONS for t in targets_function()]


# --- raw files and ingest ---------------------------------------------------------------------------
# @stored_signature: functions of the rules with one job per ingest part (pipeline_steps/workflow_config.py).
@stored_signature
def part_raw_files(wildcards):
    """Input function: the raw ROOT files behind results/ingest/<dataset>/<table>/<part>.parquet."""
    return PLAN.part_files(wildcards.dataset, wildcards.part)


@stored_signature
def ingest_source_files(wildcards):
    return PLAN.part_source_files(wildcards.dataset, wildcards.part)


def ingest_threads(wildcards):
    return PLAN.ingest_threads(wildcards.dataset)


@stored_signature
def ingest_reading(wildcards):
    return PLAN.ingest_reading(wildcards.dataset)


@stored_signature
def ingest_mapping(wildcards):
    return PLAN.ingest_mapping(wildcards.dataset, wildcards.table)


def ingest_part_summaries(wildcards):
    return PLAN.ingest_part_summaries(wildcards.dataset)


def _resolve_raw_files():
    """Every dataset's files, resolved once when the workflow is read: a typo in `files` or a blacklist that
    empties a dataset fails here, before any job. A blacklist entry that matches nothing is only reported."""
    for entry in PLAN.resolve_raw_files():
        print(f"warning: blacklist entry {entry!r} matches no raw file; nothing to exclude", file=sys.stderr)


# --- categorise -------------------------------------------------------------------------------------
@stored_signature
def categorise_muon_table(wildcards):
    return PLAN.categorise_muon_table(wildcards.dataset, wildcards.part)


def categorise_muon_tables(wildcards):
    return PLAN.ingested_tables(wildcards.dataset, PLAN.categorised_table(wildcards.dataset))


def categorise_minmax_partials(wildcards):
    return PLAN.categorise_minmax_partials(wildcards.dataset)


def dataset_identity(wildcards):
    return PLAN.identity(wildcards.dataset)


# --- models -----------------------------------------------------------------------------------------
def model_names(kind=None):
    return PLAN.model_names(kind)


def generative_model_names():
    return PLAN.generative_model_names()


# --- preprocessing: the preprocess rules' {model} is a preprocessing name (PLAN.preprocessing_name): a
# model's own, or for a scan's points the scan's name and their preprocessing keys; every other rule reads
# it through preprocessed(), and the preprocess jobs read a sharing model's slice (PLAN.preprocessed_model).
def model_preprocessings():
    """Preprocessings that preprocess_model makes, those of the generative models."""
    return PLAN.preprocessing_names(PLAN.generative_model_names())


def calratio_preprocessings():
    """Preprocessings that preprocess_calratio makes."""
    return PLAN.preprocessing_names(model_names("calratio_rnn"))


def preprocessed(filename):
    """Input function: ``filename`` of the model's preprocessing, results/preprocess/<name>/<filename>."""
    return lambda wildcards: f"results/preprocess/{PLAN.preprocessing_name(wildcards.model)}/{filename}"


def preprocessing_name(wildcards):
    """params of generate: the preprocessing whose transforms the model reads (checked against transforms.json)."""
    return PLAN.preprocessing_name(wildcards.model)


def calratio_main_tables(wildcards):
    return PLAN.calratio_tables(PLAN.preprocessed_model(wildcards.model), "dataset")


def calratio_control_tables(wildcards):
    return PLAN.calratio_tables(PLAN.preprocessed_model(wildcards.model), "control_dataset")


def calratio_layout(wildcards):
    return PLAN.calratio_layout(PLAN.preprocessed_model(wildcards.model))


def calratio_identity(wildcards):
    return PLAN.calratio_identity(wildcards.model)


def preprocess_model_inputs(wildcards):
    return PLAN.preprocess_model_inputs(PLAN.preprocessed_model(wildcards.model))


def preprocess_model_slice(wildcards):
    return PLAN.preprocess_model_slice(PLAN.preprocessed_model(wildcards.model))


def preprocess_calratio_slice(wildcards):
    return PLAN.preprocess_calratio_slice(PLAN.preprocessed_model(wildcards.model))


def training_slice(wildcards):
    return PLAN.training_slice(wildcards.model)


# Jobs on the way to a trained model start before the leaves (summaries, generation, validation, export,
# plots; priority 0), and an earlier stage before a later one: trainings are the long poles, so every
# training must be ready to start as early as possible. Measured on `make run` (2 cores): with no
# priorities, exports went before the ingestion the GAN waited for; with one priority for the whole path,
# a ready training went before the ingestion of the next one. Both started the GAN, the longest job,
# 2-2.5 min late. Among ready trainings, the greedy scheduler (profiles/local) takes the larger inputs first.
STAGE_PRIORITY = {"toy": 4, "ingest": 3, "categorise": 3, "preprocess": 2, "train": 1}


def training_threads(wildcards):
    return PLAN.training_threads(wildcards.model)


def model_slice(*keys):
    """params function: the model's config restricted to ``keys``."""
    return lambda wildcards: PLAN.model_slice(wildcards.model, keys)


def full_model_config(wildcards):
    return PLAN.model(wildcards.model)


def checkpoint_dir(wildcards):
    """Resumable checkpoints: a param, not an output, so that --rerun-incomplete keeps them."""
    return f"results/checkpoints/{wildcards.model}"


def trained_model_file(wildcards):
    return PLAN.trained_model_file(wildcards.model)


def model_categories(wildcards):
    return PLAN.model_categories(wildcards.model)


def generation_model_slice(wildcards):
    return PLAN.generation_model_slice(wildcards.model)


def generation_settings(wildcards):
    return PLAN.generation_settings(wildcards.model)


def model_output_layout(wildcards):
    return PLAN.model_output_layout(wildcards.model)


def model_tree(wildcards):
    """params of export: the TTree of the model's dataset, recorded in bundle.json as io.tree."""
    return PLAN.model_output_layout(wildcards.model)["tree"]


def model_branches(wildcards):
    """params of export: the renamed flat columns' branch names, recorded in bundle.json as io.branches."""
    return PLAN.model_branches(wildcards.model)


def export_raw_checksums(wildcards):
    return PLAN.model_raw_checksums(wildcards.model)


def export_settings(kind):
    return PLAN.export_settings(kind)


def kind_code(kind, stage):
    """params `code` of a kind's train, generate or export rule: the source hash of MODEL_KINDS' modules."""
    return source_hash(*MODEL_KINDS[kind].code_modules(stage))


def kind_env(kind):
    return MODEL_KINDS[kind].env_file


# --- scans ------------------------------------------------------------------------------------------
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


def scan_selections(wildcards):
    """Input of rank_scan for a CalRatio scan: each instance's epoch selection (its kept epoch), in scan order."""
    group = SCANS[wildcards.scan]
    return [f"results/train/{name}/selection.json" for name in group.instances] if group.kind == "calratio_rnn" else []


# --- provenance -------------------------------------------------------------------------------------
def _export_bundles_built():
    """True once export.smk defines the job that makes results/export/<model>/bundle.json."""
    # Output patterns carry their wildcard constraints inline: results/export/{model,jets|...}/bundle.json
    return any(
        str(path).startswith("results/export/{model") and str(path).endswith("}/bundle.json")
        for rule in workflow.rules
        for path in rule.output
    )


def provenance_raw_checksums(wildcards):
    return PLAN.provenance_raw_checksums()


def provenance_model_outputs(wildcards):
    return [path for model in config["models"] for path in PLAN.model_artifacts(model, _export_bundles_built())]


def provenance_model_slices(wildcards):
    return PLAN.provenance_model_slices(_export_bundles_built())


def _alternatives(names):
    return "|".join(names) if names else "(?!x)x"


_resolve_raw_files()


wildcard_constraints:
    dataset=_alternatives(list(config["datasets"])),
    model=_alternatives(list(config["models"])),
    part=r"part[0-9]+",
    table=r"[A-Za-z0-9_]+",
