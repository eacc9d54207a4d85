"""What the rules ask of the config: the files each job reads and the config slice each job receives.

One object, :class:`WorkflowPlan`, answers every such question for the rule files; ``common.smk``
builds it once and keeps only thin wrappers that take Snakemake's ``wildcards``. The slices are the
reruns' contract: a rule's ``params`` hold *only* the keys its step reads, so an edit elsewhere in the
config reruns nothing, and a key the step reads but the slice leaves out would be silently missing.
Living here, the answers are unit-tested without Snakemake (tests/test_workflow_plan.py).

File lists are cached per dataset: input functions ask once per job, and globbing a 1000-file
dataset 1000 times would make planning quadratic.
"""

from __future__ import annotations

import functools
import glob
from typing import Any, Mapping

from pipeline_steps.categorise.category_ids import CATEGORIES
from pipeline_steps.common.errors import ConfigError
from pipeline_steps.ingest.parts import DEFAULT_INGEST_PARTS, partition
from pipeline_steps.model_kinds import MODEL_KINDS, kind_of
from pipeline_steps.train.settings import configured_threads
from pipeline_steps.workflow_config import (
    check_raw_files,
    expand_file_patterns,
    files_by_stem,
    is_blacklisted,
    source_file_name,
)


HOW_NOT_WHAT = ("read_threads",)
"""Dataset keys that say how a job runs and change no byte of any output: kept out of every params (and so of
provenance), so that changing them reruns nothing."""


TOY_FILES_PER_JOB = 100
"""Toy files one toy job writes, at least (whole ingest parts). Why not all of a dataset's: Snakemake finds
the job that makes a file by matching the file against each output of the rules its prefix index returns,
one regex after the other (``Rule.is_producer``), and after each job it looks at every output of every job
it depends on (``DAG.handle_temp``, even in a dry run). Every toy file is looked up 2-3 times (ingest,
checksum and SHiP min/max parts), and each of a dataset's 128-192 part jobs depended on its one toy job, so
one job of n outputs cost ~n^2 matches and ~200 n output checks: 5.5 and 1.3 million calls at 1000 files x 5
datasets, a third of the profiled plan. In runs of k files that is n*k matches and k outputs per part job,
for n/k jobs instead of one (Snakemake plans a job in ~2 ms); k = 100 took the plan from 8.1 to 6.6 s
(medians of five, interleaved; a 2.45 GHz EPYC) and keeps the default toy (4 files a dataset) and
production.yaml's (at most 66) at one job, one process start, a dataset. A file's bytes depend only on
(seed, dataset, index), so the split changes no byte."""


