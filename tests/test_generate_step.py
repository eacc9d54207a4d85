"""Generation (and validation of what it wrote) end to end on tiny hand-built splits, with a small sampler of our own (not a framework mock).

The sampler follows the ``Sampler`` protocol of pipeline_steps.models: transformed conditions in,
transformed targets out. With no noise its output is a known function of the conditions, so the
values in the ROOT file can be checked against an independent computation.
"""

import json

import numpy as np
import pandas as pd
import pytest
import uproot

from pipeline_steps.generate.root_io import read_generated_root
from pipeline_steps.generate.sampling import event_aligned_chunks, poisson_category_counts
from pipeline_steps.common.errors import InputError
from pipeline_steps.generate.step import GenerateSettings, generate_to_root, read_test_split
from pipeline_steps.categorise import categories as cat
from pipeline_steps.preprocess.derived import parse_derived
from pipeline_steps.preprocess.model_transforms import ModelTransforms, save_transforms
from pipeline_steps.preprocess.transforms import fit_variable_transforms
from pipeline_steps.validate.step import run as validate_run, run_summary
from tests.conftest import JETS_TABLE

CONDITIONS = ["gen_pt", "gen_eta", "PV_npvs"]
TARGETS = ["ptRatio", "area", "nConstituents"]


class LinearSampler:
    """targets = slope * (first condition) + shift + noise * N(0, 1), in transformed space."""

    def __init__(self, n_targets, slope=0.5, shift=0.0, noise=0.0):
        self.n_targets, self.slope, self.shift, self.noise = n_targets, slope, shift, noise

    def sample(self, conditions, seed):
        rng = np.random.default_rng(seed)
        base = self.slope * conditions[:, :1] + self.shift
        return (base + self.noise * rng.normal(size=(len(conditions), self.n_targets))).astype(np.float32)


def jets_case(n_events=300, seed=0):
    """A test split with the contract's columns and the fitted transforms it came from."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, n_events)
    event = np.repeat(np.arange(n_events), counts)
    n = len(event)
    gen_pt = rng.uniform(20, 200, n)
    physical = pd.DataFrame({
        "source_file": np.where(event % 2 == 0, "0.root", "1.root"), "entry": event.astype(np.int64),
        "object_index": np.concatenate([np.arange(c) for c in counts]).astype(np.int32),
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32), "event": event.astype(np.uint64),
        "gen_pt": gen_pt.astype(np.float32), "gen_eta": rng.normal(0, 2, n).astype(np.float32),
        "PV_npvs": np.repeat(rng.integers(5, 40, n_events), counts).astype(np.int32),
        "ptRatio": rng.normal(1.0, 0.1, n), "area": rng.uniform(0.3, 0.6, n),
        "nConstituents": rng.integers(2, 40, n).astype(np.int32),
    })
    transforms = ModelTransforms(
        conditions=fit_variable_transforms(physical, {c: "standard" for c in CONDITIONS}),
        targets=fit_variable_transforms(physical, {t: "standard" for t in TARGETS}),
        derived=parse_derived({"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]}}),
        model="jets",
    )
    cond = transforms.conditions.forward(physical)
    targ = transforms.targets.forward(physical)
    split = physical.assign(**{f"cond__{c}": cond[:, i] for i, c in enumerate(CONDITIONS)},
                            **{f"targ__{t}": targ[:, i] for i, t in enumerate(TARGETS)})
    return split.sample(frac=1.0, random_state=1).reset_index(drop=True), transforms  # shuffled on purpose


def jets_settings(chunk_rows=100):
    return GenerateSettings.from_params({
        "model_name": "jets", "seed": 3, "chunk_rows": chunk_rows, "validation": {"generated_events": 10},
        "model": {"kind": "flow", "conditions": CONDITIONS, "targets": TARGETS},
        "dataset": {"tree": "Events", "identity": ["run", "luminosityBlock", "event"], "table": JETS_TABLE},
    })


def test_conditional_generation_writes_known_values_in_input_layout(tmp_path):
    split, transforms = jets_case()
    settings = jets_settings(chunk_rows=100)
    test_rows = split.sort_values(["source_file", "entry", "object_index"], kind="mergesort").reset_index(drop=True)
    stats = generate_to_root(LinearSampler(3), transforms, test_rows, settings, tmp_path / "g.root")
    assert stats.rows == len(split)
    tree = uproot.open(tmp_path / "g.root")["Events"]
    assert tree.num_entries == split.groupby(["source_file", "entry"]).ngroups
    assert {"nJet", "Jet_pt", "Jet_area", "Jet_nConstituents", "nGenJet", "GenJet_pt", "GenJet_eta", "PV_npvs",
            "run", "event", "source_file", "entry", "Jet_object_index"} <= set(tree.keys())
    back = read_generated_root(tmp_path / "g.root", settings.layout)
    merged = back.merge(split, on=["source_file", "entry", "object_index"], suffixes=("", "_real"))
    assert len(merged) == len(split)  # every generated row traces back to exactly one real row
    assert np.array_equal(merged["gen_pt"], merged["gen_pt_real"])
    # independent computation: transformed targets = 0.5 * cond__gen_pt, inverse-standardised, pt = ratio * gen_pt
    expected_targets = transforms.targets.inverse(np.repeat(0.5 * merged[["cond__gen_pt"]].to_numpy(), 3, axis=1))
    np.testing.assert_allclose(merged["pt"], expected_targets["ptRatio"] * merged["gen_pt_real"], rtol=1e-5)
    np.testing.assert_array_equal(merged["nConstituents"], np.rint(expected_targets["nConstituents"]).astype(np.int32))
    assert back["nConstituents"].dtype == np.int32


def test_a_model_that_puts_out_nan_stops_generation_naming_it_and_writes_no_file(tmp_path):
    """A diverged model's NaN had passed the support clip into the ROOT file."""
    split, transforms = jets_case()
    test_rows = split.sort_values(["source_file", "entry", "object_index"], kind="mergesort").reset_index(drop=True)
    broken = LinearSampler(3, shift=np.array([0.0, np.nan, 0.0]))
    with pytest.raises(InputError, match=r"generation of jets: the trained model put out \d+ NaN or infinite values "
                                         r"\(targets \['area'\]\); it is broken"):
        generate_to_root(broken, transforms, test_rows, jets_settings(chunk_rows=100), tmp_path / "g.root")
    assert list(tmp_path.iterdir()) == []


