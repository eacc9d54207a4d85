"""Tiny trained-model folders for the export tests, built through the real model and transform modules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline_steps.preprocess.derived import parse_derived
from pipeline_steps.preprocess.model_transforms import ModelTransforms, save_transforms
from pipeline_steps.preprocess.transforms import fit_variable_transforms

EXPORT = {"opset": 18, "tolerance": 1.0e-4, "c": False}  # config/config.yaml's defaults


def raw_checksums(tmp_path: Path) -> str:
    """A raw file and rule checksum_raw's JSON of it: what an export is given to record the raw files' sha256."""
    from pipeline_steps.provenance.raw_checksums import write_part_checksums

    path = tmp_path / "raw" / "0.root"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really ROOT, only hashed for provenance")
    write_part_checksums([str(path)], tmp_path / "raw" / "checksums.json")
    return str(tmp_path / "raw" / "checksums.json")


def physical_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """gen_pt (> 0), gen_eta, nhits (integer, dequantised) and reco pt, dz, charge (int8)."""
    rng = np.random.default_rng(seed)
    gen_pt = rng.exponential(20.0, n) + 5.0
    return pd.DataFrame({
        "gen_pt": gen_pt.astype(np.float32), "gen_eta": rng.normal(0, 1.5, n).astype(np.float32),
        "nhits": rng.integers(3, 12, n).astype(np.int32),
        "pt": (gen_pt * rng.normal(1.0, 0.1, n)).astype(np.float32), "dz": rng.normal(0, 0.02, n).astype(np.float32),
        "charge": rng.choice([-1, 1], n).astype(np.int8),
    })


def write_generative_inputs(folder: Path, conditions: list[str], targets: list[str], derived: dict | None = None,
                            kinds: dict | None = None, dequantize=("nhits", "charge"), n: int = 400) -> Path:
    """transforms.json (+ npz) fitted on fake rows and a test.parquet with physical and cond__ columns."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = physical_rows(n)
    derived_specs = parse_derived(derived)
    model_space = pd.DataFrame({t: (rows[derived_specs[t].source] / rows[derived_specs[t].reference]
                                    if t in derived_specs else rows[t]) for t in targets})
    kinds = kinds or {}
    cond_kinds = {c: kinds.get(c, "standard") for c in conditions}
    targ_kinds = {t: kinds.get(t, "standard") for t in targets}
    transforms = ModelTransforms(
        conditions=fit_variable_transforms(rows, cond_kinds, [d for d in dequantize if d in conditions], seed=3),
        targets=fit_variable_transforms(model_space, targ_kinds, [d for d in dequantize if d in targets], seed=4),
        derived=derived_specs, model="tiny")
    save_transforms(transforms, folder / "transforms.json")
    test = rows.copy()  # the physical columns, conditions and targets, as a real split holds them
    x = transforms.conditions.forward(rows[conditions])
    for i, c in enumerate(conditions):
        test[f"cond__{c}"] = x[:, i]
    test.to_parquet(folder / "test.parquet")
    return folder / "transforms.json"


def tiny_flow(folder: Path, conditions: list[str], targets: list[str]) -> list[str]:
    """A randomly perturbed (not identity) flow saved as the train_flow rule does."""
    import torch

    from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow

    spec = FlowSpec(conditions, targets, FlowHyperparameters(n_bins=4, hidden_dim=8, n_blocks=1),
                    [FlowPart(None, None, list(targets))])
    model = build_flow(spec)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(spec.to_json())
    return [str(folder / "model.pt"), str(folder / "model.json")]


def tiny_gan(folder: Path, conditions: list[str], targets: list[str]) -> list[str]:
    from pipeline_steps.models.covariance_gan import GanArchitecture, build_generator

    architecture = GanArchitecture.from_config({"noise_dim": 4, "hidden": 8, "generator_residual_steps": 2},
                                               conditions, targets)
    generator = build_generator(architecture)
    folder.mkdir(parents=True, exist_ok=True)
    generator.save(folder / "generator.keras")
    (folder / "model.json").write_text(json.dumps(architecture.to_json()))
    return [str(folder / "generator.keras"), str(folder / "model.json")]


CALRATIO_SEQUENCES = {"clusters": ("clus_", ["pt", "eta"], 5), "tracks": ("track_", ["pt"], 4),
                      "muon_segments": ("MSeg_", ["t0", "x"], 3)}
CALRATIO_HYPER = {"conv_filters": [4], "lstm_units": 4, "dense_units": [6]}