class WorkflowPlan:
    """Queries on one validated config; every method is a pure function of it (and of the file system
    for the ``files:`` globs, read once)."""

    def __init__(self, config: Mapping[str, Any], scans: Mapping[str, Any] | None = None):
        """``config`` with its scans expanded; ``scans`` the ``ScanGroup``s ``expand_scans`` returned."""
        self.config = config
        self.preprocessing_of = _preprocessing_names(config, scans or {})
        self.scan_points = {instance for group in (scans or {}).values() for instance in group.points}
        self.raw_file_by_stem = functools.cache(self._raw_file_by_stem)
        self.source_file_of = functools.cache(self._source_file_of)
        self.dataset_files = functools.cache(self._dataset_files)
        self.ingest_parts = functools.cache(self._ingest_parts)

    # --- raw files -------------------------------------------------------------------------------

    def toy_datasets(self) -> list[str]:
        """Datasets the toy generator writes: those without `files` (one toy job each)."""
        return [dataset for dataset, settings in self.config["datasets"].items() if "files" not in settings]

    def toy_files(self, dataset: str) -> list[str]:
        """Toy files a dataset without `files` gets: data/raw/<dataset>/<n>.root, n = 0 .. toy.n_files - 1."""
        return [f"data/raw/{dataset}/{index}.root" for index in range(self.toy_params(dataset)["n_files"])]

    def toy_jobs(self, dataset: str) -> list[tuple[str, list[str]]]:
        """[(job name, its files)]: one toy rule per run of whole ingest parts of at least TOY_FILES_PER_JOB files.

        Parts are taken in order, blacklisted files included (they are written too), so each ingest part
        reads the files of exactly one toy job, and rewriting a toy job's files re-ingests its parts only.
        The first job is named after the dataset (``ship``: rule ``toy_ship``, log ``logs/toy/ship.log``),
        the next ``ship_1``, ``ship_2``, ...; a dataset of fewer than 2 x TOY_FILES_PER_JOB files has the one job."""
        files = self.toy_files(dataset)
        index_of = {path: index for index, path in enumerate(files)}
        every_file = files_by_stem(dataset, files, (), f"datasets.{dataset}.toy")  # ingestion's keys, no blacklist
        parts = partition(every_file, self._n_ingest_parts(dataset))
        runs: list[list[str]] = [[]]
        for part_files in parts.values():
            if len(runs[-1]) >= TOY_FILES_PER_JOB:
                runs.append([])
            runs[-1].extend(part_files)
        if len(runs) > 1 and len(runs[-1]) < TOY_FILES_PER_JOB:
            runs[-2].extend(runs.pop())
        return [(f"{dataset}_{n}" if n else dataset, sorted(run, key=index_of.get)) for n, run in enumerate(runs)]

    def toy_params(self, dataset: str) -> dict:
        """Params of the dataset's toy rule, i.e. its `toy` slice; a dataset with neither `files` nor `toy` is an error."""
        settings = self.config["datasets"][dataset]
        if "toy" not in settings:
            raise ValueError(f"datasets.{dataset}: neither `files` nor a `toy` section; one is required")
        return settings["toy"]

    def _dataset_files(self, dataset: str) -> tuple[str, ...]:
        """Every raw file a dataset names, blacklist not yet applied: the user's globs, or the toy files."""
        settings = self.config["datasets"][dataset]
        if "files" in settings:
            return tuple(expand_file_patterns(dataset, settings["files"]))
        return tuple(self.toy_files(dataset))

    def _raw_file_by_stem(self, dataset: str) -> dict[str, str]:
        """{stem: path} of a dataset's files, blacklist removed (planning errors: workflow_config.py)."""
        settings = self.config["datasets"][dataset]
        origin = f"datasets.{dataset}.files {settings['files']}" if "files" in settings else f"datasets.{dataset}.toy"
        by_stem = files_by_stem(dataset, self.dataset_files(dataset), self.config.get("blacklist", []), origin)
        if "files" in settings:
            check_raw_files(dataset, list(by_stem.values()))
        return by_stem

    def raw_files(self, dataset: str) -> list[str]:
        """Raw ROOT files of a dataset, blacklist removed, sorted by path."""
        return list(self.raw_file_by_stem(dataset).values())

    def _ingest_parts(self, dataset: str) -> dict[str, list[str]]:
        """{part: raw files} of a dataset: one ingest job per part and table (pipeline_steps/ingest/parts.py)."""
        return partition(self.raw_file_by_stem(dataset), self._n_ingest_parts(dataset))

    def _n_ingest_parts(self, dataset: str) -> int:
        return self.config["datasets"][dataset].get("ingest_parts", DEFAULT_INGEST_PARTS)

    def part_files(self, dataset: str, part: str) -> list[str]:
        """Input of ingest_table: the raw files of one part; a part the plan does not have is an error."""
        parts = self.ingest_parts(dataset)
        if part not in parts:
            raise ValueError(f"datasets.{dataset}: no ingest part {part!r}; this plan's parts are {list(parts)}")
        return parts[part]

    def part_source_files(self, dataset: str, part: str) -> list[str]:
        """params of ingest_table: the ``source_file`` of each raw file of the part, in its input's order
        (the file name, with folders where two files share it: ``files_by_stem``)."""
        source_file_of = self.source_file_of(dataset)
        return [source_file_of[path] for path in self.part_files(dataset, part)]

    def _source_file_of(self, dataset: str) -> dict[str, str]:
        return {path: source_file_name(stem, path) for stem, path in self.raw_file_by_stem(dataset).items()}

    def resolve_raw_files(self) -> list[str]:
        """Resolve every dataset's files now (a typo in `files` or a blacklist that empties a dataset fails
        before any job, not as some rule's input-function error); return the blacklist entries that match
        no file, on disk or expected from toy data (worth a warning, not an error)."""
        for dataset in self.config["datasets"]:
            self.raw_file_by_stem(dataset)
        candidates = [path for dataset in self.config["datasets"] for path in self.dataset_files(dataset)]
        return [entry for entry in self.config.get("blacklist", [])
                if not any(is_blacklisted(path, [entry]) for path in candidates) and not glob.glob(entry)]

    # --- ingest and categorise -------------------------------------------------------------------

    def ingest_reading(self, dataset: str) -> dict:
        """params of ingest_table: only how the dataset's files are read (a mapping edit elsewhere reruns nothing)."""
        settings = self.config["datasets"][dataset]
        return {key: settings[key] for key in ("tree", "step_size", "empty_tree", "identity") if key in settings}

    def ingest_threads(self, dataset: str) -> int:
        """threads of ingest_table: ``read_threads`` (default 1), the baskets decompressed at once (``ingest/reader.py``).
        Not in params: the bytes written do not depend on it, so changing it reruns nothing."""
        return int(self.config["datasets"][dataset].get("read_threads", 1))

    def ingest_mapping(self, dataset: str, table: str) -> dict:
        """params of ingest_table: only this table's branch mapping."""
        return self.config["datasets"][dataset]["tables"][table]

    def tables_of(self, dataset: str) -> list[str]:
        return list(self.config["datasets"][dataset]["tables"])

    def ingested_tables(self, dataset: str, table: str) -> list[str]:
        return [f"results/ingest/{dataset}/{table}/{part}.parquet" for part in self.ingest_parts(dataset)]

    def ingest_part_summaries(self, dataset: str) -> list[str]:
        """Input of ingest_summary: the per-part JSONs (one entry per file) of every table of a dataset."""
        return [f"results/ingest/{dataset}/{table}/{part}.json"
                for table in self.tables_of(dataset) for part in self.ingest_parts(dataset)]

    def raw_checksum_files(self, dataset: str) -> list[str]:
        """Outputs of checksum_raw for a dataset: the sha256 of each part's raw files (provenance/raw_checksums.py)."""
        return [f"results/checksums/{dataset}/{part}.json" for part in self.ingest_parts(dataset)]

    def categorised_table(self, dataset: str) -> str:
        """The table that the `categorised: true` model(s) of a dataset read (SHiP: `muons`)."""
        tables = sorted({m["table"] for m in self.config["models"].values()
                         if m.get("categorised") and m["dataset"] == dataset})
        if len(tables) != 1:
            raise ValueError(f"dataset {dataset!r}: categorised models must all read one table, found {tables}")
        return tables[0]

    def categorise_muon_table(self, dataset: str, part: str) -> str:
        """One ingested table behind results/categorise/<dataset>/minmax/<part>.json."""
        return f"results/ingest/{dataset}/{self.categorised_table(dataset)}/{part}.parquet"

    def categorise_minmax_partials(self, dataset: str) -> list[str]:
        return [f"results/categorise/{dataset}/minmax/{part}.json" for part in self.ingest_parts(dataset)]

    def identity(self, dataset: str) -> list[str]:
        """The dataset's identity branches (run, event, ...); none unless configured."""
        return list(self.config["datasets"][dataset].get("identity", []))

    # --- models ----------------------------------------------------------------------------------

    def model(self, name: str) -> Mapping[str, Any]:
        return self.config["models"][name]

    def model_names(self, kind: str | None = None) -> list[str]:
        """Names of the configured models, optionally only those of one kind."""
        return [name for name, model in self.config["models"].items() if kind is None or model["kind"] == kind]

    def generative_model_names(self) -> list[str]:
        """Models that generate rows (and are validated by the BDT figure of merit), in registry order."""
        return [name for kind in MODEL_KINDS.values() if kind.generative for name in self.model_names(kind.name)]

    def model_datasets(self, name: str) -> list[str]:
        """The datasets a model reads: its `dataset` and, for CalRatio, its `control_dataset`."""
        model = self.model(name)
        return [model[key] for key in ("dataset", "control_dataset") if key in model]

    def tables_no_model_reads(self) -> list[str]:
        """``datasets.<d>.tables.<t>`` keys that no model reads. They are ingested all the same (a table may be
        wanted for itself), but a user who dropped a model rarely means that: on a skim without its branches
        (a jets-only NanoAOD, models: {nano_muons: null}) the muons table's ingestion had failed on "missing
        branch Muon_pt" with nothing saying that nothing needs it."""
        read = {(dataset, self.model(name)["table"]) for name in self.config["models"] for dataset in self.model_datasets(name)}
        return [f"datasets.{dataset}.tables.{table}" for dataset in self.config["datasets"]
                for table in self.tables_of(dataset) if (dataset, table) not in read]

    def model_raw_files(self, name: str) -> list[str]:
        """Raw files behind a model (its dataset and, for CalRatio, the control dataset)."""
        return [path for dataset in self.model_datasets(name) for path in self.raw_files(dataset)]

    def model_raw_checksums(self, name: str) -> list[str]:
        """Input of export: the sha256 JSONs of the raw files behind a model (not the files: they are hashed once)."""
        return [path for dataset in self.model_datasets(name) for path in self.raw_checksum_files(dataset)]

    def model_categories(self, name: str) -> list[str]:
        """categories.json of a categorised (SHiP) model's dataset; nothing for other models."""
        model = self.model(name)
        return [f"results/categorise/{model['dataset']}/categories.json"] if model.get("categorised") else []

    def trained_model_file(self, name: str) -> str:
        """The file a trained model is used from (generate, export, provenance)."""
        return f"results/train/{name}/{kind_of(self.model(name)).trained_file}"

    def model_slice(self, name: str, keys: tuple[str, ...]) -> dict:
        """The model's config restricted to ``keys`` (those it has)."""
        model = self.model(name)
        return {key: model[key] for key in keys if key in model}

    def training_slice(self, name: str) -> dict:
        """params of the model's training rule: the keys its trainer reads (MODEL_KINDS), ``training`` without
        the keys only the epoch selection reads (``ModelKind.selection_keys``)."""
        kind = kind_of(self.model(name))
        sliced = self.model_slice(name, kind.training_keys)
        if kind.selection_keys and "training" in sliced:
            sliced["training"] = {k: v for k, v in sliced["training"].items() if k not in kind.selection_keys}
        return sliced

    def training_threads(self, name: str) -> int:
        """threads of the model's training rule: its ``training.threads``, what the trainer runs with."""
        return configured_threads(self.model(name).get("training", {}))

    # --- preprocessing, shared by a scan's points ------------------------------------------------

    def preprocessing_name(self, model: str) -> str:
        """The folder under results/preprocess/ that holds ``model``'s splits and transforms: its own name, or
        for a scan's point the scan's name and the point's ``preprocessing`` keys (``_preprocessing_names``)."""
        return self.preprocessing_of[model]

    def preprocessing_names(self, models: list[str]) -> list[str]:
        """The preprocessings ``models`` use, each once, in their order (the preprocess rules' jobs)."""
        return list(dict.fromkeys(self.preprocessing_of[model] for model in models))

    def check_shared_preprocessing(self) -> None:
        """Refuse a shared preprocessing whose models would not make the same files (``ConfigError``): a
        preprocess slice that came to read a key a scan may set (``hyperparameters``, ``training``) would
        otherwise give every point the first one's splits; and a name that is another model's own."""
        groups: dict[str, list[str]] = {}
        for model, name in self.preprocessing_of.items():
            groups.setdefault(name, []).append(model)
        for name, models in groups.items():
            if len(models) > 1 and name in self.config["models"] and name not in self.scan_points:
                raise ConfigError(f"models.{name}: its name is also the shared preprocessing of scan points "
                                  f"{models}; rename the model")
            if len(models) < 2:
                continue
            job = [self._preprocess_job(model) for model in models]
            differing = [model for model, each in zip(models, job) if each != job[0]]
            if differing:
                raise ConfigError(f"scan points {models} share the preprocessing {name!r} but {differing} would "
                                  f"preprocess differently from {models[0]!r}: the preprocess slice reads a key "
                                  f"the scan sets (pipeline_steps/workflow_plan.py, _preprocessing_names)")

    def _preprocess_job(self, model: str) -> tuple:
        """What a preprocess job of ``model`` reads: its kind, inputs and params slice."""
        if kind_of(self.model(model)).generative:
            return ("model", self.preprocess_model_inputs(model), self.preprocess_model_slice(model))
        return ("calratio", self.preprocess_calratio_slice(model), self.calratio_layout(model),
                self.calratio_tables(model, "dataset"), self.calratio_tables(model, "control_dataset"))

    def preprocessed_model(self, name: str) -> str:
        """A model whose preprocessing is ``name``: the one the preprocess job reads its config slice and
        inputs from (every such model has the same, as only ``preprocessing`` keys may differ in a scan)."""
        return next(model for model, preprocessing in self.preprocessing_of.items() if preprocessing == name)

    def preprocess_model_inputs(self, name: str) -> dict:
        """Inputs of preprocess_model: the ingested tables, or the SHiP category tables."""
        model = self.model(name)
        if model.get("categorised"):
            folder = f"results/categorise/{model['dataset']}"
            return {"tables": [f"{folder}/cat{category}.parquet" for category in CATEGORIES],
                    "categories": f"{folder}/categories.json"}
        return {"tables": self.ingested_tables(model["dataset"], model["table"])}

    def preprocess_model_slice(self, name: str) -> dict:
        """params of preprocess_model: the model's preprocessing keys plus its dataset's identity branches and
        whether its table is read from a collection (``entry_is_event``: then an entry is an event)."""
        keys = ("conditions", "targets", "derived", "split", "preprocessing", "weight", "categorised")
        model = self.model(name)
        table = self.config["datasets"][model["dataset"]]["tables"][model["table"]]
        return {**self.model_slice(name, keys), "identity": self.identity(model["dataset"]),
                "entry_is_event": "collection" in table}

    def preprocess_calratio_slice(self, name: str) -> dict:
        """params of preprocess_calratio: the keys its preprocessing reads. The whole model had been passed,
        so an edit of lstm_units or ks_threshold re-ran the preprocessing (flows never did)."""
        return self.model_slice(name, ("conditions", "preprocessing", "weight", "split"))

    def calratio_tables(self, name: str, region: str) -> list[str]:
        """Ingested tables of a CalRatio model's main (`dataset`) or control (`control_dataset`) region."""
        model = self.model(name)
        return self.ingested_tables(model[region], model["table"])

    def calratio_layout(self, name: str) -> dict:
        """params slice of preprocess_calratio: the table's sequences and both datasets' identity branches."""
        model = self.model(name)
        main = self.config["datasets"][model["dataset"]]
        return {"sequences": main["tables"][model["table"]].get("sequences", {}), **self.calratio_identity(name)}

    def calratio_identity(self, name: str) -> dict:
        """The main and control datasets' identity branches: what names a CalRatio jet's event."""
        model = self.model(name)
        return {"identity": self.identity(model["dataset"]), "control_identity": self.identity(model["control_dataset"])}

    def generation_model_slice(self, name: str) -> dict:
        """params of generate/validate: the model's variables, not its training settings."""
        return self.model_slice(name, ("kind", "conditions", "targets", "derived", "categorised", "weight"))

    def generation_settings(self, name: str) -> dict:
        """params of generate: the one validation key generation reads, for the models that read it (the
        categorised SHiP model: the others generate one row per test row). Every model had carried it, so
        an edit re-ran every generation and validation."""
        if not self.model(name).get("categorised", False):
            return {}
        return {"generated_events": self.config["validation"]["generated_events"]}

    def export_settings(self, kind: str) -> dict:
        """params of a kind's export rule: the ``export`` slice, without ``c`` for the kinds it does not apply
        to, so switching it reruns only the exports it changes (it had rerun all five)."""
        return {key: value for key, value in self.config["export"].items() if key != "c" or MODEL_KINDS[kind].c_export}

    def model_output_layout(self, name: str) -> dict:
        """params of generate/validate: the tree, identity branches and table of the model's dataset."""
        model = self.model(name)
        dataset = self.config["datasets"][model["dataset"]]
        return {"tree": dataset["tree"], "identity": self.identity(model["dataset"]),
                "table": dataset["tables"][model["table"]]}

    def model_branches(self, name: str) -> dict[str, str]:
        """params of export: {column: branch} of the model's flat columns that ``rename`` renamed, recorded in
        bundle.json as io.branches so that run_bundle.py reads the user's own file (it had looked for
        ``jet_pt`` in an ntuple whose branch is ``jet_pT``)."""
        from pipeline_steps.generate.layout import input_branches

        return input_branches(self.model_output_layout(name)["table"])

    # --- provenance ------------------------------------------------------------------------------

    def model_artifacts(self, name: str, bundles_built: bool) -> list[str]:
        """Files that stand for a finished model in provenance.json: the trained file, the generated ROOT file
        (of a generative model: the sample an analysis uses), the validation metrics and, if any, the bundle."""
        files = [self.trained_model_file(name)]
        if name in self.generative_model_names():
            files.append(f"results/generate/{name}/generated.root")
        files.append(f"results/validate/{name}/metrics.json")
        if bundles_built:
            files.append(f"results/export/{name}/bundle.json")
        return files

    def provenance_raw_checksums(self) -> list[str]:
        """Input of provenance: the sha256 JSONs of every raw ROOT file a model was trained on (blacklist removed)."""
        return sorted({path for model in self.config["models"] for path in self.model_raw_checksums(model)})

    def provenance_model_slices(self, bundles_built: bool) -> dict:
        """params of the provenance job: per model its config slice, raw inputs, artifacts."""
        return {
            model: {
                "config": self.provenance_config(model),
                "raw_inputs": self.model_raw_files(model),
                "outputs": self.model_artifacts(model, bundles_built),
            }
            for model in self.config["models"]
        }

    def provenance_config(self, name: str) -> dict:
        """What made a model's artifacts: its entry, the datasets it reads, the blacklist and, for a generative
        model, the validation settings its metrics (and SHiP's generated_events) come from."""
        config = {
            "model": self.model(name),
            "datasets": {ds: {key: value for key, value in self.config["datasets"][ds].items() if key not in HOW_NOT_WHAT}
                         for ds in self.model_datasets(name)},
            "blacklist": self.config.get("blacklist", []),
        }
        if name in self.generative_model_names():
            config["validation"] = self.config["validation"]
        return config


