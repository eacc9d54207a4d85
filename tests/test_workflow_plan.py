"""The config contract the rules rely on (pipeline_steps/workflow_plan.py) and the model-kind registry."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.common.source_hash import source_hash
from pipeline_steps.model_kinds import MODEL_KINDS, STAGE_MODULES, kind_of
from pipeline_steps.workflow_plan import TOY_FILES_PER_JOB, WorkflowPlan

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture
def plan():
    return WorkflowPlan(copy.deepcopy(CONFIG))


def test_training_slice_holds_only_the_keys_the_trainer_reads(plan):
    jets = plan.training_slice("jets")
    assert set(jets) == {"conditions", "targets", "hyperparameters", "training"}  # jets: no weight, not categorised
    ship = plan.training_slice("ship_muons")
    assert ship["categorised"] is True and ship["weight"] == "weight"
    assert set(plan.training_slice("tracks_cov")) == {"conditions", "targets", "hyperparameters", "training"}
    assert "preprocessing" in plan.training_slice("calratio")


def test_calratio_training_leaves_the_epoch_selections_keys_to_the_selection(plan):
    """ks_threshold and selection_metric had been training params: changing one retrained from scratch."""
    plan.model("calratio")["training"].update(ks_threshold=0.2, selection_metric="val_main_acc")
    training = plan.training_slice("calratio")["training"]
    assert not {"ks_threshold", "selection_metric"} & set(training) and "num_splits" in training
    assert plan.model_slice("calratio", ("training",))["training"]["ks_threshold"] == 0.2  # the selection's params


def test_calratio_preprocessing_gets_only_what_it_reads(plan):
    """The whole model had been its params: a hyperparameter edit re-ran the preprocessing."""
    assert set(plan.preprocess_calratio_slice("calratio")) <= {"conditions", "preprocessing", "weight", "split"}
    edited = copy.deepcopy(CONFIG)
    edited["models"]["calratio"]["hyperparameters"]["lstm_units"] = 99
    edited["models"]["calratio"]["training"]["ks_threshold"] = 0.01
    assert WorkflowPlan(edited).preprocess_calratio_slice("calratio") == plan.preprocess_calratio_slice("calratio")


def test_export_c_reaches_only_the_kinds_with_a_c_export():
    plan = WorkflowPlan({**copy.deepcopy(CONFIG), "export": {**CONFIG["export"], "c": True}})
    assert plan.export_settings("covariance_gan")["c"] is True
    assert "c" not in plan.export_settings("flow") and "c" not in plan.export_settings("calratio_rnn")
    assert {k: v for k, v in plan.export_settings("covariance_gan").items() if k != "c"} == plan.export_settings("flow")


def test_training_threads_are_the_configs_and_default_to_one(plan):
    """The rule's threads are what the trainer runs with: Snakemake packs jobs by them."""
    plan.model("jets")["training"]["threads"] = 3
    assert plan.training_threads("jets") == 3
    assert "threads" not in plan.model("nano_muons")["training"]
    assert plan.training_threads("nano_muons") == 1


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_a_bad_training_threads_value_is_refused_with_its_key(plan, value):
    plan.model("jets")["training"]["threads"] = value
    with pytest.raises(ConfigError, match=r"training\.threads: expected a positive integer"):
        plan.training_threads("jets")


def test_generative_models_exclude_the_classifier_and_keep_registry_order(plan):
    names = plan.generative_model_names()
    assert "calratio" not in names
    assert names.index("tracks_cov") < names.index("jets")  # covariance GAN first, then the flows


def test_trained_file_follows_the_kind(plan):
    assert plan.trained_model_file("jets") == "results/train/jets/model.pt"
    assert plan.trained_model_file("tracks_cov") == "results/train/tracks_cov/generator.keras"
    assert plan.trained_model_file("calratio") == "results/train/calratio/chosen.keras"


def test_toy_files_and_blacklist(plan):
    plan.config["blacklist"] = ["data/raw/ship/1.root", "nothing_matches_*.root"]
    stems = list(plan.raw_file_by_stem("ship"))
    assert "1" not in stems and "0" in stems
    assert plan.resolve_raw_files() == ["nothing_matches_*.root"]


