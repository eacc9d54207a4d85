"""CalRatio inputs: padding/truncation, reweighting, standardisation and the split files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline_steps.common.errors import InputError
from pipeline_steps.preprocess import calratio_inputs as cr
from pipeline_steps.preprocess.calratio_splits import run
from pipeline_steps.preprocess.model_transforms import load_transforms

SEQUENCES = {
    "clusters": {"counter": "nClusters", "prefix": "clus_", "fields": ["pt", "eta"]},
    "tracks": {"counter": "nTracks", "prefix": "track_", "fields": ["pt"]},
}
LENGTHS = {"clusters": 3, "tracks": 2}
PAD = -9.0


def test_pad_truncates_to_first_entries_and_pads_with_the_pad_value():
    padded = cr.pad_lists([[1.0, 2.0, 3.0, 4.0], [5.0], [], [6.0, 7.0, 8.0]], length=3, pad_value=PAD)
    assert padded.shape == (4, 3) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded, [[1, 2, 3], [5, PAD, PAD], [PAD, PAD, PAD], [6, 7, 8]])


def test_sequence_arrays_shape_lengths_and_field_order():
    table = pa.table({"clus_pt": pa.array([[1.0, 2.0, 3.0, 4.0], [5.0]], pa.list_(pa.float32())),
                      "clus_eta": pa.array([[-1.0, -2.0, -3.0, -4.0], [-5.0]], pa.list_(pa.float32()))})
    spec = cr.SequenceSpec("clusters", "clus_", ("pt", "eta"), 3)
    padded, lengths = cr.sequence_arrays(table, spec, PAD)
    assert padded.shape == (2, 3, 2)
    assert lengths.tolist() == [3, 1]
    np.testing.assert_array_equal(padded[0, :, 1], [-1, -2, -3])
    np.testing.assert_array_equal(padded[1, :, 0], [5, PAD, PAD])


def test_fields_of_one_sequence_must_have_equal_lengths():
    table = pa.table({"clus_pt": pa.array([[1.0, 2.0]]), "clus_eta": pa.array([[1.0]])})
    with pytest.raises(InputError, match="clus_eta"):
        cr.sequence_arrays(table, cr.SequenceSpec("clusters", "clus_", ("pt", "eta"), 3), PAD)


def test_reweighting_equalises_signal_and_qcd_and_keeps_bib():
    labels = np.array([0, 0, 1, 1, 1, 2])
    weights = np.array([1.0, 3.0, 0.5, 0.5, 1.0, 7.0])
    mc_weights, factor = cr.main_mc_weights(labels, weights)
    assert mc_weights[labels == 0].sum() == pytest.approx(mc_weights[labels == 1].sum()) == pytest.approx(4.0)
    assert factor == pytest.approx(2.0)
    assert mc_weights[5] == 7.0 and (mc_weights[labels == 0] == weights[labels == 0]).all()
    control, _ = cr.control_mc_weights(np.array([1, 1, 0]), np.array([1.0, 1.0, 0.5]))
    assert control[:2].sum() == pytest.approx(control[2:].sum())
    with pytest.raises(InputError, match="QCD"):
        cr.main_mc_weights(np.array([0, 2]), np.array([1.0, 1.0]))


def test_sequence_scaling_ignores_pad_entries():
    padded = np.array([[[1.0], [3.0], [PAD]], [[5.0], [PAD], [PAD]]], dtype=np.float32)
    lengths = np.array([2, 1])
    scaling = cr.fit_sequence_scaling(padded, lengths)
    assert scaling.mean[0] == pytest.approx(3.0)
    scaled = scaling.forward(padded, lengths, PAD)
    assert scaled[0, 2, 0] == PAD and scaled[1, 1, 0] == PAD
    assert scaled[0, 0, 0] == pytest.approx((1.0 - 3.0) / np.std([1.0, 3.0, 5.0]))


def _jets(n: int, seed: int, source_file: str, control: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    n_clusters = rng.integers(0, 6, n)
    n_tracks = rng.integers(0, 4, n)
    label = rng.choice([0, 1], n) if control else rng.choice([0, 1, 2], n)
    columns = {
        "source_file": pa.array([source_file] * n, pa.string()),
        "entry": pa.array(np.arange(n, dtype=np.int64)),
        "object_index": pa.array(np.zeros(n, dtype=np.int32)),
        "runNumber": pa.array(np.full(n, 1, dtype=np.int32)),
        "eventNumber": pa.array(np.arange(n, dtype=np.int64) + 1000 * seed),
        "label": pa.array(label.astype(np.int32)),
        "mcEventWeight": pa.array(rng.uniform(0.5, 2.0, n).astype(np.float32)),
        "jet_pt": pa.array(rng.uniform(40, 400, n).astype(np.float32)),
        "jet_eta": pa.array(rng.uniform(-2.5, 2.5, n).astype(np.float32)),
        "llp_mS": pa.array(np.where(label == 0, 50.0, 0.0).astype(np.float32)),
        "llp_mH": pa.array(np.where(label == 0, 125.0, 0.0).astype(np.float32)),
    }
    if control:
        columns["is_data"] = pa.array(label.astype(np.int32))
    for name, counts in (("clus_", n_clusters), ("track_", n_tracks)):
        fields = SEQUENCES["clusters" if name == "clus_" else "tracks"]["fields"]
        for field in fields:
            values = [rng.normal(10, 3, c).astype(np.float32).tolist() for c in counts]
            columns[f"{name}{field}"] = pa.array(values, pa.list_(pa.float32()))
    return pa.table(columns)


def _params():
    model = {"kind": "calratio_rnn", "dataset": "calratio_main", "control_dataset": "calratio_cr", "table": "jets",
             "conditions": ["jet_pt", "jet_eta"], "targets": ["label"], "weight": "mcEventWeight",
             "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
             "preprocessing": {"default": "standard", "per_variable": {"jet_pt": "log_standard"},
                               "sequence_lengths": LENGTHS, "pad_value": PAD}}
    layout = {"sequences": SEQUENCES, "identity": ["runNumber", "eventNumber"],
              "control_identity": ["runNumber", "eventNumber"]}
    return {"model": model, "name": "calratio", "layout": layout, "seed": 42}


@pytest.fixture()
def preprocessed(tmp_path):
    paths = {"main": [], "cr": []}
    for region, n in (("main", 150), ("cr", 90)):
        for index in range(2):
            path = tmp_path / "ingest" / region / f"{index}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(_jets(n, index + (10 if region == "cr" else 0), f"{index}.root", region == "cr"), path)
            paths[region].append(path)
    out = tmp_path / "preprocess" / "calratio"
    run(paths["main"], paths["cr"], out, _params())
    return out, paths


def test_run_writes_contract_files_loadable_by_load_split(preprocessed):
    out, _ = preprocessed
    total = 0
    for split in ("train", "validation", "test"):
        arrays = cr.load_split(out, split, "main")
        n = len(arrays["label"])
        total += n
        assert arrays["jets"].shape == (n, 2) and arrays["jets"].dtype == np.float32
        assert arrays["clusters"].shape == (n, 3, 2) and arrays["tracks"].shape == (n, 2, 1)
        assert arrays["clusters"].dtype == np.float32
        # pad entries carry the pad value, real ones are standardised
        lengths = arrays["clusters_length"]
        beyond = np.arange(3)[None, :] >= lengths[:, None]
        assert (arrays["clusters"][beyond] == PAD).all()
        assert arrays["weight"].shape == arrays["mc_weight"].shape == (n,)
        control = cr.load_split(out, split, "cr")
        assert set(np.unique(control["is_data"])) <= {0, 1} and "label" not in control
    assert total == 300
    table = pd.read_parquet(out / "train.parquet")
    assert list(table.columns[:5]) == ["source_file", "entry", "object_index", "runNumber", "eventNumber"]
    assert {"label", "jet_pt", "weight", "mc_weight", "cond__jet_pt", "cond__jet_eta"} <= set(table.columns)
    assert "is_data" in pd.read_parquet(out / "cr_test.parquet").columns


def test_main_mc_weights_equal_over_all_splits_and_transforms_load(preprocessed):
    out, _ = preprocessed
    parts = [pd.read_parquet(out / f"{s}.parquet") for s in ("train", "validation", "test")]
    jets = pd.concat(parts)
    assert jets.loc[jets.label == 0, "mc_weight"].sum() == pytest.approx(jets.loc[jets.label == 1, "mc_weight"].sum())
    np.testing.assert_allclose(jets.loc[jets.label == 2, "mc_weight"], jets.loc[jets.label == 2, "weight"])
    control = pd.concat([pd.read_parquet(out / f"cr_{s}.parquet") for s in ("train", "validation", "test")])
    assert control.loc[control.is_data == 1, "mc_weight"].sum() == \
        pytest.approx(control.loc[control.is_data == 0, "mc_weight"].sum())
    # jet transforms: the shared loader inverts cond__* back to physical jet_pt
    transforms = load_transforms(out / "transforms.json")
    physical = transforms.conditions.inverse(parts[0][["cond__jet_pt", "cond__jet_eta"]].to_numpy())
    np.testing.assert_allclose(physical["jet_pt"], parts[0]["jet_pt"], rtol=1e-5)
    # sequence standardisation: fitted on real training entries
    section = cr.load_calratio_preprocessing(out / "transforms.json")
    train = cr.load_split(out, "train")
    real = np.arange(3)[None, :] < train["clusters_length"][:, None]
    assert np.abs(train["clusters"][real].mean(axis=0)).max() < 1e-5
    assert section["pad_value"] == PAD and section["sequences"]["tracks"]["length"] == 2


def test_output_independent_of_file_order(preprocessed, tmp_path):
    out, paths = preprocessed
    again = tmp_path / "again"
    run(list(reversed(paths["main"])), list(reversed(paths["cr"])), again, _params())
    for name in ("train.parquet", "cr_validation.parquet"):
        assert pd.read_parquet(again / name).equals(pd.read_parquet(out / name))
    with np.load(again / "test_sequences.npz") as a, np.load(out / "test_sequences.npz") as b:
        np.testing.assert_array_equal(a["clusters"], b["clusters"])
    assert json.loads((again / "transforms.json").read_text())["calratio"] == \
        json.loads((out / "transforms.json").read_text())["calratio"]


def test_unknown_classes_and_mixed_types_are_refused_naming_the_raw_file(tmp_path):
    """A label of 3 in the test split had gone into the metrics as background without a word; is_data as
    bool in one file and int32 in another had stopped on a bare pyarrow error."""
    paths = {}
    for region, seed in (("main", 0), ("cr", 10)):
        path = tmp_path / f"{region}.parquet"
        table = _jets(150, seed, "a.root", region == "cr")
        if region == "main":
            labels = table["label"].to_numpy().copy()
            labels[[17, 60]] = 3
            table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels))
        pq.write_table(table, path)
        paths[region] = path
    with pytest.raises(InputError, match=r"main tables of calratio: 2 jets have label values \[3\], expected "
                                         r"\{0: 'signal', 1: 'QCD', 2: 'BIB'\}; the first in raw file a\.root, entry 17"):
        run([paths["main"]], [paths["cr"]], tmp_path / "out", _params())
    clean_main = tmp_path / "clean.parquet"
    pq.write_table(_jets(150, 0, "a.root", False), clean_main)
    as_bool = _jets(150, 11, "b.root", True)
    index = as_bool.schema.get_field_index("is_data")
    pq.write_table(as_bool.set_column(index, "is_data", pc.cast(as_bool["is_data"], pa.bool_())), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"the cr tables .* do not share column types"):
        run([clean_main], [paths["cr"], tmp_path / "b.parquet"], tmp_path / "out2", _params())


def test_cut_sequences_and_negative_weights_are_counted_and_a_nan_names_its_jet(tmp_path, caplog):
    """Truncation and NLO weights had gone by without a count; a NaN track field named no file or entry."""
    main, control = tmp_path / "main.parquet", tmp_path / "cr.parquet"
    table = _jets(150, 0, "a.root", False)
    weights = table["mcEventWeight"].to_numpy().copy()
    weights[:7] = -weights[:7]
    pq.write_table(table.set_column(table.schema.get_field_index("mcEventWeight"), "mcEventWeight",
                                    pa.array(weights)), main)
    pq.write_table(_jets(100, 10, "b.root", True), control)
    params = _params()
    params["model"]["preprocessing"]["sequence_lengths"] = {**LENGTHS, "clusters": 2}
    run([main], [control], tmp_path / "out", params)
    report = json.loads((tmp_path / "out" / "transforms.json").read_text())["report"]
    stored = pc.list_value_length(table["clus_" + SEQUENCES["clusters"]["fields"][0]]).to_numpy()
    assert report["main"]["truncated_sequences"]["clusters"] == int((stored > 2).sum()) > 0
    assert report["main"]["negative_weights"] == 7 and report["cr"]["negative_weights"] == 0
    assert "sequences were cut to sequence_lengths" in caplog.text
    field = "track_" + SEQUENCES["tracks"]["fields"][0]
    values = table[field].to_pylist()
    row = next(i for i, v in enumerate(values) if v)
    values[row][0] = float("nan")
    pq.write_table(table.set_column(table.schema.get_field_index(field), field,
                                    pa.array(values, pa.list_(pa.float32()))), main)
    with pytest.raises(InputError, match=rf"column {field} has 1 NaN/inf entries, the first in raw file a\.root, "
                                         rf"entry {row}"):
        run([main], [control], tmp_path / "out2", _params())


def test_events_that_several_files_hold_are_counted_per_region(tmp_path, caplog):
    """An overlapping skim's events had counted twice without a word (whole copies are named at ingestion)."""
    main, skim, control = tmp_path / "main.parquet", tmp_path / "skim.parquet", tmp_path / "cr.parquet"
    table = _jets(150, 0, "a.root", False)
    pq.write_table(table, main)
    skimmed = table.slice(0, 30)  # 30 of a.root's events (one jet each) again, in another file
    pq.write_table(skimmed.set_column(0, "source_file", pa.array(["skim.root"] * 30, pa.string())), skim)
    pq.write_table(_jets(100, 10, "b.root", True), control)
    run([main, skim], [control], tmp_path / "out", _params())
    report = json.loads((tmp_path / "out" / "transforms.json").read_text())["report"]
    assert report["main"]["events_in_several_files"] == {
        "events": 30, "of": 150, "files": ["a.root", "skim.root"],
        "example": {"runNumber": 1, "eventNumber": 0, "files": ["a.root", "skim.root"]}}
    assert "events_in_several_files" not in report["cr"]
    assert "main tables of calratio: 30 of 150 events are held by more than one raw file" in caplog.text