def _preprocessing_names(config: Mapping[str, Any], scans: Mapping[str, Any]) -> dict[str, str]:
    """{model: preprocessing name}: for a scan's point, the scan's name followed by the point's
    ``preprocessing`` keys (``jets`` for every point that sets none, ``jets__default-minmax`` for the
    points that set ``preprocessing.default: minmax``, whatever else they set), else the model's own name.
    A key set to the scanned model's own value names nothing (``ScanGroup.preprocessing``): a point of
    ``preprocessing.default: standard`` beside points that set no default shares their preprocessing.

    A scan may not set what the preprocessing reads besides ``preprocessing`` (``conditions``, ``targets``,
    ``derived``, ``split``, ``weight``, ``categorised``, ``dataset``, ``table`` are refused:
    ``scan.expansion.UNSCANNABLE``), so points with the same ``preprocessing`` keys have one preprocessing;
    each point had run it again and kept its own copy of the splits, N times the job and the disk for an
    N-point grid. The name follows from the point alone, so adding or removing points moves nothing.
    ``WorkflowPlan.check_shared_preprocessing`` verifies that the points sharing a name have one slice.
    """
    from pipeline_steps.scan.expansion import instance_name

    names = {model: model for model in config["models"]}
    for group in scans.values():
        for instance in group.points:
            names[instance] = instance_name(group.model, group.preprocessing.get(instance, {}))
    return names
