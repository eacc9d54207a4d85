"""The config contract: bad configs fail before any job runs, with the key path named."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.workflow_config import check_job_interpreter_path, drop_null_entries, validate_config
from tests.conftest import REPO, run_snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
JETS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]["jets"]
TRACKS_CONDITIONS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]["tracks_cov"]["conditions"]


@pytest.fixture
def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _break(config: dict, path: str, value) -> dict:
    broken = copy.deepcopy(config)
    *parents, leaf = path.split(".")
    node = broken
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return broken


_DELETE = object()


def test_default_and_production_configs_are_valid(default_config):
    validate_config(default_config, SCHEMA)
    production = yaml.safe_load((REPO / "config" / "production.yaml").read_text())
    merged = _merge(default_config, production)
    validate_config(merged, SCHEMA)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("models.jets.training.epochs", "ten", "models.jets.training.epochs: expected integer, got 'ten'"),
        ("models.jets.hyperparametres", {}, "models.jets: Additional properties are not allowed ('hyperparametres'"),
        ("datasets.nanoaod.tree", _DELETE, "datasets.nanoaod: missing required key: 'tree'"),
        ("validation.classifier", "xgboost", "validation.classifier: expected one of ['exact', 'hist'], got 'xgboost'"),
        ("models.jets.dataset", "nanoAOD", "models.jets.dataset: expected one of the datasets"),
        ("models.jets.split", {"train": 0.8, "validation": 0.3, "test": 0.1}, "models.jets.split: fractions must add up to 1"),
        ("models.jets.split", {"train": 0.9, "validation": 0.0, "test": 0.1}, "models.jets.split.validation: 0.0 is less "
         "than or equal to the minimum of 0"),
        ("seed", -1, "seed: -1 is less than the minimum of 0"),
        # an unconditional flow trained and generated, then its ONNX graph lost the empty conditions input
        ("models.jets.conditions", [], "models.jets.conditions: [] should be non-empty"),
        ("datasets.ship.tables.muons.match.collection", {"counter": "nMCTrack"}, "datasets.ship.tables.muons.match.collection: missing required key: 'prefix'"),
        # no counter (std::vector branches) is allowed, an empty name is not
        ("datasets.ship.tables.muons.match.collection", {"counter": "", "prefix": "MCTrack_"}, "datasets.ship.tables.muons.match.collection.counter: '' should be non-empty"),
        # whole numbers written as floats had passed the schema and stopped in range() or a format code
        ("datasets.nanoaod.toy.n_files", 2.0, "datasets.nanoaod.toy.n_files: expected integer, got 2.0"),
        ("datasets.nanoaod.ingest_parts", 2.0, "datasets.nanoaod.ingest_parts: expected integer, got 2.0"),
        ("seed", True, "seed: expected integer, got True"),
        # what YAML makes of 1e4 and 1e-3: strings
        ("datasets.nanoaod.step_size", "1e4", "datasets.nanoaod.step_size: expected integer, got '1e4' (YAML reads "
         "'1e4' as a string: write the number with a dot and a signed exponent, e.g. 1.0e-3 or 1.0e+4, or in full)"),
        ("models.jets.training.learning_rate", "1e-3", "models.jets.training.learning_rate: expected a positive number, "
         "or {network: positive number} for the GAN and CalRatio kinds, got '1e-3' (YAML reads '1e-3' as a string"),
        ("models.jets.training.learning_rate", -1.0e-3, "models.jets.training.learning_rate: expected a positive "
         "number, or {network: positive number} for the GAN and CalRatio kinds, got -0.001"),
        ("models.jets.targets", [], "models.jets.targets: [] should be non-empty"),
        ("models.jets.preprocessing.clip", {"gen_mass": [0.0, None], "ptRatio": [3.0, 0.0]},
         "models.jets.preprocessing.clip.ptRatio: expected low < high, got [3.0, 0.0]"),
        ("models.jets.control_dataset", "calratio_cr", "models.jets.control_dataset: only kind calratio_rnn has a "
         "control region; kind is 'flow'"),
        # a warm-restart period under the plain cosine scheduler had trained without a word about it
        ("models.jets.training.restart_epochs", 2, "models.jets.training.restart_epochs: the period of scheduler "
         "cosine_warm_restarts, which scheduler 'cosine' ignores"),
        # a typo had been found by the epoch selection, after the whole training; -5 had turned the KS cut off
        ("models.calratio.training.selection_metric", "val_auc", "models.calratio.training.selection_metric: "
         "expected one of ['loss', 'main_loss'"),
        ("models.calratio.training.ks_threshold", -5, "models.calratio.training.ks_threshold: -5 is less than or "
         "equal to the minimum of 0"),
        ("datasets.ship.toy.rogue_file", 4, "datasets.ship.toy.rogue_file: 4 is not one of the 4 toy files (0 .. 3)"),
        ("validation.thresholds.ks_max", {"warn": 0.2, "fail": 0.1}, "validation.thresholds.ks_max: fail (0.1) below "
         "warn (0.2)"),
        ("datasets.nanoaod.tables.jets.fields", [], "datasets.nanoaod.tables.jets.fields: [] should be non-empty"),
        ("models.jets.hyperparameters.hiden_dim", 32, "models.jets.hyperparameters: Additional properties are not "
         "allowed ('hiden_dim' was unexpected) (allowed keys: activation, batch_norm, hidden_dim, n_bins, n_blocks)"),
        # a mistyped hyperparameter had passed planning and stopped the training job (or a scan's points)
        ("models.jets.hyperparameters.hidden_dim", "sixty-four", "models.jets.hyperparameters.hidden_dim: expected "
         "integer, got 'sixty-four'"),
        ("models.jets.hyperparameters.hidden_dim", [16, 32], "models.jets.hyperparameters.hidden_dim: expected "
         "integer, got [16, 32]"),
        ("models.calratio.hyperparameters.conv_filters", [16, "x"], "models.calratio.hyperparameters.conv_filters.1: "
         "expected integer, got 'x'"),
        ("models.tracks_cov.hyperparameters.optimizer", "sgd", "models.tracks_cov.hyperparameters.optimizer: expected "
         "one of ['rmsprop', 'adam'], got 'sgd'"),
        ("models.tracks_cov.hyperparameters.hiden", 32, "models.tracks_cov.hyperparameters: Additional properties are "
         "not allowed ('hiden' was unexpected)"),  # the GAN had ignored it
        ("models.tracks_cov.hyperparameters.generator_learning_rate", 1.0e-4, "learning rates are training settings: "
         "training.learning_rate"),
        ("models.jets.training.num_splits", 3, "models.jets.training: expected one of ['epochs', 'batch_size', "),
        ("models.jets.training.learning_rate", {"main": 1.0e-3}, "models.jets.training.learning_rate: expected number, "
         "got {'main': 0.001}"),
        ("models.tracks_cov.training.learning_rate", 1.0e-3, "models.tracks_cov.training.learning_rate: expected "
         "object, got 0.001"),
        ("models.tracks_cov.training.learning_rate", {"gen": 1.0e-3}, "models.tracks_cov.training.learning_rate: "
         "expected one of ['generator', 'discriminator', 'referee'], got 'gen'"),
        ("models.jets.categorised", True, "models.jets.categorised: the SHiP muon categorisation reads ['PdgCode', "),
        ("models.ship_muons.conditions", ["category", "Px"], "models.ship_muons.conditions: a categorised model has "
         "the one condition [category], got ['category', 'Px']"),
        ("models.jets.training.epoch", 3, "models.jets.training: Additional properties are not allowed ('epoch' was "
         "unexpected) (allowed keys: batch_size, checkpoint_every, early_stopping, epochs, ks_threshold"),
        # a model's variables against its table's columns and each other: at planning, naming the key
        ("models.jets.conditions", [c.replace("gen_phi", "genphi") for c in JETS["conditions"]],
         "models.jets.conditions: ['genphi'] are not columns of datasets.nanoaod.tables.jets; it has ['source_file', "),
        ("models.jets.targets", [t.replace("btagCSVV2", "btagCSV") for t in JETS["targets"]], "models.jets.targets: ['btagCSV'] are not columns of "
         "datasets.nanoaod.tables.jets"),
        ("models.jets.derived.ptRatio", {"op": "ratio", "of": ["ptt", "gen_pt"]}, "models.jets.derived.ptRatio.of: "
         "['ptt'] are not columns of datasets.nanoaod.tables.jets"),
        ("models.jets.weight", "genWeight", "models.jets.weight: ['genWeight'] are not columns of datasets.nanoaod"),
        ("models.jets.targets", [*JETS["targets"], "gen_eta"], "models.jets: ['gen_eta'] are both conditions and targets"),
        ("models.jets.preprocessing.per_variable", {"gen_ptt": "log_standard"},
         "models.jets.preprocessing.per_variable: ['gen_ptt'] are neither conditions nor targets"),
        ("models.tracks_cov.conditions", [c.replace("z", "zz") if c == "z" else c for c in TRACKS_CONDITIONS], "models.tracks_cov.conditions: ['zz'] are not columns of "
         "datasets.lhcb_tracks.tables.tracks"),
        # transform settings that only the config decides: at planning, not after ingestion
        ("models.jets.preprocessing.log_offset", {"gen_eta": 1.0}, "models.jets.preprocessing.log_offset.gen_eta: only "
         "the log transforms ['log_standard', 'log10_quantile_normal'] take an offset; 'gen_eta' has 'standard'"),
        ("models.jets.preprocessing.log_offset", {"gen_mass": float("inf")},
         "models.jets.preprocessing.log_offset.gen_mass: expected a finite number, got inf"),
        ("models.jets.preprocessing.clip", {"gen_mass": [-2.0, None]}, "models.jets.preprocessing.clip.gen_mass: "
         "log_standard needs clip low + log_offset > 0 (the log of the clipped values must exist), got -2 + 1"),
        ("models.ship_muons.preprocessing.log_offset", {"Pz": 1.0}, "models.ship_muons.preprocessing.log_offset.Pz: "
         "only the log transforms"),
        ("models.jets.preprocessing.target_representation", "cholesky", "models.jets.preprocessing.target_"
         "representation='cholesky' needs the 15 covariance elements as targets (cov_00 .. cov_44), got 17 targets"),
        # bounded sums name physical targets (a derived one by its source), continuous, with the support on
        ("models.jets.preprocessing.bounded_sums", [["ptRatio", "area"]], "models.jets.preprocessing.bounded_sums "
         "['ptRatio', 'area']: expected two or more of the model's physical targets ['pt', "),
        ("models.jets.preprocessing.bounded_sums", [["chHEF", "jetId"]], "models.jets.preprocessing.bounded_sums "
         "['chHEF', 'jetId']: ['jetId'] are dequantised (discrete)"),
        ("models.jets.preprocessing.support", False, "models.jets.preprocessing.bounded_sums: applied with the "
         "training support, which this model has not (support: false)"),
        ("models.jets.preprocessing.bounded_sums", [["chHEF"]], "models.jets.preprocessing.bounded_sums ['chHEF']: "
         "expected two or more of the model's physical targets"),
        ("models.ship_muons.preprocessing.bounded_sums", [["Px", "Py"]], "models.ship_muons.preprocessing."
         "bounded_sums: applied with the training support, which this model has not (categorised)"),
    ],
)
def test_bad_config_names_the_key(default_config, path, value, expected):
    with pytest.raises(ConfigError) as error:
        validate_config(_break(default_config, path, value), SCHEMA)
    assert expected in str(error.value)


def test_all_problems_are_reported_at_once(default_config):
    broken = _break(_break(default_config, "seed", "x"), "export.opset", 3)
    with pytest.raises(ConfigError) as error:
        validate_config(broken, SCHEMA)
    assert "seed:" in str(error.value) and "export.opset:" in str(error.value)


def test_snakemake_refuses_bad_config_before_any_job(tmp_path):
    override = tmp_path / "bad.yaml"
    override.write_text("models:\n  jets:\n    training: {epochs: 0}\n")
    result = run_snakemake("-n", "--configfile", str(override), workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert "models.jets.training.epochs" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_override_file_merges_nested_keys(tmp_path):
    """A user's small override (one dataset pointed at real files) keeps every other default."""
    real = tmp_path / "my_muons"
    real.mkdir()
    for name in ("a.root", "b.root"):
        (real / name).write_bytes(b"")
    override = tmp_path / "mine.yaml"
    override.write_text(f"datasets:\n  ship:\n    files: ['{real}/*.root']\n")
    result = run_snakemake("-n", "--configfile", str(override), "--quiet", "all", workdir=tmp_path)
    assert result.returncode == 0


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_null_in_an_override_leaves_a_named_entry_out(default_config):
    """A target dropped from a model takes its derived and clip entries with it; merging alone kept them."""
    jets = default_config["models"]["jets"]
    override = {"models": {"tracks_cov": None,
                           "jets": {"targets": [t for t in jets["targets"] if t != "massRatio"],
                                    "derived": {"massRatio": None},
                                    "preprocessing": {"clip": {"massRatio": None}}}},
                "datasets": {"lhcb_tracks": None}}
    merged = _merge(default_config, override)
    with pytest.raises(ConfigError, match="massRatio"):  # what a user met before: the clip names no variable
        validate_config(merged, SCHEMA)
    dropped = drop_null_entries(merged, SCHEMA)
    assert sorted(dropped) == [("datasets", "lhcb_tracks"), ("models", "jets", "derived", "massRatio"),
                               ("models", "jets", "preprocessing", "clip", "massRatio"), ("models", "tracks_cov")]
    validate_config(merged, SCHEMA)
    assert "tracks_cov" not in merged["models"] and "lhcb_tracks" not in merged["datasets"]
    assert set(merged["models"]["jets"]["preprocessing"]["clip"]) == {"gen_mass", "ptRatio"}
    assert drop_null_entries(merged, SCHEMA) == []