def test_generation_is_reproducible_and_chunking_keeps_events_whole(tmp_path):
    split, transforms = jets_case(100)
    test_rows = split.sort_values(["source_file", "entry", "object_index"], kind="mergesort").reset_index(drop=True)
    for part in event_aligned_chunks(test_rows, 7):
        inside = test_rows.iloc[part][["source_file", "entry"]].apply(tuple, axis=1)
        outside = test_rows.drop(test_rows.index[part])[["source_file", "entry"]].apply(tuple, axis=1)
        assert not set(inside) & set(outside)
    sampler = LinearSampler(3, noise=0.3)
    for name in ("a.root", "b.root"):
        generate_to_root(sampler, transforms, test_rows, jets_settings(50), tmp_path / name)
    a = read_generated_root(tmp_path / "a.root", jets_settings().layout)
    b = read_generated_root(tmp_path / "b.root", jets_settings().layout)
    pd.testing.assert_frame_equal(a, b)


def test_the_split_is_read_without_targets_and_generated_branches_keep_the_real_types(tmp_path):
    """Generation reads identity, conditions and cond__* only; the targets' types still come from the
    split (its schema), so an integer target stays an integer branch. Reading the rows it does not use
    had cost most of a large split's memory."""
    split, transforms = jets_case(120)
    split.to_parquet(tmp_path / "test.parquet")
    settings = jets_settings(chunk_rows=50)
    rows, column_types = read_test_split(tmp_path / "test.parquet", settings)
    assert not {"ptRatio", "nConstituents", "targ__area"} & set(rows.columns)
    assert {"source_file", "entry", "object_index", "run", "event", "gen_pt", "cond__PV_npvs"} <= set(rows.columns)
    assert len(column_types) == 0 and column_types["nConstituents"].dtype == np.int32
    assert rows[["source_file", "entry", "object_index"]].equals(
        split.sort_values(["source_file", "entry", "object_index"])[["source_file", "entry", "object_index"]]
        .reset_index(drop=True))
    generate_to_root(LinearSampler(3), transforms, rows, settings, tmp_path / "g.root", column_types=column_types)
    back = read_generated_root(tmp_path / "g.root", settings.layout)
    assert back["nConstituents"].dtype == np.int32 and len(back) == len(split)
    generate_to_root(LinearSampler(3), transforms, rows, settings, tmp_path / "untyped.root")
    assert read_generated_root(tmp_path / "untyped.root", settings.layout)["nConstituents"].dtype == np.float32