@pytest.mark.parametrize("region, column, value, expected", [
    ("main", "label", 2, r"main tables of calratio: no jets of BIB \(label 2\) in train, BIB \(label 2\) in "
                         r"validation, BIB \(label 2\) in test; jets per split and class: \{'train': \{'signal': \d+"),
    ("cr", "is_data", 1, r"cr tables of calratio: no jets of data \(is_data 1\) in train, .* in test"),
])
def test_a_class_missing_from_the_samples_is_refused_before_training(tmp_path, region, column, value, expected):
    """A main sample without BIB jets had trained a BIB output on nothing and reported no BIB metrics."""
    paths = {}
    for name, seed in (("main", 0), ("cr", 10)):
        table = _jets(150, seed, "a.root", name == "cr")
        if name == region:  # that class's jets become the other class (the sequences stay as they are)
            values = table[column].to_numpy().copy()
            values[values == value] = 0
            table = table.set_column(table.schema.get_field_index(column), column, pa.array(values.astype(np.int32)))
            if name == "cr":
                table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(values.astype(np.int32)))
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(table, paths[name])
    with pytest.raises(InputError, match=expected):
        run([paths["main"]], [paths["cr"]], tmp_path / "out", _params())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_class_missing_from_one_split_only_is_named_with_that_split():
    from pipeline_steps.preprocess.calratio_splits import _check_classes_in_splits

    split = np.array(["train"] * 6 + ["validation"] * 3 + ["test"] * 3)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1])
    with pytest.raises(InputError, match=r"^main: no jets of BIB \(label 2\) in test; jets per split and class: .*"
                                         r"'test': \{'signal': 1, 'QCD': 2, 'BIB': 0\}"):
        _check_classes_in_splits(labels, split, "label", cr.MAIN_LABELS, "main")
    labels[-1] = 2
    _check_classes_in_splits(labels, split, "label", cr.MAIN_LABELS, "main")