@pytest.mark.parametrize("path", ["validation.bins", "models.jets.kind", "models.jets.preprocessing",
                                  "datasets.nanoaod.tables.jets.selection"])
def test_null_for_a_fixed_key_is_not_an_entry_to_drop(default_config, path):
    """Only entries the user names are dropped; a null setting stays for the validation (or is a value)."""
    broken = _break(default_config, path, None)
    assert drop_null_entries(broken, SCHEMA) == []
    if path.endswith("selection"):  # `selection: null` means no selection
        validate_config(broken, SCHEMA)
    else:
        with pytest.raises(ConfigError, match=re.escape(path)):
            validate_config(broken, SCHEMA)


def test_a_dataset_left_out_that_a_model_still_reads_is_named(default_config):
    broken = _break(default_config, "datasets.lhcb_tracks", None)
    drop_null_entries(broken, SCHEMA)
    with pytest.raises(ConfigError, match=r"models\.tracks_cov\.dataset.*lhcb_tracks"):
        validate_config(broken, SCHEMA)


def test_null_entries_follow_references_and_the_keys_beside_them(tmp_path):
    """A mapping of named entries reached through a $ref, or declared beside one, drops its null entries too."""
    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump({
        "type": "object",
        "properties": {"plain": {"$ref": "#/$defs/named"},
                       "beside": {"$ref": "#/$defs/fixed", "additionalProperties": {"type": "integer"}}},
        "$defs": {"named": {"type": "object", "additionalProperties": {"type": "integer"}},
                  "fixed": {"type": "object"}}}))
    config = {"plain": {"a": 1, "b": None}, "beside": {"c": None, "d": 2}}
    assert sorted(drop_null_entries(config, schema)) == [("beside", "c"), ("plain", "b")]
    assert config == {"plain": {"a": 1}, "beside": {"d": 2}}