def tiny_calratio(folder: Path, n: int = 40) -> tuple[list[str], Path, pd.DataFrame, dict]:
    """chosen.keras, transforms.json with a calratio section, test split; also the raw jagged inputs."""
    from pipeline_steps.models.calratio_rnn import CalRatioHyperparameters, build_classifier
    from pipeline_steps.preprocess.calratio_inputs import SequenceScaling, fit_sequence_scaling, pad_lists

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    jets = pd.DataFrame({"jet_pt": rng.exponential(50, n) + 20.0, "jet_eta": rng.normal(0, 1, n)})
    transforms = ModelTransforms(fit_variable_transforms(jets, {"jet_pt": "log_standard", "jet_eta": "standard"}),
                                 fit_variable_transforms(pd.DataFrame({"label": np.zeros(n)}), {"label": "passthrough"}))
    save_transforms(transforms, folder / "transforms.json")
    document = json.loads((folder / "transforms.json").read_text())
    jagged, arrays, section = {}, {}, {}
    for name, (prefix, fields, length) in CALRATIO_SEQUENCES.items():
        counts = rng.integers(0, length + 3, n)  # some longer than the padding length
        planes = []
        for field in fields:
            rows = [rng.normal(3.0, 2.0, k) for k in counts]
            jagged[f"{prefix}{field}"] = rows
            planes.append(pad_lists(rows, length, 0.0))
        padded, lengths = np.stack(planes, -1), np.minimum(counts, length)
        scaling: SequenceScaling = fit_sequence_scaling(padded, lengths)
        arrays[name] = scaling.forward(padded, lengths, 0.0)
        arrays[f"{name}_length"] = lengths
        section[name] = {"prefix": prefix, "fields": fields, "length": length, **scaling.to_dict()}
    document["calratio"] = {"pad_value": 0.0, "sequences": section}
    (folder / "transforms.json").write_text(json.dumps(document))
    x = transforms.conditions.forward(jets)
    table = pd.DataFrame({"cond__jet_pt": x[:, 0], "cond__jet_eta": x[:, 1], "label": np.zeros(n, np.int64),
                          "weight": np.ones(n), "mc_weight": np.ones(n)})  # as preprocess_calratio writes a split
    table.to_parquet(folder / "test.parquet")
    np.savez(folder / "test_sequences.npz", **arrays)
    hyper = CalRatioHyperparameters.from_config(CALRATIO_HYPER)
    classifier = build_classifier(2, {k: len(v[1]) for k, v in CALRATIO_SEQUENCES.items()}, hyper)
    classifier.save(folder / "chosen.keras")
    return [str(folder / "chosen.keras")], folder / "transforms.json", jets, jagged


# ------------------------------------------------------------------------------------------------ tests
import pytest  # noqa: E402

from pipeline_steps.export.manifest import read_manifest  # noqa: E402
from pipeline_steps.export.rounding_draws import DRAWS  # noqa: E402
from pipeline_steps.export.step import run  # noqa: E402
from pipeline_steps.export.verify import BundleVerificationError, load_verification, verify_bundle  # noqa: E402