def test_ingest_and_categorise_jobs_follow_the_parts(plan, tmp_path):
    for index in range(10):
        (tmp_path / f"run{index}.root").touch()
    plan.config["datasets"]["ship"] = {**plan.config["datasets"]["ship"], "files": [str(tmp_path / "*.root")],
                                       "ingest_parts": 3}
    parts = plan.ingest_parts("ship")
    assert len(parts) <= 3 and sorted(sum(parts.values(), [])) == plan.raw_files("ship")
    assert plan.ingested_tables("ship", "muons") == [f"results/ingest/ship/muons/{part}.parquet" for part in parts]
    assert plan.categorise_minmax_partials("ship") == [f"results/categorise/ship/minmax/{part}.json" for part in parts]
    assert plan.part_files("ship", next(iter(parts))) == parts[next(iter(parts))]
    with pytest.raises(ValueError, match="no ingest part 'part7'"):
        plan.part_files("ship", "part7")


def test_an_ingest_part_names_each_file_by_its_stem_with_folders_where_names_repeat(plan, tmp_path):
    for job in range(4):
        (tmp_path / f"job_{job}").mkdir()
        (tmp_path / f"job_{job}" / "out.root").touch()
    (tmp_path / "extra.root").touch()
    plan.config["datasets"]["ship"] = {**plan.config["datasets"]["ship"], "ingest_parts": 2,
                                       "files": [str(tmp_path / "*.root"), str(tmp_path / "*" / "out.root")]}
    names = {}
    for part, files in plan.ingest_parts("ship").items():
        names.update(zip(files, plan.part_source_files("ship", part), strict=True))
    assert names == {str(tmp_path / "extra.root"): "extra.root",
                     **{str(tmp_path / f"job_{job}" / "out.root"): f"job_{job}/out.root" for job in range(4)}}


def test_toy_jobs_only_for_datasets_without_files(plan, tmp_path):
    (tmp_path / "a.root").touch()
    plan.config["datasets"]["ship"] = {**plan.config["datasets"]["ship"], "files": [str(tmp_path / "*.root")]}
    assert "ship" not in plan.toy_datasets() and "nanoaod" in plan.toy_datasets()
    n_files = plan.config["datasets"]["nanoaod"]["toy"]["n_files"]
    assert plan.toy_files("nanoaod") == [f"data/raw/nanoaod/{index}.root" for index in range(n_files)]
    del plan.config["datasets"]["lhcb_tracks"]["toy"]
    with pytest.raises(ValueError, match="neither `files` nor a `toy` section"):
        plan.toy_files("lhcb_tracks")


def test_a_small_toy_dataset_is_one_toy_job_in_file_order(plan):
    n_files = plan.config["datasets"]["nanoaod"]["toy"]["n_files"]
    assert plan.toy_jobs("nanoaod") == [("nanoaod", plan.toy_files("nanoaod"))]
    assert n_files < TOY_FILES_PER_JOB


@pytest.mark.parametrize("n_files, n_parts, split",
                         [(1000, 64, True), (250, 64, True), (250, 3, False), (199, 64, False)])