def test_a_null_for_an_entry_no_config_file_has_is_a_misspelt_name(tmp_path):
    """models: {tracks_covv: null} had printed 'left out' while tracks_cov still ran."""
    from pipeline_steps.workflow_config import check_dropped_entries_exist, check_unique_keys

    override = tmp_path / "mine.yaml"
    override.write_text("models: {tracks_covv: null, jets: null}\ndatasets: {nanoaod: {tables: {jets: "
                        "{rename: {trk.pt: null}}}}}\n")
    documents = check_unique_keys([REPO / "config" / "config.yaml", override])
    check_dropped_entries_exist([("models", "jets")], documents)
    with pytest.raises(ConfigError, match=r"models\.tracks_covv: null leaves out an entry, but no config file .* "
                                          r"gives one of this name; a misspelt name\?"):
        check_dropped_entries_exist([("models", "jets"), ("models", "tracks_covv")], documents)
    with pytest.raises(ConfigError, match=r"rename\.trk\.pt: null"):  # a dotted name is one key
        check_dropped_entries_exist([("datasets", "nanoaod", "tables", "jets", "rename", "trk.pt")], documents)
    result = run_snakemake("-n", "--configfile", str(override), workdir=tmp_path, check=False)
    assert result.returncode != 0 and "models.tracks_covv: null leaves out an entry" in result.stdout + result.stderr