FLOW_CONDITIONS, FLOW_TARGETS = ["gen_pt", "gen_eta", "nhits"], ["ptRatio", "dz", "charge"]
FLOW_DERIVED = {"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]}}


def export_flow(tmp_path: Path) -> Path:
    train = tmp_path / "train"
    transforms = write_generative_inputs(tmp_path / "pre", FLOW_CONDITIONS, FLOW_TARGETS, FLOW_DERIVED,
                                         kinds={"gen_pt": "log_standard", "dz": "quantile_normal"})
    document = json.loads(transforms.read_text())  # as a scan's point has them: its scan's preprocessing
    transforms.write_text(json.dumps({**document, "model": "tiny_scan"}))
    files = tiny_flow(train, FLOW_CONDITIONS, FLOW_TARGETS)
    model = {"kind": "flow", "conditions": FLOW_CONDITIONS, "targets": FLOW_TARGETS, "derived": FLOW_DERIVED}
    out = tmp_path / "export" / "tiny_flow"
    run(files, str(transforms), str(tmp_path / "pre" / "test.parquet"), str(out),
        {"model_name": "tiny_flow", "model": model, "tree": "Events", "export": EXPORT}, [raw_checksums(tmp_path)])
    return out


# The tracer's warnings about the structure fixed at export time are silenced on purpose
# (torch_export._ignore_intended_trace_warnings); a new one is raised here as an error.
@pytest.mark.filterwarnings("error::torch.jit.TracerWarning")
def test_flow_exports_a_verified_bundle_with_physical_outputs(tmp_path):
    bundle = export_flow(tmp_path)
    manifest = read_manifest(bundle)
    assert manifest["verified"] is True and manifest["verification"]["passed"] is True
    onnx = manifest["verification"]["onnx_vs_reference"]
    assert all(onnx["found"][q] <= onnx["allowed"][q] for q in ("q50", "q99.9", "max"))
    assert 0 < onnx["own_float32"]["max"] < 1e-2  # a real float32 rounding error was measured, not assumed
    assert manifest["verification"]["own_rounding_draws"] == DRAWS
    expected = load_verification(bundle)["expected"]
    draws, plain = expected["output_draws"], expected["output"]
    assert draws.shape == (DRAWS, *plain.shape) and not np.array_equal(draws[0], plain)  # real extra draws
    assert np.median(np.abs(draws[0] - plain)) < 1e-5 * np.std(plain)  # of rounding size, not another model
    assert manifest["verification"]["tolerance"] == EXPORT["tolerance"] and manifest["format"] == 2
    assert manifest["io"]["tree"] == "Events"
    assert (manifest["model"], manifest["preprocessing"]) == ("tiny_flow", "tiny_scan")
    # the flow check includes the inverse transform to physical units: ptRatio came back as pt
    physical = manifest["verification"]["physical_onnx_vs_reference"]
    assert set(physical["discrete"]) == {"charge"} and physical["continuous"]["margin"] >= 1
    assert manifest["variables"]["outputs"] == ["pt", "dz", "charge"]
    assert manifest["noise"]["dim"] == len(FLOW_TARGETS)
    assert [i["name"] for i in manifest["onnx"]["inputs"]] == ["conditions", "noise"]
    assert set(manifest["checksums"]) >= {"model.onnx", "model.pt", "model.json", "transforms.json", "run_bundle.py"}
    assert list(manifest["provenance"]["raw_files_sha256"].values())[0] == sha256_of(tmp_path / "raw" / "0.root")
    assert manifest["provenance"]["model_config"]["derived"] == FLOW_DERIVED
    assert "torch" in manifest["provenance"]["packages"] and manifest["provenance"]["git_commit"]


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_changed_weight_file_fails_verification_by_checksum(tmp_path):
    bundle = export_flow(tmp_path)
    verify_bundle(bundle)  # intact: passes
    weights = bundle / "model.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleVerificationError, match="model.pt: sha256"):
        verify_bundle(bundle)


def test_wrong_stored_output_fails_verification_beyond_tolerance(tmp_path):
    """Outputs are compared, not only hashes: a bundle whose expected batch disagrees is refused."""
    bundle = export_flow(tmp_path)
    with np.load(bundle / "verification.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["expected/output"] = arrays["expected/output"] + 1e-2
    np.savez(bundle / "verification.npz", **arrays)
    manifest = read_manifest(bundle)
    manifest["checksums"]["verification.npz"] = sha256_of(bundle / "verification.npz")
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleVerificationError, match="stored float32 output differs from its float64 reference"):
        verify_bundle(bundle, framework=False)


@pytest.mark.slow
def test_covariance_gan_exports_a_verified_bundle(tmp_path):
    conditions, targets = ["gen_pt", "gen_eta"], ["dz", "pt"]
    transforms = write_generative_inputs(tmp_path / "pre", conditions, targets, kinds={"dz": "quantile_normal"})
    files = tiny_gan(tmp_path / "train", conditions, targets)
    out = tmp_path / "export" / "gan"
    run(files, str(transforms), str(tmp_path / "pre" / "test.parquet"), str(out),
        {"model_name": "gan", "model": {"kind": "covariance_gan", "conditions": conditions, "targets": targets},
         "tree": "Tracks", "branches": {"gen_pt": "GenPT"}, "export": EXPORT, "code": "0123"},
        [raw_checksums(tmp_path)])
    manifest = read_manifest(out)
    assert manifest["verified"] and manifest["noise"]["dim"] == 4
    assert manifest["files"]["native"] == ["model.keras", "model.json"]
    assert manifest["verification"]["physical_onnx_vs_reference"]["continuous"]["margin"] >= 1
    assert manifest["io"]["tree"] == "Tracks"
    assert manifest["io"]["branches"] == {"gen_pt": "GenPT"}  # a rule's params, passed whole, reach bundle.json


@pytest.mark.slow
def test_calratio_exports_a_verified_bundle_with_padding_lengths(tmp_path):
    files, transforms, _, _ = tiny_calratio(tmp_path / "cr")
    out = tmp_path / "export" / "calratio"
    model = {"kind": "calratio_rnn", "conditions": ["jet_pt", "jet_eta"], "hyperparameters": CALRATIO_HYPER}
    run(files, str(transforms), str(tmp_path / "cr" / "test.parquet"), str(out),
        {"model_name": "calratio", "model": model, "tree": "CalRatio", "export": EXPORT}, [raw_checksums(tmp_path)])
    manifest = read_manifest(out)
    onnx = manifest["verification"]["onnx_vs_reference"]
    assert manifest["verified"] and onnx["found"]["max"] <= onnx["allowed"]["max"]
    assert manifest["io"]["tree"] == "CalRatio"
    assert manifest["padding"] == {name: spec[2] for name, spec in CALRATIO_SEQUENCES.items()}
    assert [o["order"] for o in manifest["onnx"]["outputs"]] == [["signal", "qcd", "bib"]]


def test_a_test_split_shorter_than_the_verification_batch_is_repeated_to_its_size(tmp_path):
    """A 2-row split had been 'verified' on 2 rows; each repeated row gets its own noise in the batch."""
    import pandas as pd

    from pipeline_steps.export.batch import read_conditions

    path = tmp_path / "test.parquet"
    pd.DataFrame({"gen_pt": [20.0, 30.0, 40.0], "cond__gen_pt": [-1.0, 0.0, 1.0]}).to_parquet(path)
    transformed, physical = read_conditions(path, ["gen_pt"], 100)
    assert transformed.shape == (100, 1) and len(physical) == 100
    assert transformed[:6, 0].tolist() == [-1.0, 0.0, 1.0, -1.0, 0.0, 1.0]
    assert physical["gen_pt"].tolist()[:4] == [20.0, 30.0, 40.0, 20.0]