@pytest.mark.parametrize("case", ["no conditions", "empty", "not parquet"])
def test_a_bad_split_is_an_input_error_naming_it(tmp_path, case):
    split, _ = jets_case(20)
    path = tmp_path / "test.parquet"
    if case == "no conditions":
        split.drop(columns=["cond__gen_eta"]).to_parquet(path)
        expected = r"columns \['cond__gen_eta'\] missing"
    elif case == "empty":
        split.iloc[:0].to_parquet(path)
        expected = "the test split is empty"
    else:
        path.write_bytes(b"PAR1 not a parquet file")
        expected = "cannot read the test split"
    with pytest.raises(InputError, match=f"test.parquet: .*{expected}"):
        read_test_split(path, jets_settings())


def ship_case(n=3000, seed=0):
    """categories.json made by prep-A's own functions from a hand-built muon table."""
    rng = np.random.default_rng(seed)
    from_target = rng.random(n) < 0.4
    muons = pd.DataFrame({
        "source_file": "0.root", "entry": np.arange(n, dtype=np.int64), "object_index": np.zeros(n, np.int32),
        "PdgCode": rng.choice([13, -13], n), "weight": rng.uniform(1, 700, n),
        "StartX": np.where(from_target, 0.0, rng.normal(0, 5, n)), "StartY": np.where(from_target, 0.0, rng.normal(0, 5, n)),
        "StartZ": rng.uniform(-7000, -6000, n), "Px": rng.normal(0, 1, n), "Py": rng.normal(0, 1, n),
        "Pz": rng.exponential(20, n) + 1,
    })
    tables, described = cat.categorise(muons, cat.reduce_minmax([cat.file_minmax(muons)]))
    return tables, json.loads(json.dumps(described))


def test_poisson_counts_follow_shares():
    counts = poisson_category_counts({1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}, 100_000, np.random.default_rng(0))
    assert abs(sum(counts.values()) - 100_000) < 5 * np.sqrt(100_000)
    for category, share in {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}.items():
        assert abs(counts[category] / 100_000 - share) < 0.01


def test_ship_generation_per_category_in_physical_units(tmp_path):
    tables, described = ship_case()
    targets = ["StartX", "StartY", "StartZ", "Px", "Py", "Pz"]
    table = pd.concat(tables.values(), ignore_index=True).fillna({"StartX": 0.0, "StartY": 0.0})
    transforms = ModelTransforms(conditions=fit_variable_transforms(table, {"category": "passthrough"}),
                                 targets=fit_variable_transforms(table, {t: "passthrough" for t in targets}))
    settings = GenerateSettings.from_params({
        "model_name": "ship_muons", "seed": 1, "chunk_rows": 700, "validation": {"generated_events": 4000},
        "model": {"kind": "flow", "conditions": ["category"], "targets": targets, "categorised": True, "weight": "weight"},
        "dataset": {"tree": "cbmsim", "identity": [], "table": {
            "collection": {"counter": "nvetoPoint", "prefix": "vetoPoint_"}, "fields": ["TrackID"], "output_prefix": "veto_",
            "match": {"index": "TrackID", "collection": {"counter": "nMCTrack", "prefix": "MCTrack_"},
                      "fields": ["PdgCode", "StartX", "StartY", "StartZ", "Px", "Py", "Pz", "weight"], "output_prefix": ""}}},
    })
    sampler = LinearSampler(6, slope=0.0, shift=0.0, noise=0.3)  # normalised space: centre of [-1, 1]
    stats = generate_to_root(sampler, transforms, pd.DataFrame(), settings, tmp_path / "g.root", described)
    back = read_generated_root(tmp_path / "g.root", settings.layout)
    assert stats.rows == len(back) and abs(len(back) - 4000) < 5 * np.sqrt(4000)
    shares = cat.category_shares(described, weighted=True)
    for category, share in shares.items():
        assert abs((back["category"] == category).mean() - share) < 0.04
    pdg = back.groupby("category")["PdgCode"].unique()
    assert pdg[1].tolist() == [-13] and pdg[2].tolist() == [13] and pdg[4].tolist() == [13]
    target_muons = back[back["category"].isin([1, 2])]
    assert (target_muons[["StartX", "StartY"]] == 0).all().all()
    # 0 in normalised units is the middle of the category's physical range
    cat4 = described["categories"]["4"]
    middle = 0.5 * (cat4["min"]["Pz"] + cat4["max"]["Pz"])
    assert abs(back.loc[back["category"] == 4, "Pz"].median() - middle) < 0.1 * (cat4["max"]["Pz"] - cat4["min"]["Pz"])
    np.testing.assert_allclose(back["weight"].sum(), described["weight_total"] * len(back) / 4000, rtol=1e-4)
    # in a random order: sorted by category, the file's first entries had been category 1 only
    first = back["category"].iloc[:200]
    assert first.nunique() == len(shares) and not back["category"].is_monotonic_increasing


