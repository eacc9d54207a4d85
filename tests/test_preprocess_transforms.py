"""Transforms: exact round trips, decorrelation, dequantisation, derived targets, covariance
representations, JSON + npz storage, and no pickle anywhere in the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.preprocess import covariance_representation as cov
from pipeline_steps.preprocess.derived import DerivedVariable, compute_derived, invert_derived, wrap_phi
from pipeline_steps.preprocess.model_transforms import ModelTransforms, load_transforms, save_transforms
from pipeline_steps.preprocess.transforms import TRANSFORM_KINDS, fit_variable_transforms

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline_steps"


def _physics_sample(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "p": rng.lognormal(2.0, 1.0, n).astype(np.float32),             # GeV, positive, long tail
        "eta": rng.normal(0.0, 2.0, n),
        "iso": (rng.exponential(0.2, n) * rng.choice([-1, 1], n)),       # signed, spiky at 0
        "flag": rng.integers(0, 2, n).astype(np.int32),
    })


@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
def test_every_kind_round_trips_to_1e6_relative(kind):
    data = _physics_sample()
    column = "p" if "log" in kind and "signed" not in kind else "eta"
    transforms = fit_variable_transforms(data.iloc[:2000], {column: kind})
    test_rows = data.iloc[2000:]  # not fitted on: includes values outside the training range
    exact = transforms.inverse(transforms.forward(test_rows, dtype=np.float64))[column].to_numpy(np.float64)
    truth = test_rows[column].to_numpy(np.float64)
    # Error analysis. Through float64 the only rounding that counts is the final cast back to the branch's
    # float32, at most 2^-24 ~ 6e-8 relative, so rtol 1e-6 leaves 17x for the float64 arithmetic (~1e-15).
    np.testing.assert_allclose(exact, truth, rtol=1e-6, atol=0)
    # The float32 contract output rounds the transformed value y once: x moves by <= 2^-24 |y| |dx/dy|.
    # standard: |y| |dx/dy| = |x - mean| <= max|x| + std; log kinds: x |log x - m|, the sample's log span
    # ~9 times x; quantile kinds: the local slope times |y| <= 5.3. Measured on every kind (and on Pareto
    # alpha=1 and lognormal sigma=4 samples), the error stayed within 1x (log kinds 2x) of that one
    # rounding; the bound below, 1e-5 = 168 x 2^-24 of the data scale, held with a 25-600x margin.
    stored = transforms.inverse(transforms.forward(test_rows))[column].to_numpy(np.float64)
    assert np.max(np.abs(stored - truth)) <= 1e-5 * (np.max(np.abs(truth)) + np.std(truth))
    assert transforms.forward(test_rows).dtype == np.float32


@pytest.mark.parametrize("kind", [kind for kind in TRANSFORM_KINDS if kind != "passthrough"])
@pytest.mark.parametrize("value", [6500.0, 0.1, 1.0e17])
def test_a_column_constant_in_training_maps_to_finite_values_and_back(kind, value):
    """np.std of 6500 repeated is 1.8e-15, not 0: a test row of 6800 had gone to 1.3e13 in model space;
    a constant 1e17 under minmax or quantiles had got a zero-width range, and NaN from every forward."""
    train = pd.DataFrame({"beam": np.full(500, value)})
    test = pd.DataFrame({"beam": [value, value * 1.05]})
    transforms = fit_variable_transforms(train, {"beam": kind})
    z = transforms.forward(test, dtype=np.float64)
    assert np.all(np.isfinite(z)) and np.all(np.abs(z) <= 2.0), z
    assert transforms.forward(train.iloc[:3], dtype=np.float64)[0, 0] == pytest.approx(0.0 if "standard" in kind
                                                                                       or "quantile" in kind else -1.0)
    np.testing.assert_allclose(transforms.inverse(z)["beam"].to_numpy(), test["beam"].to_numpy(), rtol=1e-12)


def test_a_spike_with_a_few_rows_off_it_keeps_their_distance_under_quantiles():
    """Every knot on 6500 with one row at 7000: the width is the column's range (7000 -> z 1), not the
    constant's size, which would have squeezed the off-spike row next to the spike (z 0.077)."""
    train = pd.DataFrame({"beam": np.r_[np.full(4999, 6500.0), 7000.0]})
    transforms = fit_variable_transforms(train, {"beam": "quantile_normal"})
    z = transforms.forward(pd.DataFrame({"beam": [6500.0, 7000.0]}), dtype=np.float64)[:, 0]
    assert list(z) == [0.0, 1.0]


