"""Preprocessing of values real NanoAOD has and a toy may not: zero and float-noise GenJet masses,
heavy tails (floored/clipped, with a report), and non-finite values (refused, naming the raw file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.preprocess.derived import DerivedVariable, compute_derived, invert_derived, parse_derived
from pipeline_steps.preprocess.model_splits import run
from tests.conftest import preprocess_outputs
from pipeline_steps.preprocess.model_transforms import ModelTransforms, load_transforms, save_transforms
from pipeline_steps.preprocess.transforms import (
    VariableTransform,
    VariableTransforms,
    fit_variable_transform,
    fit_variable_transforms,
)

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
IDENTITY = ["run", "luminosityBlock", "event"]
REAL_MASSES = [0.0, -2.6e-7, 0.4, 1.0]  # a single-particle GenJet, float noise, soft jets


def _jets_model_slice() -> dict:
    """The default config's jets model, as the preprocess rule receives it."""
    return {**CONFIG["models"]["jets"], "identity": IDENTITY}


def _ingested_jets(path: Path, n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every column the default jets model reads, with real NanoAOD edge values in the first rows:
    GenJet masses 0 and -2.6e-7, and a pile-up overlap (ptRatio 4.5, massRatio 12)."""
    rng = np.random.default_rng(seed)
    gen_pt = rng.uniform(15, 300, n)
    gen_mass = gen_pt * rng.lognormal(np.log(0.12), 0.3, n)
    gen_mass[: len(REAL_MASSES)] = REAL_MASSES
    mass = np.maximum(gen_mass, 0.5) * rng.lognormal(0.0, 0.15, n)
    pt = gen_pt * rng.normal(1.0, 0.1, n)
    pt[5], mass[5] = 4.5 * gen_pt[5], 12.0 * max(gen_mass[5], 1.0)
    table = {"source_file": "3.root", "entry": np.arange(n, dtype=np.int64), "object_index": np.zeros(n, np.int32),
             "run": np.uint32(1), "luminosityBlock": np.uint32(1), "event": np.arange(n, dtype=np.uint64) + 1,
             "fixedGridRhoFastjetAll": rng.uniform(5, 30, n).astype(np.float32),
             "PV_npvs": rng.poisson(30, n).astype(np.int32),
             "pt": pt.astype(np.float32), "eta": rng.normal(0, 2, n).astype(np.float32),
             "phi": rng.uniform(-3, 3, n).astype(np.float32), "mass": mass.astype(np.float32),
             "gen_pt": gen_pt.astype(np.float32), "gen_eta": rng.normal(0, 2, n).astype(np.float32),
             "gen_phi": rng.uniform(-3, 3, n).astype(np.float32), "gen_mass": gen_mass.astype(np.float32),
             "gen_hadronFlavour": rng.choice([0, 4, 5], n).astype(np.uint8),
             "gen_partonFlavour": rng.choice([1, 2, 21], n).astype(np.int32),
             "nConstituents": rng.poisson(15, n).astype(np.uint8), "jetId": rng.choice([2, 6], n).astype(np.int32),
             "puId": rng.choice([0, 7], n).astype(np.int32)}
    for name in ("area", "btagDeepB", "btagDeepFlavB", "btagCSVV2", "qgl", "chEmEF", "chHEF", "neEmEF", "neHEF",
                 "muEF"):
        table[name] = rng.uniform(0, 1, n).astype(np.float32)
    frame = pd.DataFrame(table)
    frame.to_parquet(path, index=False)
    return frame


# ------------------------------------------------------------------------------ B: floors, offsets, clips
def test_default_jets_preprocessing_takes_zero_and_negative_gen_masses_and_reports_them(tmp_path):
    table = _ingested_jets(tmp_path / "3.parquet")
    outputs = preprocess_outputs(tmp_path / "jets")
    run([tmp_path / "3.parquet"], outputs, {"model": "jets", "config": _jets_model_slice(), "seed": 42},
        log=tmp_path / "jets.log")
    splits = pd.concat([pd.read_parquet(outputs[s]) for s in ("train", "validation", "test")])
    model_columns = [c for c in splits.columns if c.startswith(("cond__", "targ__"))]
    assert np.isfinite(splits[model_columns].to_numpy()).all()
    assert splits["massRatio"].abs().max() < 100  # mass / max(gen_mass, 1 GeV), not -1e7 or inf
    report = json.loads(outputs["transforms"].read_text())["report"]
    gen_mass = table["gen_mass"].to_numpy(np.float64)
    assert report["rows"] == len(table)
    assert report["clipped"]["gen_mass"] == {"low": 0.0, "high": None, "below": 1, "above": 0}
    assert report["ratio_floor"]["massRatio"] == {"reference": "gen_mass", "floor": 1.0,
                                                  "rows_below": int(np.sum(gen_mass < 1.0))}
    assert report["clipped"]["ptRatio"]["above"] == 1 and report["clipped"]["massRatio"]["above"] == 1
    assert report["log_offset"] == {"gen_mass": 1.0}
    log = (tmp_path / "jets.log").read_text()
    assert "clip gen_mass to [0.0, None]: 1 rows below" in log and "ratio massRatio" in log
    # inverse: exact for every row inside the clip (gen_mass 0 and the floored references included)
    transforms = load_transforms(outputs["transforms"])
    conditions = transforms.conditions.inverse(splits[[f"cond__{c}" for c in transforms.condition_names]].to_numpy())
    np.testing.assert_allclose(conditions["gen_mass"], np.maximum(splits["gen_mass"], 0.0), rtol=1e-5, atol=1e-6)
    physical = transforms.targets_to_physical(
        transforms.targets.inverse(splits[[f"targ__{t}" for t in transforms.target_names]].to_numpy()),
        splits[transforms.condition_names])
    inside = (splits["ptRatio"] <= 3.0).to_numpy() & (splits["massRatio"] <= 7.0).to_numpy()
    np.testing.assert_allclose(physical["mass"][inside], splits["mass"][inside], rtol=1e-4)
    np.testing.assert_allclose(physical["pt"][inside], splits["pt"][inside], rtol=1e-4)


def test_log_offset_is_exact_on_zero_and_float_noise_and_stored():
    values = np.array([0.0, -2.6e-7, 0.5, 3.0, 40.0])
    transform = fit_variable_transform("gen_mass", values, "log_standard", offset=1.0)
    assert transform.params["offset"] == 1.0
    forward = transform.forward(values)
    assert np.isfinite(forward).all()
    np.testing.assert_allclose(transform.inverse(forward), values, rtol=1e-12, atol=1e-15)
    restored = VariableTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    np.testing.assert_allclose(restored.inverse(forward), values, rtol=1e-12, atol=1e-15)
    with pytest.raises(InputError, match=r"'gen_mass'.*> -1.*log_offset"):
        transform.forward(np.array([-2.0]))
    with pytest.raises(ConfigError, match="only log transforms"):
        fit_variable_transform("eta", values, "standard", offset=1.0)


def test_clip_saturates_the_tail_counts_it_and_keeps_the_bulk_exact():
    values = np.array([0.9, 1.0, 1.1, 2.5, 12.0, -0.5])
    transform = fit_variable_transform("massRatio", values, "standard", clip=(0.0, 7.0))
    assert transform.clip_counts(values) == {"below": 1, "above": 1}
    back = transform.inverse(transform.forward(values))
    np.testing.assert_allclose(back, np.clip(values, 0.0, 7.0), rtol=1e-12)
    # the fit saw the clipped values: one 12 no longer stretches the standard deviation
    assert transform.params["std"] == pytest.approx(np.std(np.clip(values, 0.0, 7.0)))
    with pytest.raises(ConfigError, match="low < high"):
        fit_variable_transform("x", values, "standard", clip=(1.0, 0.0))
    with pytest.raises(ConfigError, match="clip low \\+ log_offset > 0"):
        fit_variable_transform("x", np.abs(values) + 1, "log_standard", clip=(0.0, None))


def test_ratio_floor_keeps_zero_references_finite_and_inverts_exactly():
    spec = parse_derived({"massRatio": {"op": "ratio", "of": ["mass", "gen_mass"], "floor": 1.0}})["massRatio"]
    df = pd.DataFrame({"mass": [3.0, 2.0, 5.0, 20.0], "gen_mass": [0.0, -2.6e-7, 0.5, 10.0]})
    ratio = compute_derived(spec, df)
    np.testing.assert_allclose(ratio, [3.0, 2.0, 5.0, 2.0])
    np.testing.assert_allclose(invert_derived(spec, ratio, df["gen_mass"]), df["mass"], rtol=1e-15)
    assert spec.to_dict() == {"op": "ratio", "of": ["mass", "gen_mass"], "floor": 1.0}
    with pytest.raises(InputError, match="gen_mass == 0.*floor"):
        compute_derived(DerivedVariable("massRatio", "ratio", "mass", "gen_mass"), df)
    with pytest.raises(ConfigError, match="only a ratio"):
        parse_derived({"d": {"op": "difference", "of": ["mass", "gen_mass"], "floor": 1.0}})


def test_default_muons_preprocessing_has_log_offsets_and_clips_its_tails():
    """The default nano_muons slice is what FlashSim saturates; check it is wired, not only written."""
    prep = CONFIG["models"]["nano_muons"]["preprocessing"]
    targets = pd.DataFrame({"ptErr": [0.0, 0.2, 500.0], "ip3d": [0.001, 0.01, 3.0]})
    fitted = fit_variable_transforms(targets, {"ptErr": "log_standard", "ip3d": "standard"},
                                     offsets=prep["log_offset"], clips={k: tuple(v) for k, v in prep["clip"].items()})
    ptErr, ip3d = fitted.transforms
    assert np.isfinite(fitted.forward(targets)).all()
    assert ptErr.clip_counts(targets["ptErr"].to_numpy()) == {"below": 0, "above": 1}
    assert ip3d.clip_counts(targets["ip3d"].to_numpy()) == {"below": 0, "above": 1}


# ------------------------------------------------------------------------------ C: nothing non-finite passes
@pytest.mark.parametrize("column, value", [("btagDeepB", np.inf), ("gen_pt", -np.inf), ("pt", np.nan)])
def test_non_finite_model_variable_names_the_raw_file_entry_and_column(tmp_path, column, value):
    table = _ingested_jets(tmp_path / "3.parquet")
    table.loc[17, column] = value
    table.to_parquet(tmp_path / "3.parquet", index=False)
    outputs = preprocess_outputs(tmp_path / "out")
    with pytest.raises(InputError, match=rf"3\.parquet: column '{column}' has 1 non-finite.*raw file 3\.root, entry 17"):
        run([tmp_path / "3.parquet"], outputs, {"model": "jets", "config": _jets_model_slice(), "seed": 1})
    assert not outputs["transforms"].exists() and not outputs["train"].exists()


def test_a_log_outside_its_domain_names_the_raw_file_and_entry(tmp_path):
    _ingested_jets(tmp_path / "3.parquet")
    config = _jets_model_slice()
    config["preprocessing"] = {**config["preprocessing"], "log_offset": {}, "clip": {}}
    with pytest.raises(InputError, match=r"'gen_mass' \(column\) has 2 values.*raw file 3\.root, entry 0.*log_offset"):
        run([tmp_path / "3.parquet"], preprocess_outputs(tmp_path / "out"), {"model": "jets", "config": config, "seed": 1})


def test_fit_refuses_infinity_not_only_nan():
    with pytest.raises(InputError, match="'ptRatio'.*1 non-finite"):
        fit_variable_transform("ptRatio", np.array([1.0, np.inf, 0.9]), "standard")
    with pytest.raises(InputError, match="fitted std is not finite"):
        fit_variable_transform("x", np.array([-1e308, 1e308]), "standard")


def test_transforms_json_never_holds_infinity(tmp_path):
    broken = VariableTransform("pt", "standard", {"mean": -np.inf, "std": 1.0})
    model = ModelTransforms(conditions=VariableTransforms([]), targets=VariableTransforms([broken]))
    with pytest.raises(InputError, match="targets/variables/0/params/mean"):
        save_transforms(model, tmp_path / "transforms.json")
    assert not (tmp_path / "transforms.json").exists() and not (tmp_path / "transforms.npz").exists()