def test_snakemake_plans_without_the_models_an_override_leaves_out(tmp_path):
    override = tmp_path / "nanoaod_only.yaml"
    override.write_text("models: {tracks_cov: null, ship_muons: null, calratio: null}\n"
                        "datasets: {lhcb_tracks: null, ship: null, calratio_main: null, calratio_cr: null}\n")
    result = run_snakemake("-n", "--configfile", str(override), workdir=tmp_path)
    assert "config: models.tracks_cov is null: left out" in result.stderr
    assert "is read by no model" not in result.stderr  # jets and nano_muons read both NanoAOD tables
    planned = result.stdout + result.stderr
    assert "results/train/jets/" in planned
    for left_out in ("tracks_cov", "ship_muons", "calratio", "lhcb_tracks"):
        assert f"/{left_out}/" not in planned and f"_{left_out}" not in planned, left_out


def test_a_table_no_model_reads_is_named_at_planning(tmp_path):
    """A jets-only user dropping nano_muons still had the muons table ingested, and on a skim without Muon_
    branches its ingestion failed with nothing saying that no model needs it."""
    override = tmp_path / "jets_only.yaml"
    override.write_text("models: {tracks_cov: null, ship_muons: null, calratio: null, nano_muons: null}\n"
                        "datasets: {lhcb_tracks: null, ship: null, calratio_main: null, calratio_cr: null}\n")
    result = run_snakemake("-n", "--configfile", str(override), workdir=tmp_path)
    assert ("config: datasets.nanoaod.tables.muons is read by no model: ingested all the same (null it to leave "
            "it out)") in result.stderr
    assert "tables.jets is read by no model" not in result.stderr