def test_quantile_normal_maps_training_data_onto_a_standard_normal_and_extrapolates():
    data = _physics_sample(n=5000)
    transforms = fit_variable_transforms(data, {"p": "log10_quantile_normal", "iso": "quantile_normal"})
    z = transforms.forward(data, dtype=np.float64)
    assert np.allclose(z.mean(axis=0), 0.0, atol=0.05) and np.allclose(z.std(axis=0), 1.0, atol=0.05)
    beyond = pd.DataFrame({"p": [1e-3, 1e6], "iso": [-50.0, 50.0]})
    z_beyond = transforms.forward(beyond, dtype=np.float64)
    assert np.all(z_beyond[0] < z.min(axis=0)) and np.all(z_beyond[1] > z.max(axis=0))
    # p comes back as float32, its branch dtype
    np.testing.assert_allclose(transforms.inverse(z_beyond).to_numpy(), beyond.to_numpy(), rtol=1e-6)


def test_decorrelation_removes_correlation_and_inverts():
    rng = np.random.default_rng(1)
    a = rng.normal(size=4000)
    data = pd.DataFrame({"a": a, "b": 0.9 * a + 0.1 * rng.normal(size=4000), "c": rng.normal(size=4000) - a})
    kinds = {"a": "standard", "b": "standard", "c": "quantile_normal"}
    plain = fit_variable_transforms(data, kinds)
    assert abs(np.corrcoef(plain.forward(data).T)[0, 1]) > 0.9
    whitened = fit_variable_transforms(data, kinds, decorrelate=True)
    y = whitened.forward(data, dtype=np.float64)
    np.testing.assert_allclose(np.cov(y.T), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(whitened.inverse(y).to_numpy(), data.to_numpy(), rtol=1e-6, atol=1e-12)


def test_dequantisation_returns_the_exact_integers_in_their_dtype():
    rng = np.random.default_rng(2)
    data = pd.DataFrame({
        "nConstituents": rng.poisson(20, 5000).astype(np.uint8),
        "jetId": rng.choice([0, 2, 6], 5000).astype(np.int32),
        "looseId": rng.random(5000) < 0.7,
    })
    transforms = fit_variable_transforms(data, {"nConstituents": "standard", "jetId": "quantile_normal",
                                                "looseId": "standard"}, dequantize=list(data), seed=3)
    forward = transforms.forward(data)
    continuous = transforms.inverse(forward.astype(np.float64))  # noise is removed only by the floor
    assert not np.array_equal(forward[:, 0], np.round(forward[:, 0]))
    assert len(np.unique(forward[:, 0])) > 1000  # dequantised: no longer a few spikes
    back = transforms.inverse(forward)
    for name in data:
        assert back[name].dtype == data[name].dtype
        assert np.array_equal(back[name].to_numpy(), data[name].to_numpy())
    assert np.array_equal(continuous["jetId"].to_numpy(), data["jetId"].to_numpy())
    assert np.array_equal(forward, transforms.forward(data)), "dequantisation noise must be seeded"
    with pytest.raises(InputError, match="integer"):
        fit_variable_transforms(pd.DataFrame({"x": [0.5, 1.0]}), {"x": "standard"}, dequantize=["x"])


def test_log_of_non_positive_values_is_an_input_error():
    with pytest.raises(InputError, match="'gen_mass'.*> 0"):
        fit_variable_transforms(pd.DataFrame({"gen_mass": [1.0, 0.0]}), {"gen_mass": "log_standard"})
    with pytest.raises(ConfigError, match="expected one of"):
        fit_variable_transforms(pd.DataFrame({"x": [1.0]}), {"x": "sqrt"})


def test_derived_targets_invert_and_delta_phi_wraps_into_minus_pi_pi():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"pt": rng.uniform(20, 200, 1000), "gen_pt": rng.uniform(20, 200, 1000),
                       "phi": rng.uniform(-np.pi, np.pi, 1000), "gen_phi": rng.uniform(-np.pi, np.pi, 1000)})
    for spec in (DerivedVariable("ptRatio", "ratio", "pt", "gen_pt"),
                 DerivedVariable("ptDiff", "difference", "pt", "gen_pt"),
                 DerivedVariable("dphi", "delta_phi", "phi", "gen_phi")):
        values = compute_derived(spec, df)
        np.testing.assert_allclose(invert_derived(spec, values, df[spec.reference]), df[spec.source], rtol=1e-12)
    dphi = compute_derived(DerivedVariable("dphi", "delta_phi", "phi", "gen_phi"), df)
    assert dphi.min() > -np.pi and dphi.max() <= np.pi
    edge = pd.DataFrame({"phi": [3.0, -3.0, np.pi], "gen_phi": [-3.0, 3.0, 0.0]})
    np.testing.assert_allclose(compute_derived(DerivedVariable("d", "delta_phi", "phi", "gen_phi"), edge),
                               [6.0 - 2 * np.pi, 2 * np.pi - 6.0, np.pi])
    assert wrap_phi(np.array([-np.pi]))[0] == np.pi
    with pytest.raises(InputError, match="gen_pt == 0"):
        compute_derived(DerivedVariable("r", "ratio", "pt", "gen_pt"), pd.DataFrame({"pt": [1.0], "gen_pt": [0.0]}))