# --- generated file -> validate_model / validate_summary ------------------------------------------
FIGURES = ("distributions", "correlations", "bdt_output", "response")


def _validation_params(n=400):
    return {
        "model_name": "jets", "seed": 3,
        "model": {"kind": "flow", "conditions": CONDITIONS, "targets": TARGETS},
        "dataset": {"tree": "Events", "identity": ["run", "luminosityBlock", "event"], "table": JETS_TABLE},
        "validation": {"classifier": "hist", "n_train_per_class": n, "n_eval_per_class": n, "bins": 20,
                       "bootstrap": 20, "thresholds": {"auc_minus_floor": {"warn": 0.05, "fail": 0.1},
                                                       "ks_max": {"warn": 0.05, "fail": 0.1}}},
    }


def _validate(tmp_path, name, sampler, n=400, rows=600):
    split, transforms = jets_case(rows)
    split.to_parquet(tmp_path / "test.parquet")
    save_transforms(transforms, tmp_path / "transforms.json")
    generate_to_root(sampler, transforms, split.sort_values(["source_file", "entry", "object_index"]).reset_index(drop=True),
                     jets_settings(), tmp_path / f"{name}.root")
    figures = {key: str(tmp_path / name / f"{key}.png") for key in FIGURES}
    metrics = tmp_path / name / "metrics.json"
    validate_run(str(tmp_path / "test.parquet"), str(tmp_path / "transforms.json"), str(tmp_path / f"{name}.root"),
        str(metrics), figures, _validation_params(n), verdict_csv=str(tmp_path / name / "verdict.csv"))
    return json.loads(metrics.read_text()), figures


def test_validate_model_writes_metrics_and_figures(tmp_path):
    metrics, figures = _validate(tmp_path, "noisy", LinearSampler(3, slope=0.0, noise=1.0), n=1000)
    assert metrics["features"] == CONDITIONS + ["pt", "area", "nConstituents"]  # ptRatio back to pt
    assert metrics["rows_real"] == metrics["rows_generated"]
    assert metrics["reduced"] is True and "fewer rows" in metrics["note"]  # ~1200 rows < 1000 + 1000 asked
    for path in figures.values():
        with open(path, "rb") as stream:
            assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    assert metrics["spd_fraction_generated"] is None


def test_validate_ranks_generators_and_summary_gathers(tmp_path):
    # The real targets are independent standard-normal-ish noise in transformed space, so a sampler
    # drawing N(0, 1) is a good generator and a shifted, narrow one a degraded generator.
    good, _ = _validate(tmp_path, "good", LinearSampler(3, slope=0.0, noise=1.0))
    bad, _ = _validate(tmp_path, "bad", LinearSampler(3, slope=0.0, shift=0.8, noise=0.4))
    assert bad["auc"] > good["auc"] + 0.2
    for name in ("good", "bad"):
        (tmp_path / name / "generation.json").write_text(json.dumps({"rows": 10, "rows_per_s": 5.0}))
    train = tmp_path / "train"
    train.mkdir()
    pd.DataFrame({"epoch": [1, 2], "seconds": [1.5, 2.5]}).to_csv(train / "history.csv", index=False)
    run_summary(metrics=[str(tmp_path / n / "metrics.json") for n in ("good", "bad")],
                generation=[str(tmp_path / n / "generation.json") for n in ("good", "bad")],
                train_dirs=[str(train), str(tmp_path / "missing")], output=str(tmp_path / "summary.csv"))
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["auc"].tolist() == pytest.approx([good["auc"], bad["auc"]], abs=1e-5)
    assert summary["training_seconds"].iloc[0] == 4.0 and np.isnan(summary["training_seconds"].iloc[1])
    assert summary["generation_rows_per_s"].tolist() == [5.0, 5.0]
    assert summary["verdict"].tolist() == [good["verdict"]["overall"], "fail"]  # bad: AUC - floor > 0.2
    assert summary["auc_minus_floor"].tolist() == pytest.approx([good["auc_minus_floor"], bad["auc_minus_floor"]], abs=1e-5)
    assert abs(good["floor"]["auc"] - 0.5) < 4 * good["floor"]["auc_error"]
    verdict_csv = pd.read_csv(tmp_path / "bad" / "verdict.csv")
    assert verdict_csv["metric"].tolist() == ["overall", "auc_minus_floor", "ks_max"]
    assert verdict_csv["verdict"].tolist()[:2] == ["fail", "fail"]


