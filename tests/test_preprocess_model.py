"""run() of rule preprocess_model on tiny hand-built ingested / categorised Parquet files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import InputError
from pipeline_steps.preprocess import covariance_representation as cov
from pipeline_steps.preprocess.model_splits import run
from tests.conftest import preprocess_outputs
from pipeline_steps.preprocess.model_transforms import load_transforms

JETS = {
    "conditions": ["gen_pt", "gen_eta", "gen_phi", "gen_hadronFlavour", "PV_npvs"],
    "derived": {"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]},
                "phiMinusGen": {"op": "delta_phi", "of": ["phi", "gen_phi"]}},
    "targets": ["ptRatio", "phiMinusGen", "btagDeepB", "nConstituents"],
    "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
    "preprocessing": {"default": "standard", "per_variable": {"gen_pt": "log_standard"},
                      "dequantize": ["nConstituents", "gen_hadronFlavour", "PV_npvs"],
                      "decorrelate_conditions": False, "targets": "standard"},
    "identity": ["run", "luminosityBlock", "event"],
}


def _ingested_jets(path: Path, source_file: str, n_events: int, seed: int) -> pd.DataFrame:
    """A NanoAOD jets table in the ingest contract's column order (identity, event, reco, gen)."""
    rng = np.random.default_rng(seed)
    n = 2 * n_events
    gen_pt = rng.uniform(20, 300, n).astype(np.float32)
    gen_phi = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    table = pd.DataFrame({
        "source_file": source_file,
        "entry": np.repeat(np.arange(n_events, dtype=np.int64), 2),
        "object_index": np.tile(np.arange(2, dtype=np.int32), n_events),
        "run": np.uint32(1), "luminosityBlock": np.uint32(seed),
        "event": np.repeat(np.arange(n_events, dtype=np.uint64) + 1000 * seed, 2),
        "PV_npvs": rng.poisson(30, n).astype(np.uint8),
        "pt": (gen_pt * rng.normal(1.0, 0.1, n)).astype(np.float32),
        "eta": rng.normal(0, 2, n).astype(np.float32),
        "phi": np.mod(gen_phi + rng.normal(0, 0.05, n) + np.pi, 2 * np.pi).astype(np.float32) - np.float32(np.pi),
        "btagDeepB": rng.uniform(0, 1, n).astype(np.float32),
        "nConstituents": rng.poisson(15, n).astype(np.uint8),
        "gen_pt": gen_pt, "gen_eta": rng.normal(0, 2, n).astype(np.float32), "gen_phi": gen_phi,
        "gen_hadronFlavour": rng.choice([0, 4, 5], n).astype(np.int32),
    })
    table.to_parquet(path, index=False)
    return table


def _read_splits(outputs: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(outputs[name]) for name in ("train", "validation", "test")}