def _random_covariances(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.array([1e-2, 1e-2, 1e-5, 1e-5, 1e-6])  # x, y (mm^2), tx, ty, q/p: very different scales
    a = rng.normal(size=(n, 5, 5)) * scales[None, :, None]
    return cov.matrices_to_elements(a @ np.swapaxes(a, 1, 2) + np.diag(scales**2 * 0.1))


@pytest.mark.parametrize("representation", cov.REPRESENTATIONS)
def test_covariance_representations_round_trip(representation):
    elements = _random_covariances(500, seed=5)
    values = cov.to_representation(elements, representation)
    np.testing.assert_allclose(cov.from_representation(values, representation), elements,
                               rtol=1e-9, atol=1e-12 * np.abs(elements).max())


def test_logdiag_corr_slots_hold_log_variances_and_atanh_correlations():
    elements = _random_covariances(10, seed=6)
    values = cov.to_representation(elements, "logdiag_corr")
    names = cov.element_names()
    np.testing.assert_allclose(values[:, names.index("cov_22")], np.log(elements[:, names.index("cov_22")]))
    rho_01 = elements[:, 1] / np.sqrt(elements[:, 0] * elements[:, names.index("cov_11")])
    np.testing.assert_allclose(np.tanh(values[:, 1]), rho_01, rtol=1e-12)


def test_cholesky_gives_symmetric_positive_definite_matrices_for_arbitrary_inputs():
    arbitrary = np.random.default_rng(7).normal(0.0, 1.5, size=(2000, 15))
    matrices = cov.elements_to_matrices(cov.from_representation(arbitrary, "cholesky"))
    assert np.allclose(matrices, np.swapaxes(matrices, 1, 2))
    assert np.all(np.linalg.eigvalsh(matrices)[:, 0] > 0)
    np.linalg.cholesky(matrices)  # raises if any matrix is not positive definite
    with pytest.raises(InputError, match="positive definite"):
        cov.to_representation(-_random_covariances(2, seed=8), "cholesky")


def test_model_transforms_save_load_round_trip_through_json_and_npz(tmp_path):
    data = _physics_sample(n=1500)
    data["gen_pt"] = data["p"] * 1.1
    derived = {"pRatio": DerivedVariable("pRatio", "ratio", "p", "gen_pt")}
    targets = pd.DataFrame({"pRatio": data["p"] / data["gen_pt"], "flag": data["flag"]})
    model = ModelTransforms(
        conditions=fit_variable_transforms(data, {"gen_pt": "log10_quantile_normal", "eta": "standard"},
                                           decorrelate=True),
        targets=fit_variable_transforms(targets, {"pRatio": "standard", "flag": "minmax"}, dequantize=["flag"]),
        derived=derived, model="toy",
    )
    save_transforms(model, tmp_path / "transforms.json")
    document = json.loads((tmp_path / "transforms.json").read_text())
    assert document["arrays_file"] == "transforms.npz" and (tmp_path / "transforms.npz").exists()
    assert len((tmp_path / "transforms.json").read_text()) < 20_000  # knots live in the npz
    loaded = load_transforms(tmp_path / "transforms.json")
    assert loaded.conditions.names == ["gen_pt", "eta"] and loaded.targets.names == ["pRatio", "flag"]
    assert np.array_equal(loaded.conditions.forward(data), model.conditions.forward(data))
    targ = loaded.targets.forward(loaded.physical_to_targets(data))
    physical = loaded.targets_to_physical(loaded.targets.inverse(targ), loaded.conditions.inverse(
        loaded.conditions.forward(data, dtype=np.float64)))
    assert list(physical.columns) == ["p", "flag"]
    np.testing.assert_allclose(physical["p"], data["p"], rtol=1e-5)
    assert np.array_equal(physical["flag"].to_numpy(), data["flag"].to_numpy())


def test_no_pickle_or_joblib_anywhere_in_the_package():
    forbidden = re.compile(
        r"^\s*(import|from)\s+(c?pickle|joblib|dill|cloudpickle)\b|allow_pickle\s*=\s*True|"
        r"weights_only\s*=\s*False|safe_mode\s*=\s*False|\.to_pickle\(|read_pickle\(", re.MULTILINE)
    offenders = [f"{path.relative_to(PACKAGE.parent)}: {match.group(0).strip()}"
                 for path in sorted(PACKAGE.rglob("*.py")) for match in forbidden.finditer(path.read_text())]
    assert offenders == []


# --- point masses at a range edge ------------------------------------------------------------------

def _spiky(n=20000, seed=0):
    """muEF-like (90% exactly 0) and b-tag-like (13% exactly -1) columns beside a smooth one."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"muEF": np.where(rng.random(n) < 0.9, 0.0, rng.uniform(0.01, 0.8, n)),
                         "btag": np.where(rng.random(n) < 0.13, -1.0, rng.beta(0.5, 2.0, n)),
                         "pt": rng.exponential(30.0, n) + 15.0})


def test_edge_point_masses_are_spread_outside_the_edge_and_come_back_exactly():
    from pipeline_steps.preprocess.transforms import POINT_MASS_SPREAD, fit_variable_transforms

    df = _spiky()
    kinds = {"muEF": "standard", "btag": "standard", "pt": "log_standard"}
    transforms = fit_variable_transforms(df, kinds, point_mass_share=0.01, seed=3)
    muef, btag, pt = transforms.transforms
    assert (muef.params["point_mass_low"], btag.params["point_mass_low"]) == (0.0, -1.0)
    assert "point_mass_low" not in pt.params and "point_mass_high" not in muef.params  # no edge holds 1% there
    y = transforms.forward(df, dtype=np.float64)
    at_edge = df["muEF"].to_numpy() == 0.0
    block = y[at_edge, 0] * muef.params["std"] + muef.params["mean"]  # back to prepared units
    assert block.max() < 0.0 and block.min() >= -muef.params["point_mass_width"]  # outside the edge, no real row
    assert np.ptp(block) > 0.5 * muef.params["point_mass_width"]  # a block, not a point
    width_in_std = muef.params["point_mass_width"] / np.std(df["muEF"][~at_edge])
    assert width_in_std == pytest.approx(POINT_MASS_SPREAD)
    back = transforms.inverse(transforms.forward(df))  # float32 model space, as the flow sees it
    for column in ("muEF", "btag"):
        spike = df[column].min()
        np.testing.assert_array_equal(back[column].to_numpy() == spike, df[column].to_numpy() == spike)
        np.testing.assert_allclose(back[column], df[column], rtol=1e-6, atol=1e-6)


def test_generated_values_beyond_the_edge_land_on_the_point_mass():
    from pipeline_steps.preprocess.transforms import fit_variable_transforms

    transforms = fit_variable_transforms(_spiky(), {"muEF": "standard", "btag": "standard", "pt": "log_standard"},
                                         point_mass_share=0.01, seed=3)
    generated = np.array([[-5.0, -5.0, 0.0], [10.0, 10.0, 0.0]])
    back = transforms.inverse(generated)
    assert back["muEF"].tolist()[0] == 0.0 and back["btag"].tolist()[0] == -1.0
    assert back["muEF"].tolist()[1] > 0.0 and back["btag"].tolist()[1] > 0.0


def test_a_spike_with_a_few_rows_beyond_it_is_found_and_a_peak_inside_a_continuum_is_not():
    """One b-tag of -2 below 13% of jets at -1 turns the point mass off (no longer the edge): found, so the
    preprocess log can say so; an integer count's commonest value, with many rows on both sides, is no edge."""
    from pipeline_steps.preprocess.transforms import fit_variable_transforms, spikes_short_of_an_edge

    df = _spiky()
    assert spikes_short_of_an_edge(df["btag"].to_numpy(), 0.01) == {}
    outlier = pd.concat([df, pd.DataFrame({"muEF": [-1e-7], "btag": [-2.0], "pt": [20.0]})], ignore_index=True)
    fitted = fit_variable_transforms(outlier, {"muEF": "standard", "btag": "standard", "pt": "log_standard"},
                                     point_mass_share=0.01, seed=3)
    assert not any(key.startswith("point_mass") for t in fitted.transforms for key in t.params)
    at_minus_one = int((df["btag"] == -1.0).sum())
    assert spikes_short_of_an_edge(outlier["btag"].to_numpy(), 0.01) == {
        "low": {"value": -1.0, "rows": at_minus_one, "beyond": 1, "extreme": -2.0}}
    assert spikes_short_of_an_edge(outlier["muEF"].to_numpy(), 0.01)["low"]["beyond"] == 1
    counts = np.random.default_rng(0).poisson(5.0, 20000).astype(np.float64)
    assert spikes_short_of_an_edge(counts, 0.01) == {}
    flag = np.r_[np.full(5000, 7.0), 6.0, 8.0]  # one value, one row on either side: no edge to make
    assert spikes_short_of_an_edge(flag, 0.01) == {}


def test_a_spike_with_a_single_other_value_is_still_spread_and_comes_back_exactly():
    """qgl at 0.3 for all but one (or three) of 3177 jets: no std to scale the block by, so there had been no point mass
    and the two-knot quantile map spread the spike over the range (59% of generated jets off it)."""
    from pipeline_steps.preprocess.transforms import POINT_MASS_SPREAD, fit_variable_transforms

    for off_spike in ([100], [100, 2000, 3000]):  # one row, or a few at one value: no std either way
        qgl = np.full(3177, 0.3)
        qgl[off_spike] = 0.9
        df = pd.DataFrame({"qgl": qgl})
        transforms = fit_variable_transforms(df, {"qgl": "quantile_normal"}, point_mass_share=0.01, seed=3)
        params = transforms.transforms[0].params
        assert params["point_mass_low"] == 0.3 and params["point_mass_width"] == pytest.approx(POINT_MASS_SPREAD * 0.6)
        back = transforms.inverse(transforms.forward(df))["qgl"].to_numpy()
        np.testing.assert_array_equal(back == 0.3, qgl == 0.3)
        assert transforms.inverse(np.array([[-4.0]]))["qgl"].tolist() == [0.3]  # below the block's edge: the spike


def test_without_point_mass_share_nothing_changes_and_a_bad_share_is_refused():
    from pipeline_steps.preprocess.transforms import fit_variable_transforms

    df = _spiky()
    kinds = {"muEF": "standard", "btag": "standard", "pt": "log_standard"}
    plain = fit_variable_transforms(df, kinds, seed=3)
    assert not any(key.startswith("point_mass") for t in plain.transforms for key in t.params)
    with pytest.raises(ConfigError, match="point_mass_share.*\\(0, 1\\)"):
        fit_variable_transforms(df, kinds, seed=3, point_mass_share=1.5)


@pytest.mark.parametrize("kind", ["minmax", "standard", "log_standard"])
def test_integers_too_many_for_the_float32_model_space_are_refused_naming_the_variable(kind):
    """Dequantised integers come back exactly only while float32 rounding of the model value stays inside
    DEQUANTIZE_MARGIN: 0..100 does; 1..100000 does not (2^-24 x |y| x dx/dy ~ 3e-3 for minmax)."""
    from pipeline_steps.preprocess.transforms import fit_variable_transform

    rng = np.random.default_rng(0)
    small = fit_variable_transform("nConstituents", rng.integers(1, 100, 5000).astype(np.uint8), kind, dequantize=True,
                                   exact_integers=True)
    assert small.dequantize
    with pytest.raises(InputError, match=r"dequantisation of 'nHits': \d+ of its \d+ values \(\d+ \.\. \d+\) would not "
                                         r"come back exactly .* remove 'nHits' from preprocessing.dequantize"):
        fit_variable_transform("nHits", rng.integers(1, 100_000, 5000), kind, dequantize=True, exact_integers=True)
    # a condition is never inverted: a wide run number may be dequantised for it
    assert fit_variable_transform("run", rng.integers(1, 100_000, 5000), kind, dequantize=True).dequantize


def test_few_integers_across_wide_gaps_are_refused_with_the_gap_and_another_transform_named():
    """PDG codes under a quantile map: the refusal had blamed the values' size ('values this large are
    continuous'), where it is the map's flat stretch across the gap from 211 to 2212; 'standard' keeps them."""
    from pipeline_steps.preprocess.transforms import fit_variable_transform

    pdg = np.random.default_rng(2).choice([-211, -13, 13, 211, 2212], 5000)
    with pytest.raises(InputError, match=r"wide gaps between few values\); give 'pdg' another transform in "
                                         r"preprocessing.per_variable \(e.g. 'standard'\)"):
        fit_variable_transform("pdg", pdg, "quantile_normal", dequantize=True, exact_integers=True)
    assert fit_variable_transform("pdg", pdg, "standard", dequantize=True, exact_integers=True).dequantize


def test_an_integer_clip_bound_on_a_dequantised_target_is_refused_with_the_half_way_fix():
    """A clip at 10 holds rows exactly on 10, which float32 can bring back as 9; at 10.5 they come back as 10."""
    from pipeline_steps.preprocess.transforms import fit_variable_transform

    values = np.random.default_rng(1).integers(0, 20, 10000)
    with pytest.raises(InputError, match=r"'n': its clip bounds None, 10.0 hold rows exactly on an integer.* put an "
                                         r"integer bound k at k \+ 0.5"):
        fit_variable_transform("n", values, "standard", True, clip=(None, 10.0), exact_integers=True)
    half_way = fit_variable_transform("n", values, "standard", True, clip=(None, 10.5), exact_integers=True)
    back = half_way.inverse(half_way.forward(values).astype(np.float32))
    assert np.array_equal(back, np.minimum(values, 10))


def test_integers_beyond_float64s_are_refused_for_dequantisation():
    from pipeline_steps.preprocess.transforms import fit_variable_transform

    with pytest.raises(InputError, match=r"'event': its values reach 9007199254741\d+, beyond 2\^53"):
        fit_variable_transform("event", np.arange(2**53, 2**53 + 50, dtype=np.int64), "standard", dequantize=True,
                               exact_integers=True)


@pytest.mark.parametrize("edit, words", [
    (lambda d: {}, "not a transforms file of format_version 1 (found None)"),
    (lambda d: [], "not a transforms file of format_version 1 (found 'list')"),
    (lambda d: {**d, "format_version": 99}, "(found 99)"),
    (lambda d: {k: v for k, v in d.items() if k != "conditions"}, "malformed transforms (KeyError: 'conditions')"),
    (lambda d: {**d, "targets": {**d["targets"], "variables": [{**d["targets"]["variables"][0], "kind": "bogus"}]}},
     "transform kind 'bogus' is not one of"),
])
def test_a_malformed_transforms_file_is_named_not_a_bare_python_error(tmp_path, edit, words):
    """{} had given KeyError: 'conditions', [] an AttributeError, an unknown kind KeyError: 'bogus'."""
    rows = pd.DataFrame({"x": np.linspace(0.0, 1.0, 50), "y": np.linspace(1.0, 2.0, 50)})
    save_transforms(ModelTransforms(fit_variable_transforms(rows, {"x": "standard"}),
                                    fit_variable_transforms(rows, {"y": "standard"}), model="m"), tmp_path / "t.json")
    document = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps(edit(document)))
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "t.json")) + ".*" + re.escape(words)):
        load_transforms(tmp_path / "t.json")