def test_small_sample_is_reported_not_computable_with_its_plots_and_summary_row(tmp_path):
    """A few hundred objects: every plot is made, the figure of merit says why it has no number."""
    metrics, figures = _validate(tmp_path, "small", LinearSampler(3, slope=0.0, noise=1.0), rows=40)
    assert metrics["status"] == "not computable"
    assert metrics["auc"] is None and metrics["chi2_ndf"] is None and metrics["auc_error"] is None
    assert "needs at least 136" in metrics["reason"] and f"only {metrics['rows_real']} real" in metrics["reason"]
    for path in figures.values():
        with open(path, "rb") as stream:
            assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "small" / "generation.json").write_text(json.dumps({"rows": 10, "rows_per_s": 5.0}))
    run_summary(metrics=[str(tmp_path / "small" / "metrics.json")], generation=[str(tmp_path / "small" / "generation.json")],
                train_dirs=[str(tmp_path / "missing")], output=str(tmp_path / "summary.csv"))
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["status"].tolist() == ["not computable"] and np.isnan(summary["auc"].iloc[0])


def test_reduced_sample_states_the_aucs_statistical_error(tmp_path):
    metrics, _ = _validate(tmp_path, "reduced", LinearSampler(3, slope=0.0, noise=1.0), n=1000)
    n = metrics["n_eval_per_class"]
    assert metrics["status"] == "ok" and metrics["auc_null_error"] == pytest.approx(np.sqrt((2 * n + 1) / (12 * n * n)))
    assert f"{metrics['auc_null_error']:.3f}" in metrics["note"]
    assert 0.5 * metrics["auc_null_error"] < metrics["auc_error"] < 2 * metrics["auc_null_error"]  # bootstrap


def test_transforms_of_another_model_or_order_are_refused():
    """Two swapped targets had been decoded with each other's transforms, plausibly, without a word."""
    from dataclasses import replace

    from pipeline_steps.generate.step import check_transforms_match

    _, transforms = jets_case(20)
    settings = jets_settings()
    check_transforms_match(transforms, settings, "t.json")  # its own: nothing to say
    swapped = replace(settings, targets=settings.targets[::-1])
    with pytest.raises(InputError, match=r"t\.json: the transforms are not those of model 'jets': targets "):
        check_transforms_match(transforms, swapped, "t.json")
    with pytest.raises(InputError, match=r"model 'jets', expected 'nano_muons'"):
        check_transforms_match(transforms, replace(settings, model="nano_muons"), "t.json")
    # a scan point reads its scan's shared preprocessing (WorkflowPlan.preprocessing_name), and only that
    point = replace(settings, model="jets__hidden_dim-16", preprocessing="jets")
    check_transforms_match(transforms, point, "t.json")
    with pytest.raises(InputError, match=r"model 'jets', expected 'jets__n_bins-4'"):
        check_transforms_match(transforms, replace(point, preprocessing="jets__n_bins-4"), "t.json")


def test_a_read_only_conditions_array_reaches_the_sampler_writable():
    """A model of one float32 condition got Arrow's read-only buffer; torch.from_numpy warned in every log."""
    from pipeline_steps.generate.sampling import sample_conditions

    seen = []

    class Recording:
        def sample(self, conditions, seed):
            seen.append(conditions)
            return np.zeros((len(conditions), 2), np.float32)

    conditions = np.arange(4, dtype=np.float32).reshape(4, 1)
    conditions.flags.writeable = False
    sample_conditions(Recording(), conditions, 0, 2)
    assert seen[0].flags.writeable and np.array_equal(seen[0], conditions)