def test_run_writes_contract_columns_and_invertible_transforms(tmp_path):
    files = [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    originals = pd.concat([_ingested_jets(files[0], "0.root", 300, 1), _ingested_jets(files[1], "1.root", 300, 2)])
    outputs = preprocess_outputs(tmp_path / "jets")
    run(files, outputs, {"model": "jets", "config": JETS, "seed": 42}, log=tmp_path / "jets.log")
    splits = _read_splits(outputs)
    identity = ["source_file", "entry", "object_index", "run", "luminosityBlock", "event"]
    cond = [f"cond__{c}" for c in JETS["conditions"]]
    targ = [f"targ__{t}" for t in JETS["targets"]]
    train = splits["train"]
    assert list(train.columns[:6]) == identity and list(train.columns[-9:]) == cond + targ
    assert {"ptRatio", "phiMinusGen", "pt", "phi", "gen_pt"} <= set(train.columns)
    assert all(train[c].dtype == np.float32 for c in cond + targ)
    assert sum(len(s) for s in splits.values()) == len(originals)
    keys = {name: set(zip(s.source_file, s.entry, s.object_index)) for name, s in splits.items()}
    assert not (keys["train"] & keys["validation"]) and not (keys["train"] & keys["test"])
    np.testing.assert_allclose(train["ptRatio"], train["pt"].astype(np.float64) / train["gen_pt"], rtol=1e-12)
    # fitted on train only: standardised training targets have mean 0 / std 1, validation only close
    assert abs(train["targ__btagDeepB"].mean()) < 1e-4 and abs(train["targ__btagDeepB"].std() - 1) < 1e-2
    transforms = load_transforms(outputs["transforms"])
    test = splits["test"]
    conditions = transforms.conditions.inverse(test[cond].to_numpy())
    assert np.array_equal(conditions["PV_npvs"].to_numpy(), test["PV_npvs"].to_numpy())  # dequantised: exact
    physical = transforms.targets_to_physical(transforms.targets.inverse(test[targ].to_numpy()), conditions)
    np.testing.assert_allclose(physical["pt"], test["pt"], rtol=1e-5)
    np.testing.assert_allclose(physical["phi"], test["phi"], atol=1e-5)
    assert np.array_equal(physical["nConstituents"].to_numpy(), test["nConstituents"].to_numpy())
    assert outputs["distributions"].stat().st_size > 1000 and outputs["correlations"].stat().st_size > 1000
    assert "split train" in (tmp_path / "jets.log").read_text()


def test_run_output_does_not_depend_on_input_file_order(tmp_path):
    files = [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    _ingested_jets(files[0], "0.root", 100, 1)
    _ingested_jets(files[1], "1.root", 100, 2)
    first, second = preprocess_outputs(tmp_path / "a"), preprocess_outputs(tmp_path / "b")
    run(files, first, {"model": "jets", "config": JETS, "seed": 42})
    run(files[::-1], second, {"model": "jets", "config": JETS, "seed": 42})
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(pd.read_parquet(first[name]), pd.read_parquet(second[name]))


def _split_of_event(outputs: dict[str, Path]) -> dict[tuple, set[str]]:
    """{(run, luminosityBlock, event): the splits its rows are in}."""
    splits: dict[tuple, set[str]] = {}
    for name, table in _read_splits(outputs).items():
        for key in zip(table.run, table.luminosityBlock, table.event):
            splits.setdefault(key, set()).add(name)
    return splits


def test_an_event_is_split_whole_and_keeps_its_split_however_its_files_are_cut(tmp_path):
    """Split by object, one event's two jets had been in train and test at once, a file cut in two had
    moved a third of the rows to another split, and an event two files hold had been in two splits."""
    whole = tmp_path / "whole.parquet"
    table = _ingested_jets(whole, "0.root", 400, 1)
    outputs = preprocess_outputs(tmp_path / "whole")
    run([whole], outputs, {"model": "jets", "config": JETS, "seed": 42})
    before = _split_of_event(outputs)
    assert all(len(splits) == 1 for splits in before.values())  # both jets of every event together
    assert {next(iter(s)) for s in before.values()} == {"train", "validation", "test"}
    halves = [tmp_path / "a.parquet", tmp_path / "b.parquet"]  # the same events, cut and renamed
    first = table.iloc[:300].assign(source_file="a.root")
    second = table.iloc[300:].assign(source_file="b.root", entry=table.entry.iloc[300:] - 150)
    first.to_parquet(halves[0], index=False)
    second.to_parquet(halves[1], index=False)
    outputs = preprocess_outputs(tmp_path / "cut")
    run(halves, outputs, {"model": "jets", "config": JETS, "seed": 42})
    assert _split_of_event(outputs) == before
    twice = tmp_path / "copy.parquet"  # an event in two files (a re-skim): one split, not two
    table.iloc[:40].assign(source_file="copy.root").to_parquet(twice, index=False)
    outputs = preprocess_outputs(tmp_path / "twice")
    run([whole, twice], outputs, {"model": "jets", "config": JETS, "seed": 42})
    assert _split_of_event(outputs) == before


def test_events_that_several_files_hold_are_counted_and_named(tmp_path):
    """A file sharing some events with another (an overlapping skim) had gone by without a word, while a
    whole copy was named at ingestion: its events counted twice in training and test."""
    whole, overlap = tmp_path / "whole.parquet", tmp_path / "overlap.parquet"
    table = _ingested_jets(whole, "0.root", 400, 1)
    table.iloc[:40].assign(source_file="skim.root").to_parquet(overlap, index=False)  # 20 events of 0.root
    outputs = preprocess_outputs(tmp_path / "overlap")
    run([whole, overlap], outputs, {"model": "jets", "config": JETS, "seed": 42}, log=tmp_path / "overlap.log")
    report = json.loads(outputs["transforms"].read_text())["report"]
    assert report["events_in_several_files"] == {
        "events": 20, "of": 400, "files": ["0.root", "skim.root"],
        "example": {"run": 1, "luminosityBlock": 1, "event": 1000, "files": ["0.root", "skim.root"]}}
    assert "model jets: 20 of 400 events are held by more than one raw file" in (tmp_path / "overlap.log").read_text()
    # the same events cut into two files that do not overlap: nothing to say
    halves = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    table.iloc[:300].assign(source_file="a.root").to_parquet(halves[0], index=False)
    table.iloc[300:].assign(source_file="b.root").to_parquet(halves[1], index=False)
    outputs = preprocess_outputs(tmp_path / "halves")
    run(halves, outputs, {"model": "jets", "config": JETS, "seed": 42})
    assert "events_in_several_files" not in json.loads(outputs["transforms"].read_text())["report"]


def test_identity_branches_that_do_not_name_events_are_refused_naming_file_and_entry(tmp_path):
    """identity: [run] on a one-run file had put every row in one split and then stopped on an empty
    validation split, as if the files were too few."""
    files = [tmp_path / "0.parquet"]
    _ingested_jets(files[0], "0.root", 50, 1)
    outputs = preprocess_outputs(tmp_path / "jets")
    with pytest.raises(InputError, match=r"model jets: the identity branches \['run'\] do not name an event uniquely: "
                                         r"50 of 50 events share .* raw file 0.root, entry 0: run 1\)"):
        run(files, outputs, {"model": "jets", "config": {**JETS, "identity": ["run"], "entry_is_event": True},
                             "seed": 42})
    assert not outputs["train"].exists()
    # decided by the table's layout, not by the rows: a selection keeping each event's first jet only
    leading = pd.read_parquet(files[0]).query("object_index == 0")
    leading.to_parquet(files[0], index=False)
    with pytest.raises(InputError, match=r"do not name an event uniquely"):
        run(files, outputs, {"model": "jets", "config": {**JETS, "identity": ["run"], "entry_is_event": True},
                             "seed": 42})
    # a flat tree's entries are objects: the jets of one event share its key, and are split together
    _ingested_jets(files[0], "0.root", 50, 1)
    flat = pd.read_parquet(files[0]).assign(object_index=np.int32(0), entry=lambda t: np.arange(len(t)))
    flat.to_parquet(files[0], index=False)
    run(files, outputs, {"model": "jets", "config": JETS, "seed": 42})
    assert all(len(splits) == 1 for splits in _split_of_event(outputs).values())
    with pytest.raises(InputError, match=r"no rows in the (train|validation|test) split of 100 rows, 1 events by \['run'\]"):
        run(files, outputs, {"model": "jets", "config": {**JETS, "identity": ["run"]}, "seed": 42})


def test_nan_in_a_model_variable_names_the_column_and_file(tmp_path):
    table = _ingested_jets(tmp_path / "0.parquet", "0.root", 50, 1)
    table.loc[3, "btagDeepB"] = np.nan
    table.to_parquet(tmp_path / "0.parquet", index=False)
    with pytest.raises(InputError, match=r"0\.parquet.*'btagDeepB'.*NaN"):
        run([tmp_path / "0.parquet"], preprocess_outputs(tmp_path / "out"), {"model": "jets", "config": JETS, "seed": 1})
    assert not (tmp_path / "out" / "train.parquet").exists()


@pytest.mark.parametrize("column", ["gen_eta", "btagDeepB", "pt"])  # a condition, a target, a derived source
def test_a_string_model_variable_is_refused_naming_it_and_its_values(tmp_path, column):
    """The Zmumu sample's Type ('GT', 'TT', 'GG') as a condition had stopped on 'could not convert string to float'."""
    table = _ingested_jets(tmp_path / "0.parquet", "0.root", 50, 1)
    table[column] = np.where(np.arange(len(table)) % 2, "GT", "TT")
    table.to_parquet(tmp_path / "0.parquet", index=False)
    with pytest.raises(InputError, match=rf"model jets: variable '{column}' holds \S+ values such as \['GT', 'TT'\] "
                                         r"\(first in raw file 0\.root, entry 0.*must be numeric or a flag"):
        run([tmp_path / "0.parquet"], preprocess_outputs(tmp_path / "out"), {"model": "jets", "config": JETS, "seed": 1})
    assert not (tmp_path / "out" / "train.parquet").exists()


def test_covariance_model_with_cholesky_representation_and_decorrelation(tmp_path):
    rng = np.random.default_rng(3)
    n = 600
    a = rng.normal(size=(n, 5, 5)) * 0.1
    elements = cov.matrices_to_elements(a @ np.swapaxes(a, 1, 2) + 0.01 * np.eye(5))
    x = rng.normal(size=n)
    table = pd.DataFrame({"source_file": "0.root", "entry": np.arange(n, dtype=np.int64),
                          "object_index": np.zeros(n, np.int32), "runNumber": np.int32(7),
                          "eventNumber": np.arange(n, dtype=np.int64),
                          "x": x, "y": x + 0.1 * rng.normal(size=n), "p": rng.lognormal(3, 1, n),
                          "charge": rng.choice([-1, 1], n).astype(np.int32)})
    for i, name in enumerate(cov.element_names()):
        table[name] = elements[:, i]
    table.to_parquet(tmp_path / "0.parquet", index=False)
    config = {"conditions": ["x", "y", "p", "charge"], "targets": cov.element_names(),
              "split": {"train": 0.8, "validation": 0.1, "test": 0.1}, "identity": ["runNumber", "eventNumber"],
              "preprocessing": {"default": "quantile_normal", "per_variable": {"p": "log10_quantile_normal",
                                                                                "charge": "passthrough"},
                                "decorrelate_conditions": True, "targets": "quantile_normal",
                                "target_representation": "cholesky"}}
    outputs = preprocess_outputs(tmp_path / "cov")
    run([tmp_path / "0.parquet"], outputs, {"model": "tracks_cov", "config": config, "seed": 0})
    train, test = pd.read_parquet(outputs["train"]), pd.read_parquet(outputs["test"])
    cond = train[[f"cond__{c}" for c in config["conditions"]]].to_numpy(np.float64)
    assert np.max(np.abs(np.corrcoef(cond.T) - np.eye(4))) < 1e-4  # x and y were 99% correlated
    transforms = load_transforms(outputs["transforms"])
    assert transforms.target_representation == "cholesky"
    targ = test[[f"targ__{t}" for t in config["targets"]]].to_numpy()
    physical = transforms.targets_to_physical(transforms.targets.inverse(targ), test)
    np.testing.assert_allclose(physical[cov.element_names()].to_numpy(), test[cov.element_names()].to_numpy(),
                               rtol=1e-4, atol=1e-7)
    # any generator output maps to a positive definite covariance
    random_output = np.random.default_rng(0).normal(size=(200, 15)).astype(np.float32)
    generated = transforms.targets_to_physical(transforms.targets.inverse(random_output), test.iloc[:200])
    assert np.all(np.linalg.eigvalsh(cov.elements_to_matrices(generated.to_numpy()))[:, 0] > 0)


def _covariance_table(path: Path, n: int = 600, broken: tuple[int, ...] = ()) -> dict:
    """A tracks table of SPD covariances; the rows in ``broken`` get |rho_01| = 1.5. Returns the model config."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(n, 5, 5)) * 0.1
    elements = cov.matrices_to_elements(a @ np.swapaxes(a, 1, 2) + 0.01 * np.eye(5))
    for row in broken:
        elements[row, 1] = 1.5 * np.sqrt(elements[row, 0] * elements[row, 5])
    table = pd.DataFrame({"source_file": "0.root", "entry": np.arange(n, dtype=np.int64),
                          "object_index": np.zeros(n, np.int32), "runNumber": np.int32(7),
                          "eventNumber": np.arange(n, dtype=np.int64), "p": rng.lognormal(3, 1, n)})
    for i, name in enumerate(cov.element_names()):
        table[name] = elements[:, i]
    table.to_parquet(path, index=False)
    return {"conditions": ["p"], "targets": cov.element_names(), "split": {"train": 0.8, "validation": 0.1, "test": 0.1},
            "identity": ["runNumber", "eventNumber"],
            "preprocessing": {"default": "quantile_normal", "targets": "quantile_normal"}}


def test_real_covariances_that_are_not_positive_definite_are_counted_or_refused_with_their_origin(tmp_path, caplog):
    """130 such matrices had gone into training without a word; cholesky said only 'some matrices'."""
    config = _covariance_table(tmp_path / "0.parquet", broken=(17, 40, 41))
    outputs = preprocess_outputs(tmp_path / "elements")
    run([tmp_path / "0.parquet"], outputs, {"model": "tracks_cov", "config": config, "seed": 0})
    report = load_transforms(outputs["transforms"]).report["not_positive_definite"]
    assert report == {"count": 3, "rows": 600, "first": "raw file 0.root, entry 17, object 0"}
    assert "3 of 600 real covariance matrices are not symmetric positive definite" in caplog.text
    config["preprocessing"]["target_representation"] = "cholesky"
    with pytest.raises(InputError, match=r"3 of 600 .* first in raw file 0\.root, entry 17, object 0; "
                                         r"target_representation 'cholesky' needs positive definite matrices"):
        run([tmp_path / "0.parquet"], preprocess_outputs(tmp_path / "cholesky"),
            {"model": "tracks_cov", "config": config, "seed": 0})
    clean = _covariance_table(tmp_path / "1.parquet")
    outputs = preprocess_outputs(tmp_path / "clean")
    run([tmp_path / "1.parquet"], outputs, {"model": "tracks_cov", "config": clean, "seed": 0})
    assert "not_positive_definite" not in load_transforms(outputs["transforms"]).report


def test_categorised_ship_inputs_get_category_and_zero_start_xy_for_target_muons(tmp_path):
    rng = np.random.default_rng(5)
    files = []
    for category in (1, 2, 3, 4):
        n = 150
        table = pd.DataFrame({"source_file": "0.root", "entry": np.arange(n, dtype=np.int64) + 1000 * category,
                              "object_index": np.zeros(n, np.int32), "category": np.int8(category),
                              "weight": rng.uniform(0, 1, n)})
        names = ["StartZ", "Px", "Py", "Pz"] if category <= 2 else ["StartX", "StartY", "StartZ", "Px", "Py", "Pz"]
        for name in names:
            table[name] = rng.uniform(-1, 1, n)
        files.append(tmp_path / f"cat{category}.parquet")
        table.to_parquet(files[-1], index=False)
    config = {"categorised": True, "conditions": ["category"], "weight": "weight",
              "targets": ["StartX", "StartY", "StartZ", "Px", "Py", "Pz"],
              "split": {"train": 0.8, "validation": 0.1, "test": 0.1}, "identity": [],
              "preprocessing": {"default": "passthrough", "targets": "passthrough", "decorrelate_conditions": False}}
    outputs = preprocess_outputs(tmp_path / "ship")
    run(files, outputs, {"model": "ship_muons", "config": config, "seed": 42})
    train = pd.read_parquet(outputs["train"])
    assert list(train.columns[:4]) == ["source_file", "entry", "object_index", "category"]
    assert train["category"].dtype == np.int8 and set(train["category"]) == {1, 2, 3, 4}
    assert "weight" in train.columns and train["weight"].between(0, 1).all()
    target_muons = train["category"] <= 2
    for name in ("StartX", "StartY", "targ__StartX", "targ__StartY"):
        assert (train.loc[target_muons, name] == 0.0).all()
        assert (train.loc[~target_muons, name] != 0.0).all()
    np.testing.assert_array_equal(train["targ__Pz"], train["Pz"].astype(np.float32))  # passthrough


def test_a_spike_short_of_its_edge_is_reported_with_the_clip_that_makes_it_one(tmp_path):
    """A b-tag at -1 for 15% of jets with one jet at -2 below it gets no point mass; the log says why and how."""
    path = tmp_path / "0.parquet"
    table = _ingested_jets(path, "0.root", 400, 1)
    btag = np.where(np.arange(len(table)) % 7 == 0, -1.0, table["btagDeepB"]).astype(np.float32)
    btag[5] = -2.0
    table.assign(btagDeepB=btag).to_parquet(path, index=False)
    outputs = preprocess_outputs(tmp_path / "jets")
    config = {**JETS, "preprocessing": {**JETS["preprocessing"], "point_mass_share": 0.05}}
    run([path], outputs, {"model": "jets", "config": config, "seed": 42}, log=tmp_path / "jets.log")
    report = load_transforms(outputs["transforms"]).report
    assert report["point_mass_short_of_edge"] == {
        "btagDeepB": {"low": {"value": -1.0, "rows": int((btag == -1.0).sum()), "beyond": 1, "extreme": -2.0}}}
    assert "btagDeepB" not in report["point_mass"]
    assert "preprocessing.clip: {btagDeepB: [-1, null]} makes it the edge" in (tmp_path / "jets.log").read_text()


def test_a_file_whose_event_numbers_are_signed_keeps_the_splits_of_the_files_before_it(tmp_path):
    """A skim storing ``event`` as int64 beside NanoAOD's uint64: every earlier row keeps its split."""
    files = [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    _ingested_jets(files[0], "0.root", 300, 1)
    skim = _ingested_jets(files[1], "1.root", 300, 2)
    skim.astype({"event": np.int64}).to_parquet(files[1], index=False)
    alone, grown = preprocess_outputs(tmp_path / "alone"), preprocess_outputs(tmp_path / "grown")
    run(files[:1], alone, {"model": "jets", "config": JETS, "seed": 42})
    run(files, grown, {"model": "jets", "config": JETS, "seed": 42})
    for name in ("train", "validation", "test"):
        before = pd.read_parquet(alone[name])
        after = pd.read_parquet(grown[name])
        assert after["event"].dtype == np.int64
        kept = after[after["source_file"] == "0.root"]
        assert kept["entry"].tolist() == before["entry"].tolist()


def test_a_negative_weight_is_refused_naming_the_raw_file_and_entry(tmp_path):
    """NLO samples carry negative weights; they had passed preprocessing and stopped the flow's training
    job, which named a split."""
    path = tmp_path / "0.parquet"
    table = _ingested_jets(path, "0.root", 100, 1)
    table.assign(genWeight=np.where(np.arange(len(table)) == 7, -1.5, 1.0).astype(np.float32)).to_parquet(path)
    config = {**JETS, "weight": "genWeight"}
    with pytest.raises(InputError, match=r"models.jets.weight 'genWeight' has 1 negative values of 200, first -1.5 in "
                                         r"raw file 0.root, entry 3, object 1; the flow's weighted likelihood"):
        run([path], preprocess_outputs(tmp_path / "jets"), {"model": "jets", "config": config, "seed": 42})


def test_one_row_that_holds_most_of_a_columns_spread_is_reported_with_its_origin(tmp_path):
    """One gen_eta of 1e30 sets the standardisation's scale and squeezes every other jet together."""
    path = tmp_path / "0.parquet"
    table = _ingested_jets(path, "0.root", 200, 1)
    table.loc[9, "gen_eta"] = np.float32(1e30)
    table.to_parquet(path, index=False)
    outputs = preprocess_outputs(tmp_path / "jets")
    run([path], outputs, {"model": "jets", "config": JETS, "seed": 42}, log=tmp_path / "jets.log")
    dominant = load_transforms(outputs["transforms"]).report["dominant_rows"]
    assert list(dominant) == ["gen_eta"]
    assert dominant["gen_eta"]["origin"] == "raw file 0.root, entry 4, object 1" and dominant["gen_eta"]["share"] > 0.99
    assert re.search(r"gen_eta: one row holds (99|100)% of the model-space spread, cond__gen_eta = ",
                     (tmp_path / "jets.log").read_text())


def test_an_empty_split_stops_preprocessing_naming_its_fraction(tmp_path):
    """An empty test split had stopped generation only after the model was trained."""
    config = _covariance_table(tmp_path / "0.parquet", n=150)
    config["split"] = {"train": 0.949, "validation": 0.05, "test": 0.001}
    with pytest.raises(InputError, match=r"model tracks_cov: no rows in the test split of 150 rows, \d+ events by "
                                         r"\[.*\] \(split\.test = 0\.001\)"):
        run([tmp_path / "0.parquet"], preprocess_outputs(tmp_path / "out"), {"model": "tracks_cov", "config": config,
                                                                              "seed": 0})


def test_bounded_sums_reach_transforms_json_and_a_model_without_support_refuses_them(tmp_path):
    """The config's groups are fitted on the training split into transforms.json, where generation and
    the bundle read them; with ``support: false`` nothing would apply them, so the config is refused."""
    from pipeline_steps.common.errors import ConfigError

    files = [tmp_path / "0.parquet"]
    _ingested_jets(files[0], "0.root", 300, 1)
    config = {**JETS, "targets": ["ptRatio", "btagDeepB", "nConstituents"],
              "preprocessing": {**JETS["preprocessing"], "bounded_sums": [["pt", "btagDeepB"]]}}
    outputs = preprocess_outputs(tmp_path / "jets")
    run(files, outputs, {"model": "jets", "config": config, "seed": 42})
    train = pd.read_parquet(outputs["train"])
    (group, bound), = load_transforms(outputs["transforms"]).support.sums
    assert group == ("pt", "btagDeepB") and bound == (train["pt"].astype(np.float64) + train["btagDeepB"]).max()
    config["preprocessing"] = {**config["preprocessing"], "support": False}
    with pytest.raises(ConfigError, match=r"models.jets.preprocessing.bounded_sums: applied with the training "
                                          r"support, which this model has not \(support: false\)"):
        run(files, preprocess_outputs(tmp_path / "off"), {"model": "jets", "config": config, "seed": 42})
