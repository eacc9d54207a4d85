"""Physics profiles of the validate stage: which profiles a config gets, and that the numbers are right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline_steps.preprocess.derived import DerivedVariable
from pipeline_steps.validate import profiles
from pipeline_steps.validate.profiles import ProfilePlan
from pipeline_steps.validate.tables import Comparison

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
PT_RATIO = DerivedVariable("ptRatio", "ratio", "pt", "gen_pt")


# --- which profiles a model gets ----------------------------------------------------------------------
def test_default_models_get_the_profiles_their_config_implies():
    jets = ProfilePlan.from_model(CONFIG["models"]["jets"])
    assert [s.name for s in jets.residuals] == ["ptRatio", "etaMinusGen", "phiMinusGen", "massRatio"]
    assert jets.versus == ("gen_pt", "gen_eta", "gen_mass")  # gen_phi: only a delta_phi reference
    assert jets.flavour == "gen_hadronFlavour"  # preferred over gen_partonFlavour
    assert jets.btag == ("btagDeepB", "btagDeepFlavB", "btagCSVV2")
    assert not jets.categorised and not jets.covariance
    muons = ProfilePlan.from_model(CONFIG["models"]["nano_muons"])
    assert muons.versus == ("gen_pt", "gen_eta") and muons.flavour is None and muons.btag == ()
    ship = ProfilePlan.from_model(CONFIG["models"]["ship_muons"])
    assert ship.categorised and not ship.residuals and not ship.covariance
    tracks = ProfilePlan.from_model(CONFIG["models"]["tracks_cov"])
    assert tracks.covariance and not tracks.residuals and not tracks.btag
    assert ProfilePlan.from_model({"kind": "flow", "conditions": ["x"], "targets": ["y"]}).empty


def test_btag_block_needs_a_flavour_condition_and_derived_needs_its_reference_as_condition():
    model = {"kind": "flow", "conditions": ["gen_pt"], "targets": ["ptRatio", "btagDeepB"],
             "derived": {"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]},
                         "unused": {"op": "ratio", "of": ["mass", "gen_mass"]}}}
    plan = ProfilePlan.from_model(model)
    assert plan.btag == () and [s.name for s in plan.residuals] == ["ptRatio"] and plan.versus == ("gen_pt",)


# --- estimators ---------------------------------------------------------------------------------------
def test_resolution_is_the_gaussian_sigma_and_ignores_tails_an_rms_would_follow():
    rng = np.random.default_rng(1)
    core = rng.normal(1.0, 0.1, 50_000)
    tails = rng.uniform(0.0, 3.0, 2_500)  # 5 % mis-matched jets
    values = np.concatenate([core, tails])
    assert profiles.robust_resolution(core) == pytest.approx(0.1, rel=0.02)
    assert profiles.robust_resolution(values) == pytest.approx(0.1, rel=0.12)
    assert np.std(values) > 2.0 * 0.1  # the RMS more than doubles


def test_bootstrap_error_matches_the_gaussian_expectation():
    rng = np.random.default_rng(2)
    values = rng.normal(0.0, 1.0, 2000)
    error = profiles.bootstrap_resolution_error(values, np.random.default_rng(3))
    assert error == pytest.approx(0.96 / np.sqrt(2000), rel=0.3)  # asymptotic error of the 16-84 % half-range


def _jets_like(n: int, width: float, rng, response: float = 1.0) -> pd.DataFrame:
    gen_pt = rng.exponential(40.0, n) + 20.0
    flavour = rng.choice([0, 4, 5], n, p=[0.6, 0.15, 0.25])
    pt = gen_pt * rng.normal(response, width, n)
    btag = np.where(flavour == 5, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 1.0, n))
    return pd.DataFrame({"gen_pt": gen_pt, "gen_eta": rng.uniform(-2.5, 2.5, n), "gen_hadronFlavour": flavour,
                         "pt": pt, "eta": rng.normal(0, 1, n), "btagDeepFlavB": btag})


def test_a_ten_percent_wider_generator_shows_a_resolution_ratio_of_1_1_and_unit_response():
    rng = np.random.default_rng(4)
    # 200k jets: 20k a bin, the resolution ratio is known to ~1 % per bin
    real, generated = _jets_like(200_000, 0.10, rng), _jets_like(200_000, 0.11, rng, response=1.02)
    edges = profiles.profile_edges(real["gen_pt"].to_numpy())
    assert len(edges) == profiles.MAX_BINS + 1
    table = profiles.compare_profiles(
        profiles.profile(real["gen_pt"].to_numpy(), profiles.derived_values(PT_RATIO, real), edges, rng),
        profiles.profile(generated["gen_pt"].to_numpy(), profiles.derived_values(PT_RATIO, generated), edges, rng))
    assert table["resolution_ratio"].to_numpy() == pytest.approx(1.1, abs=0.045)
    assert table["mean_ratio"].to_numpy() == pytest.approx(1.02, abs=0.005)
    pulls = (table["resolution_ratio"] - 1.1) / table["resolution_ratio_error"]
    assert np.all(np.abs(pulls) < 4)  # the propagated errors are the size of the scatter, not 10x off
    assert table["mean_error_real"].to_numpy() == pytest.approx(0.1 / np.sqrt(table["n_real"].to_numpy()), rel=0.1)


def test_bins_under_the_minimum_are_left_out_not_estimated():
    rng = np.random.default_rng(5)
    x = np.concatenate([np.full(100, 0.5), np.full(profiles.MIN_ENTRIES_PER_BIN - 1, 1.5)])
    y = rng.normal(1.0, 0.1, len(x))
    table = profiles.profile(x, y, np.array([0.0, 1.0, 2.0]), rng)
    assert table["n"].tolist() == [100, profiles.MIN_ENTRIES_PER_BIN - 1]
    assert np.isfinite(table.loc[0, "resolution"]) and np.isnan(table.loc[1, ["mean", "resolution"]]).all()
    compared = profiles.compare_profiles(table, table)
    assert profiles._left_out(compared) == [1]


def test_profile_edges_shrink_with_the_sample_and_never_fail():
    assert len(profiles.profile_edges(np.arange(100.0))) - 1 == 100 // (2 * profiles.MIN_ENTRIES_PER_BIN)
    assert len(profiles.profile_edges(np.arange(5.0))) == 2
    assert len(profiles.profile_edges(np.full(50, 3.0))) == 2
    assert len(profiles.profile_edges(np.array([]))) == 2


def test_derived_values_use_the_floor_and_give_nan_for_a_zero_denominator():
    table = pd.DataFrame({"mass": [10.0, 2.0, 3.0], "gen_mass": [5.0, 0.0, 0.5]})
    floored = DerivedVariable("massRatio", "ratio", "mass", "gen_mass", floor=1.0)
    assert profiles.derived_values(floored, table).tolist() == [2.0, 2.0, 3.0]
    plain = profiles.derived_values(DerivedVariable("r", "ratio", "mass", "gen_mass"), table)
    assert plain[0] == 2.0 and np.isnan(plain[1])
    dphi = DerivedVariable("d", "delta_phi", "a", "b")
    assert profiles.derived_values(dphi, pd.DataFrame({"a": [3.0], "b": [-3.0]}))[0] == pytest.approx(6.0 - 2 * np.pi)


# --- b tagging ----------------------------------------------------------------------------------------
def test_flavour_masks_group_hadron_and_parton_codes():
    masks = profiles.flavour_masks(np.array([0, 4, 5, -5, -4, 21, 1, 3.0]))
    assert masks["b"].tolist() == [False, False, True, True, False, False, False, False]
    assert masks["c"].tolist() == [False, True, False, False, True, False, False, False]
    assert masks["light"].sum() == 4


def test_working_points_and_efficiencies_on_a_known_sample():
    rng = np.random.default_rng(6)
    light = rng.uniform(0.0, 1.0, 100_000)
    cuts = profiles.working_point_cuts(light)
    assert cuts[0.1] == pytest.approx(0.9, abs=0.005) and cuts[0.01] == pytest.approx(0.99, abs=0.001)
    assert profiles.working_point_cuts(light[:500])[0.01] is None  # 5 light jets would pass: left out
    n = 60_000
    flavour = np.repeat([0, 4, 5], n // 3)
    real = pd.DataFrame({"f": flavour, "score": np.concatenate([light[: n // 3], rng.uniform(0.0, 1.0, n // 3),
                                                                rng.uniform(0.5, 1.0, n // 3)])})
    generated = real.copy()
    generated.loc[generated["f"] == 5, "score"] = rng.uniform(0.8, 1.0, n // 3)  # a harder b-tag response
    table = profiles.efficiency_table(real, generated, "score", "f", {0.1: 0.9})
    b = table[table["flavour"] == "b"].iloc[0]
    assert b["efficiency_real"] == pytest.approx(0.2, abs=0.01)  # P(U(0.5, 1) > 0.9)
    assert b["efficiency_generated"] == pytest.approx(0.5, abs=0.015)  # P(U(0.8, 1) > 0.9)
    assert b["ratio"] == pytest.approx(2.5, abs=0.15) and b["error_real"] == pytest.approx(np.sqrt(0.2 * 0.8 / 20_000), rel=0.05)
    light_row = table[table["flavour"] == "light"].iloc[0]
    assert light_row["efficiency_real"] == pytest.approx(0.1, abs=0.01) and light_row["ratio"] == pytest.approx(1.0)


def test_roc_curve_of_uniform_scores():
    rng = np.random.default_rng(7)
    curve = profiles.roc_curve(rng.uniform(0.5, 1.0, 200_000), rng.uniform(0.0, 1.0, 200_000))
    # cut for efficiency e is 1 - e/2, so the uniform background passes at e/2
    assert curve["mistag"].to_numpy() == pytest.approx(curve["efficiency"].to_numpy() / 2, abs=0.005)
    assert profiles.roc_curve(np.ones(5), np.zeros(100)).empty


# --- covariance ---------------------------------------------------------------------------------------
def test_covariance_features_give_sigmas_and_correlations():
    table = pd.DataFrame({"cov_00": [4.0, -1.0], "cov_01": [1.0, 0.0], "cov_11": [1.0, 1.0]})
    features = profiles.covariance_features(table)
    assert features.loc[0, "sigma_0"] == 2.0 and features.loc[0, "rho_01"] == pytest.approx(0.5)
    assert np.isnan(features.loc[1, "sigma_0"]) and np.isnan(features.loc[1, "rho_01"])


# --- the folder --------------------------------------------------------------------------------------
def _comparison(real: pd.DataFrame, generated: pd.DataFrame, targets: list[str], weights=None) -> Comparison:
    features = list(real.columns)
    return Comparison(real, generated, features, targets, weights, None)


def _read_folder(folder: Path) -> dict:
    text = (folder / "profiles.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    document = json.loads(text)
    assert sorted(document["figures"]) == sorted(p.name for p in folder.glob("*.png"))
    for name in document["figures"]:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporaries left
    return document


def test_jets_folder_has_response_and_btag_figures_and_numbers(tmp_path):
    rng = np.random.default_rng(8)
    real, generated = _jets_like(20_000, 0.10, rng), _jets_like(20_000, 0.11, rng)  # 1200 light jets a bin
    model = {"kind": "flow", "conditions": ["gen_pt", "gen_eta", "gen_hadronFlavour"],
             "targets": ["ptRatio", "btagDeepFlavB"], "derived": {"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]}}}
    comparison = _comparison(real, generated, ["pt", "btagDeepFlavB"])
    document = profiles.write_profiles(comparison, ProfilePlan.from_model(model, seed=1), tmp_path / "profiles", "jets")
    on_disk = _read_folder(tmp_path / "profiles")
    assert {"ptRatio_vs_gen_pt.png", "btag_btagDeepFlavB.png", "btag_efficiency.png", "btag_roc.png"} <= set(
        document["figures"])
    groups = {p["group"] for p in on_disk["profiles"]}
    assert groups == {"light", "c", "b"}
    light = next(p for p in on_disk["profiles"] if p["group"] == "light")
    ratios = [b["resolution_ratio"] for b in light["bins"] if b["resolution_ratio"] is not None]
    assert len(ratios) >= 5 and np.median(ratios) == pytest.approx(1.1, abs=0.06)
    assert on_disk["btag"]["working_points"]["btagDeepFlavB"]["0.1"] == pytest.approx(0.9, abs=0.03)


def test_a_tiny_sample_still_gets_its_figures_with_bins_left_out(tmp_path):
    rng = np.random.default_rng(9)
    real, generated = _jets_like(12, 0.1, rng), _jets_like(12, 0.1, rng)
    model = {"kind": "flow", "conditions": ["gen_pt", "gen_hadronFlavour"], "targets": ["ptRatio", "btagDeepFlavB"],
             "derived": {"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]}}}
    profiles.write_profiles(_comparison(real, generated, ["pt", "btagDeepFlavB"]), ProfilePlan.from_model(model),
                            tmp_path / "profiles", "small")
    document = _read_folder(tmp_path / "profiles")
    assert all(p["left_out_bins"] == [0] for p in document["profiles"])
    assert document["btag"]["working_points"]["btagDeepFlavB"] == {"0.1": None, "0.01": None, "0.001": None}
    assert all(row["efficiency_real"] is None for row in document["btag"]["efficiencies"])


def test_categories_and_covariance_folders(tmp_path):
    rng = np.random.default_rng(10)
    ship = pd.DataFrame({"category": np.repeat([1.0, 2.0, 3.0, 4.0], [200, 200, 200, 5]), "Pz": rng.normal(50, 5, 605)})
    comparison = _comparison(ship, ship.sample(frac=1.0, random_state=1), ["Pz"], weights=np.full(605, 2.0))
    plan = ProfilePlan.from_model({"kind": "flow", "categorised": True, "conditions": ["category"], "targets": ["Pz"]})
    profiles.write_profiles(comparison, plan, tmp_path / "ship", "ship")
    document = _read_folder(tmp_path / "ship")
    assert document["figures"] == [f"category_{k}.png" for k in (1, 2, 3, 4)]
    assert [c["left_out"] for c in document["categories"]] == [False, False, False, True]
    assert document["categories"][0]["share_real"] == pytest.approx(200 / 605)

    sigma = rng.uniform(1.0, 2.0, (300, 2))
    real = pd.DataFrame({"x": rng.normal(size=300), "cov_00": sigma[:, 0] ** 2, "cov_01": 0.3 * sigma.prod(axis=1),
                         "cov_11": sigma[:, 1] ** 2})
    generated = real.copy()
    generated.loc[:29, "cov_01"] = 2.0 * sigma[:30].prod(axis=1)  # |rho| = 2: not positive definite
    plan = ProfilePlan.from_model({"kind": "covariance_gan", "conditions": ["x"], "targets": ["cov_00", "cov_01", "cov_11"]})
    profiles.write_profiles(_comparison(real, generated, ["cov_00", "cov_01", "cov_11"]), plan, tmp_path / "cov", "cov")
    document = _read_folder(tmp_path / "cov")
    assert document["figures"] == ["covariance_sigmas.png", "covariance_correlations.png"]
    assert document["covariance"]["spd_fraction"] == {"real": 1.0, "generated": pytest.approx(0.9)}
    assert document["covariance"]["elements"]["rho_01"]["real"]["median"] == pytest.approx(0.3)


def test_a_model_without_profiles_gets_a_figure_saying_so(tmp_path):
    table = pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50.0)})
    plan = ProfilePlan.from_model({"kind": "flow", "conditions": ["x"], "targets": ["y"]})
    profiles.write_profiles(_comparison(table, table, ["y"]), plan, tmp_path / "profiles", "plain")
    assert _read_folder(tmp_path / "profiles")["figures"] == ["none.png"]