def test_an_event_field_kept_under_its_counters_name_is_refused_as_a_condition(default_config):
    """In the generated file the counter's branch counts the generated jets; the event field needs its own."""
    table = default_config["datasets"]["nanoaod"]["tables"]["jets"]
    table["event_fields"] = [*table["event_fields"], "nJet"]
    validate_config(default_config, SCHEMA)  # ingested but not generated: nothing collides
    default_config["models"]["jets"]["conditions"].append("nJet")
    refused = (r"datasets\.nanoaod\.tables\.jets\.event_fields: 'nJet' is also the counter a collection is written "
               r"with.*rename: \{nJet: nJet_event\}")
    with pytest.raises(ConfigError, match=refused):
        validate_config(default_config, SCHEMA)
    table["collection"]["counter"] = None  # std::vector jets: written with the counter n + prefix, nJet again
    with pytest.raises(ConfigError, match=refused):
        validate_config(default_config, SCHEMA)
    table["rename"] = {**table.get("rename", {}), "nJet": "nJet_event"}
    default_config["models"]["jets"]["conditions"][-1] = "nJet_event"
    default_config["models"]["jets"]["preprocessing"]["dequantize"].append("nJet_event")
    validate_config(default_config, SCHEMA)


def test_a_key_given_twice_names_the_file_and_both_lines(tmp_path):
    """YAML keeps the last of two equal keys silently; the workflow refuses the file instead."""
    from pipeline_steps.workflow_config import check_unique_keys

    override = tmp_path / "twice.yaml"
    override.write_text("validation:\n  bins: 50\n  generated_events: 100\n  generated_events: 200\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml: line 4: key 'generated_events' is already given on line 3"):
        check_unique_keys([override])
    nested_ok = tmp_path / "fine.yaml"
    nested_ok.write_text("a: {x: 1}\nb: {x: 2}\nbase: &b {y: 1}\nc: {<<: *b, z: 2}\n")
    check_unique_keys([nested_ok, REPO / "config" / "config.yaml", REPO / "config" / "production.yaml"])
    result = run_snakemake("-n", "--configfile", str(override), workdir=tmp_path, check=False)
    assert result.returncode != 0 and "key 'generated_events' is already given" in result.stdout + result.stderr