def test_a_large_toy_dataset_is_split_along_its_ingest_parts(plan, n_files, n_parts, split):
    """Each ingest part reads one toy job's files, so rewriting one job re-ingests its parts only; every file,
    the blacklisted one too, is written by exactly one job of at least TOY_FILES_PER_JOB files."""
    plan.config["datasets"]["ship"]["toy"]["n_files"] = n_files
    plan.config["datasets"]["ship"]["ingest_parts"] = n_parts
    plan.config["blacklist"] = ["data/raw/ship/3.root"]
    jobs = plan.toy_jobs("ship")
    job_of = {file: name for name, files in jobs for file in files}
    assert sorted(job_of) == sorted(plan.toy_files("ship")) and sum(len(files) for _, files in jobs) == n_files
    assert [name for name, _ in jobs] == ["ship"] + [f"ship_{n}" for n in range(1, len(jobs))]
    assert len(jobs) <= max(1, n_files // TOY_FILES_PER_JOB) and (len(jobs) > 1) == split  # 250 in 3 parts: 83+83+84
    assert all(len(files) >= TOY_FILES_PER_JOB for _, files in jobs) and "data/raw/ship/3.root" in job_of
    for part, files in plan.ingest_parts("ship").items():
        assert len({job_of[file] for file in files}) == 1, part
    for _, files in jobs:
        indices = [int(Path(file).stem) for file in files]
        assert indices == sorted(indices)


def test_files_read_once_per_dataset(plan, tmp_path):
    for index in range(3):
        (tmp_path / f"run{index}.root").touch()
    plan.config["datasets"]["nanoaod"]["files"] = [str(tmp_path / "*.root")]
    assert list(plan.raw_file_by_stem("nanoaod")) == ["run0", "run1", "run2"]
    (tmp_path / "run3.root").touch()  # appears after planning started: not part of this plan
    assert plan.raw_files("nanoaod") == [str(tmp_path / f"run{index}.root") for index in range(3)]


def test_categorised_model_reads_the_category_tables(plan):
    inputs = plan.preprocess_model_inputs("ship_muons")
    assert inputs["tables"] == [f"results/categorise/ship/cat{c}.parquet" for c in (1, 2, 3, 4)]
    assert plan.model_categories("ship_muons") == ["results/categorise/ship/categories.json"]
    assert plan.model_categories("jets") == []


def test_only_the_categorised_model_reads_the_generated_event_count(plan):
    assert plan.generation_settings("ship_muons") == {"generated_events": CONFIG["validation"]["generated_events"]}
    assert plan.generation_settings("jets") == {} and plan.generation_settings("tracks_cov") == {}


def test_provenance_lists_the_generated_sample_and_the_settings_behind_its_metrics(plan):
    """generated.root is what an analysis uses: make verify must see it drift, and the validation settings
    behind metrics.json are part of what made it (the classifier neither generates nor reads them)."""
    jets = plan.provenance_model_slices(bundles_built=True)["jets"]
    assert jets["outputs"] == ["results/train/jets/model.pt", "results/generate/jets/generated.root",
                               "results/validate/jets/metrics.json", "results/export/jets/bundle.json"]
    assert jets["config"]["validation"] == CONFIG["validation"]
    calratio = plan.provenance_model_slices(bundles_built=False)["calratio"]
    assert calratio["outputs"] == [plan.trained_model_file("calratio"), "results/validate/calratio/metrics.json"]
    assert "validation" not in calratio["config"]


def test_every_schema_kind_is_registered():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    kinds = set(schema["$defs"]["model"]["properties"]["kind"]["enum"])
    assert kinds == set(MODEL_KINDS)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_registry_entry_names_real_modules_and_env(kind):
    entry = MODEL_KINDS[kind]
    assert (REPO / "envs" / f"{entry.env}.yaml").exists()
    for stage in STAGE_MODULES:
        assert source_hash(*entry.code_modules(stage))  # raises FileNotFoundError for a missing module


def test_generative_kinds_hash_the_same_generation_code():
    """Both generative kinds run generate/step.py: only their model module may differ."""
    shared = [set(k.code_modules("generate")) - {k.model_module} for k in MODEL_KINDS.values() if k.generative]
    assert all(modules == shared[0] for modules in shared)


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="covariance_gan"):
        kind_of({"kind": "diffusion"})


def test_export_records_the_branches_of_renamed_flat_columns(plan):
    """run_bundle.py reads the user's own file through them (bundle.json io.branches)."""
    assert plan.model_branches("tracks_cov") == {}
    config = copy.deepcopy(CONFIG)
    config["datasets"]["lhcb_tracks"]["tables"]["tracks"]["rename"] = {"x": "pos_x"}
    assert WorkflowPlan(config).model_branches("tracks_cov") == {"pos_x": "x"}


def test_a_scans_points_share_one_preprocessing_unless_they_set_a_preprocessing_key():
    from pipeline_steps.scan.expansion import expand_scans

    config = copy.deepcopy(CONFIG)
    config["models"]["jets"]["scan"] = {"grid": {"hyperparameters.hidden_dim": [16, 32]},
                                        "points": [{"preprocessing.per_variable.gen_pt": "standard"}]}
    plan = WorkflowPlan(config, expand_scans(config))
    shared, own = ["jets__hidden_dim-16", "jets__hidden_dim-32"], "jets__gen_pt-standard"
    assert [plan.preprocessing_name(name) for name in shared] == ["jets", "jets"]
    assert plan.preprocessing_name(own) == own and plan.preprocessing_name("tracks_cov") == "tracks_cov"
    assert plan.preprocessing_names([*shared, own, "tracks_cov"]) == ["jets", own, "tracks_cov"]
    # the shared job reads the slice and inputs every sharing point has
    representative = plan.preprocessed_model("jets")
    assert representative in shared
    assert all(plan.preprocess_model_slice(name) == plan.preprocess_model_slice(representative) for name in shared)
    assert plan.preprocess_model_slice(own)["preprocessing"] != plan.preprocess_model_slice(representative)["preprocessing"]