def test_an_identity_that_names_too_few_events_says_so_instead_of_writing_empty_splits(tmp_path):
    """identity: [runNumber] had given 600 training jets and empty validation and test splits, and the
    training then stopped on 'no jets' without a word of why."""
    paths = {}
    for region, seed in (("main", 0), ("cr", 10)):
        paths[region] = tmp_path / f"{region}.parquet"
        pq.write_table(_jets(150, seed, "a.root", region == "cr"), paths[region])
    params = _params()
    params["layout"] = {**params["layout"], "identity": ["runNumber"]}
    with pytest.raises(InputError, match=r"main tables of calratio: no rows in the (train|validation|test) split of "
                                         r"150 rows, \d events by \['runNumber'\]"):
        run([paths["main"]], [paths["cr"]], tmp_path / "out", params)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_split_without_its_weights_is_refused_naming_the_file(preprocessed, tmp_path):
    """A missing mc_weight column had been read as zeros, and trained on."""
    out, _ = preprocessed
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    table = pd.read_parquet(copy / "validation.parquet").drop(columns=["mc_weight"])
    table.to_parquet(copy / "validation.parquet", index=False)
    with pytest.raises(InputError, match=r"validation.parquet: no column \['mc_weight'\]; expected a split written by "
                                         r"preprocess_calratio"):
        cr.load_split(copy, "validation", "main")
    assert len(cr.load_split(copy, "train", "main")["mc_weight"]) > 0


def test_load_split_names_each_jets_event_by_the_identity_its_split_followed(preprocessed):
    """The validation's bootstrap draws a CalRatio event's jets together: load_split numbers them by the
    dataset's identity branches, the keys the split hashed, and refuses a split that lacks them."""
    out, _ = preprocessed
    table = pd.read_parquet(out / "test.parquet")
    events = cr.load_split(out, "test", "main", identity=["runNumber", "eventNumber"])["events"]
    keys = table[["runNumber", "eventNumber"]].astype(str).agg("/".join, axis=1).to_numpy()
    assert len(np.unique(events)) == len(np.unique(keys))
    for code in np.unique(events):  # one event, one code
        assert len(np.unique(keys[events == code])) == 1
    assert "events" not in cr.load_split(out, "test", "main")
    with pytest.raises(InputError, match=r"test.parquet: columns \['lumiBlock'\] missing"):
        cr.load_split(out, "test", "main", identity=["runNumber", "lumiBlock"])