def test_an_interpreter_path_with_a_space_is_refused_unless_conda_runs_the_scripts():
    with pytest.raises(ConfigError, match="'/home/me/my analysis/.venv/bin/python'.*#2645"):
        check_job_interpreter_path("/home/me/my analysis/.venv/bin/python", uses_conda=False)
    check_job_interpreter_path("/home/me/my analysis/.venv/bin/python", uses_conda=True)  # the env's python runs
    check_job_interpreter_path("/home/me/analysis/.venv/bin/python", uses_conda=False)


def test_snakemake_from_a_venv_under_a_path_with_a_space_stops_before_any_job(tmp_path):
    """The Snakefile's check is wired: the same venv reached through a folder named with a space."""
    folder = tmp_path / "my analysis"
    folder.mkdir()
    (folder / "venv").symlink_to(Path(sys.executable).parents[1], target_is_directory=True)
    python = folder / "venv" / "bin" / Path(sys.executable).name  # sys.executable keeps the symlinked path
    result = subprocess.run([str(python), "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--cores", "1"],
                            capture_output=True, text=True, env=dict(os.environ, CONDOR_CONFIG="/dev/null"))
    assert result.returncode != 0
    assert "has whitespace in its path" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_the_schema_lists_the_keys_each_kind_reads():
    """The schema refuses unknown hyperparameters, training keys and networks per kind; its lists must be
    the code's, or a valid key would be refused (or a typo let through) at planning."""
    from dataclasses import fields

    from pipeline_steps.models.calratio_rnn import CalRatioHyperparameters
    from pipeline_steps.models.covariance_gan import _SIZE_KEYS
    from pipeline_steps.models.flow import FlowHyperparameters
    from pipeline_steps.train import calratio_rnn, covariance_gan, flow
    from pipeline_steps.train.settings import COMMON_KEYS

    schema = yaml.safe_load(SCHEMA.read_text())
    rules = {rule["if"]["properties"]["kind"]["const"]: rule["then"]["properties"] for rule in schema["$defs"]["model"]["allOf"]}
    assert {kind: set(rule["hyperparameters"]["properties"]) for kind, rule in rules.items()} == {
        "flow": {f.name for f in fields(FlowHyperparameters)},
        # the GAN trainer reads optimizer and label_smoothing besides the sizes (train/covariance_gan.py)
        "covariance_gan": set(_SIZE_KEYS) | {"optimizer", "label_smoothing"},
        "calratio_rnn": {f.name for f in fields(CalRatioHyperparameters)},
    }
    trainers = {"flow": flow, "covariance_gan": covariance_gan, "calratio_rnn": calratio_rnn}
    for kind, rule in rules.items():
        assert set(rule["training"]["propertyNames"]["enum"]) == set(COMMON_KEYS) | set(trainers[kind].OWN_KEYS), kind
        rate = rule["training"]["properties"]["learning_rate"]
        if kind == "flow":
            assert rate == {"type": "number"}
        else:
            assert set(rate["propertyNames"]["enum"]) == set(trainers[kind].DEFAULT_LEARNING_RATES), kind


def test_planning_counts_the_covariance_elements_the_representations_rewrite():
    """``model_variables`` keeps its own count so that planning need not import numpy."""
    from pipeline_steps.preprocess import covariance_representation
    from pipeline_steps.preprocess.model_variables import N_COVARIANCE_ELEMENTS

    assert N_COVARIANCE_ELEMENTS == covariance_representation.N_ELEMENTS