def test_points_with_the_same_preprocessing_keys_share_theirs_and_a_differing_slice_is_refused():
    from pipeline_steps.scan.expansion import expand_scans

    config = copy.deepcopy(CONFIG)
    config["models"]["jets"]["scan"] = {"grid": {"preprocessing.default": ["standard", "minmax"],
                                                 "hyperparameters.hidden_dim": [16, 32]}}
    assert config["models"]["jets"]["preprocessing"]["default"] == "standard"
    plan = WorkflowPlan(config, expand_scans(config))
    names = {model: plan.preprocessing_name(model) for model in plan.generative_model_names() if "__" in model}
    # 4 points, 2 jobs; `standard` is the scanned model's own default, so those points name no key of theirs
    assert names == {"jets__default-standard__hidden_dim-16": "jets", "jets__default-standard__hidden_dim-32": "jets",
                     "jets__default-minmax__hidden_dim-16": "jets__default-minmax",
                     "jets__default-minmax__hidden_dim-32": "jets__default-minmax"}
    plan.check_shared_preprocessing()
    # a slice that came to read a key the scan sets would give every point the first one's splits: refused
    original = plan.preprocess_model_slice
    plan.preprocess_model_slice = lambda name: {**original(name), "hyperparameters": plan.model(name)["hyperparameters"]}
    with pytest.raises(ConfigError, match=r"share the preprocessing 'jets(__default-minmax)?' but"):
        plan.check_shared_preprocessing()


def test_a_point_that_sets_the_models_own_preprocessing_value_shares_the_scans_preprocessing():
    """One job for one set of files: `preprocessing.default: standard` beside points that set no default
    had made a second, identical preprocessing. A value of another type (True for 1) keeps its own."""
    from pipeline_steps.scan.expansion import expand_scans

    config = copy.deepcopy(CONFIG)
    config["models"]["jets"]["scan"] = {"points": [{"hyperparameters.hidden_dim": 16},
                                                   {"hyperparameters.hidden_dim": 32, "preprocessing.default": "standard"},
                                                   {"preprocessing.default": "minmax"}]}
    plan = WorkflowPlan(config, expand_scans(config))
    points = ["jets__hidden_dim-16", "jets__default-standard__hidden_dim-32", "jets__default-minmax"]
    assert plan.preprocessing_names(points) == ["jets", "jets__default-minmax"]
    plan.check_shared_preprocessing()  # the two sharing "jets" have one slice
    assert plan.preprocess_model_slice("jets__hidden_dim-16") == \
        plan.preprocess_model_slice("jets__default-standard__hidden_dim-32")


def test_a_model_named_like_a_shared_preprocessing_is_refused():
    from pipeline_steps.scan.expansion import expand_scans

    config = copy.deepcopy(CONFIG)
    config["models"]["jets"]["scan"] = {"grid": {"hyperparameters.hidden_dim": [16, 32]}}
    config["models"]["jets__default-minmax"] = copy.deepcopy(CONFIG["models"]["jets"])
    config["models"]["jets"]["scan"]["grid"]["preprocessing.default"] = ["minmax"]
    plan = WorkflowPlan(config, expand_scans(config))
    with pytest.raises(ConfigError, match=r"models.jets__default-minmax: its name is also the shared preprocessing"):
        plan.check_shared_preprocessing()


def test_read_threads_are_the_ingest_jobs_threads_and_in_no_params(plan):
    """Decompression threads change no byte: in a params (provenance's dataset slice had carried them) a
    change would rerun jobs and rewrite provenance.json."""
    before = copy.deepcopy(plan.provenance_model_slices(bundles_built=True))  # the slices hold the config's dicts
    assert plan.ingest_threads("nanoaod") == 1
    plan.config["datasets"]["nanoaod"]["read_threads"] = 4
    assert plan.ingest_threads("nanoaod") == 4
    assert plan.provenance_model_slices(bundles_built=True) == before
    assert plan.ingest_reading("nanoaod") == WorkflowPlan(copy.deepcopy(CONFIG)).ingest_reading("nanoaod")
