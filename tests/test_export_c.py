"""C export of the covariance GAN generator: emitted C compiles, matches ONNX, and a changed weight is caught;
its transforms in C match the numpy physical path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline_steps.export import c_export
from pipeline_steps.export.verify import BundleVerificationError

CONDITIONS, TARGETS = ["gen_pt", "gen_eta"], ["dz", "pt"]


def tiny_generator(tmp_path: Path, activation: str = "relu"):
    """A randomly initialised residual generator (non-zero biases so they are exercised) and its ONNX."""
    import keras

    from pipeline_steps.export.keras_export import export_keras_onnx
    from pipeline_steps.models.covariance_gan import GanArchitecture, build_generator

    keras.utils.set_random_seed(1)
    architecture = GanArchitecture.from_config(
        {"noise_dim": 4, "hidden": 8, "generator_residual_steps": 2, "activation": activation}, CONDITIONS, TARGETS)
    generator = build_generator(architecture)
    rng = np.random.default_rng(0)
    conditions = rng.normal(size=(64, 2)).astype(np.float32)
    noise = rng.standard_normal((64, 4)).astype(np.float32)
    generator([conditions, noise])
    for layer in generator.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.3, bias.shape).astype(np.float32)])
    export_keras_onnx(generator, [conditions, noise], tmp_path / "model.onnx", 18)
    return generator, architecture, conditions, noise


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_emitted_c_compiles_and_matches_onnx(tmp_path, activation):
    generator, architecture, conditions, noise = tiny_generator(tmp_path, activation)
    reference = c_export.onnx_output(tmp_path / "model.onnx", conditions, noise)
    section = c_export.export_c(generator, architecture, tmp_path, reference, conditions, noise, 1e-5)
    assert (tmp_path / c_export.LIBRARY).exists() and section["library"] == c_export.LIBRARY
    assert section["max_difference_to_onnx"] <= 1e-5
    assert "fastsim_generator(const float *conditions" in (tmp_path / "generator.h").read_text()
    # independent of export_c's own comparison: the library's output is the ONNX output, and not trivially zero
    found = c_export.run_library(tmp_path / c_export.LIBRARY, conditions, noise, len(TARGETS))
    np.testing.assert_allclose(found, reference, atol=1e-5, rtol=1e-5)
    assert np.std(found) > 1e-3


def test_corrupted_weight_in_c_source_fails_the_check(tmp_path):
    generator, architecture, conditions, noise = tiny_generator(tmp_path)
    reference = c_export.onnx_output(tmp_path / "model.onnx", conditions, noise)
    c_export.export_c(generator, architecture, tmp_path, reference, conditions, noise, 1e-5)
    assert c_export.check_against_onnx(tmp_path, reference, conditions, noise, 1e-5) <= 1e-5  # intact: passes
    source = (tmp_path / "generator.c").read_text()
    # change the first weight of the output layer's kernel by 0.5
    pattern = re.compile(r"(targets_w\[\d+\] = \{\s*)(-?[0-9.e+-]+)f")
    value = float(pattern.search(source).group(2))
    (tmp_path / "generator.c").write_text(pattern.sub(lambda m: f"{m.group(1)}{value + 0.5:.8e}f", source, count=1))
    with pytest.raises(BundleVerificationError, match="C generator output"):
        c_export.check_against_onnx(tmp_path, reference, conditions, noise, 1e-5)


def test_gan_bundle_with_c_true_lists_and_verifies_the_c_files(tmp_path):
    from tests.test_export_bundle import raw_checksums, tiny_gan, write_generative_inputs

    from pipeline_steps.export.manifest import read_manifest
    from pipeline_steps.export.step import run

    transforms = write_generative_inputs(tmp_path / "pre", CONDITIONS, TARGETS)
    files = tiny_gan(tmp_path / "train", CONDITIONS, TARGETS)
    out = tmp_path / "export" / "gan"
    run(files, str(transforms), str(tmp_path / "pre" / "test.parquet"), str(out),
        {"model_name": "gan", "model": {"kind": "covariance_gan", "conditions": CONDITIONS, "targets": TARGETS}, "tree": "Tracks",
         "export": {"opset": 18, "tolerance": 1e-5, "c": True}}, [raw_checksums(tmp_path)])
    manifest = read_manifest(out)
    assert set(manifest["checksums"]) >= {"generator.c", "generator.h", c_export.LIBRARY}
    assert manifest["c"]["function"] == c_export.SIGNATURE
    assert manifest["c"]["max_difference_to_onnx"] <= 1e-5 and manifest["verification"]["c_vs_onnx"] <= 1e-5
    assert manifest["c"]["physical_function"] == c_export.PHYSICAL_SIGNATURE
    assert manifest["c"]["max_physical_difference"] <= 1e-5 and manifest["c"]["physical_conditions"] == CONDITIONS
    assert json.loads((out / "bundle.json").read_text())["verified"] is True


def fitted_transforms(case: str):
    """ModelTransforms over CONDITIONS/TARGETS exercising every kind the C function implements."""
    import pandas as pd

    from pipeline_steps.preprocess.model_transforms import ModelTransforms
    from pipeline_steps.preprocess.physical_support import PhysicalSupport
    from pipeline_steps.preprocess.transforms import fit_variable_transforms

    rng = np.random.default_rng(3)
    pt = rng.lognormal(3.0, 0.6, 2000)
    eta = rng.normal(0.0, 1.5, 2000)
    rows = pd.DataFrame({"gen_pt": pt, "gen_eta": eta + 0.3 * np.log(pt),  # correlated: decorrelation matters
                         "dz": rng.standard_t(3, 2000) * 0.1, "pt": np.floor(pt * rng.uniform(0.8, 1.2, 2000))})
    offsets, clips, target_offsets = {}, {}, {}
    if case == "quantiles":
        kinds = {"gen_pt": "log10_quantile_normal", "gen_eta": "quantile_normal"}
        target_kinds, discrete = {"dz": "quantile_normal", "pt": "log_standard"}, []
    elif case == "offsets_and_clips":  # ~10% of gen_pt above 40 and of gen_eta beyond each bound are clipped
        kinds = {"gen_pt": "log10_quantile_normal", "gen_eta": "standard"}
        offsets, clips = {"gen_pt": 0.5}, {"gen_pt": (None, 40.0), "gen_eta": (-1.0, 2.8)}
        target_kinds, discrete, target_offsets = {"dz": "quantile_normal", "pt": "log_standard"}, [], {"pt": 2.0}
    else:
        kinds = {"gen_pt": "signed_log_standard", "gen_eta": "minmax"}
        target_kinds, discrete = {"dz": "passthrough", "pt": "standard"}, ["pt"]
    return ModelTransforms(
        conditions=fit_variable_transforms(rows, kinds, decorrelate=True, seed=1, offsets=offsets, clips=clips),
        targets=fit_variable_transforms(rows, target_kinds, dequantize=discrete, seed=2, offsets=target_offsets),
        support=PhysicalSupport.fit(rows[["dz", "pt"]], discrete),
    ), rows


@pytest.mark.parametrize("case", ["quantiles", "scales_and_discrete", "offsets_and_clips"])
def test_transforms_in_c_match_the_numpy_physical_path(tmp_path, case):
    generator, architecture, _, noise = tiny_generator(tmp_path)
    transforms, rows = fitted_transforms(case)
    physical_conditions = rows[CONDITIONS].head(len(noise))
    conditions = transforms.conditions.forward(physical_conditions)
    reference = c_export.onnx_output(tmp_path / "model.onnx", conditions, noise)
    expected_frame = transforms.support.apply(
        transforms.targets_to_physical(transforms.targets.inverse(reference), physical_conditions))
    expected = {name: expected_frame[name].to_numpy() for name in TARGETS}
    section = c_export.export_c(generator, architecture, tmp_path, reference, conditions, noise, 1e-5,
                                (transforms, physical_conditions.to_numpy(), expected))
    assert section["max_physical_difference"] <= 1e-5
    assert "fastsim_generate_physical(const double *conditions" in (tmp_path / "generator.h").read_text()
    found = c_export.run_physical(tmp_path / c_export.LIBRARY, physical_conditions.to_numpy(), noise, len(TARGETS))
    for k, name in enumerate(TARGETS):  # independent of export_c's own check
        np.testing.assert_allclose(found[:, k], expected[name], rtol=1e-5, atol=1e-6 * np.std(expected[name]))
    if case == "scales_and_discrete":
        assert set(np.unique(found[:, 1])) <= set(rows["pt"].unique())  # snapped to training values
    if case == "offsets_and_clips":  # the clips and offsets act on these rows, and the C source has them
        assert (physical_conditions["gen_pt"] > 40).sum() > 0 and (physical_conditions["gen_eta"] < -1).sum() > 0
        source = (tmp_path / "generator.c").read_text()
        assert "log10(v + 0.5)" in source and "exp(v) - 2" in source and "if (v > 40) v = 40;" in source
    assert np.std(found[:, 0]) > 0


def export_physical_c(tmp_path: Path):
    """The tiny generator exported to C with its physical function (fitted offsets and clips); returns the
    physical conditions, their transformed float values and the noise it was checked on."""
    generator, architecture, _, noise = tiny_generator(tmp_path)
    transforms, rows = fitted_transforms("offsets_and_clips")
    physical_conditions = rows[CONDITIONS].head(len(noise)).to_numpy().copy()
    conditions = transforms.conditions.forward(rows[CONDITIONS].head(len(noise)))
    reference = c_export.onnx_output(tmp_path / "model.onnx", conditions, noise)
    expected_frame = transforms.support.apply(transforms.targets_to_physical(
        transforms.targets.inverse(reference), rows[CONDITIONS].head(len(noise))))
    c_export.export_c(generator, architecture, tmp_path, reference, conditions, noise, 1e-5,
                      (transforms, physical_conditions, {n: expected_frame[n].to_numpy() for n in TARGETS}))
    return physical_conditions, conditions, noise


def test_c_gives_nan_for_rows_it_cannot_transform_and_its_header_says_what_to_feed(tmp_path):
    """The network's relu had turned a NaN condition into 0 and the support clip into a plausible value
    (cov_00 0.00245 for p = NaN, -5 or +inf), where ONNX gives NaN; the header had held only counts, and a
    -Wall build warned about an unused helper."""
    import subprocess

    physical_conditions, _, noise = export_physical_c(tmp_path)  # gen_pt: log10(x + 0.5)
    physical_conditions[:4] = [[np.nan, 0.0], [5.0, np.inf], [-0.7, 0.0], [-np.inf, 1.0]]  # -0.7: log10 of -0.2
    found = c_export.run_physical(tmp_path / c_export.LIBRARY, physical_conditions, noise, len(TARGETS))
    assert np.isnan(found[:4]).all() and np.isfinite(found[4:]).all()
    header = (tmp_path / "generator.h").read_text()
    assert "in this order: gen_pt, gen_eta;" in header and "in this order: dz, pt;" in header
    assert "NaN targets" in header and "Reentrant" in header and "-o libfastsim_generator.so generator.c -lm" in header
    build = subprocess.run(["gcc", "-Wall", "-Werror", "-std=c99", "-O2", "-c", "-o", str(tmp_path / "g.o"),
                            str(tmp_path / "generator.c")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr


def test_dequantised_conditions_are_refused_for_c(tmp_path):
    import pandas as pd

    from pipeline_steps.common.errors import ConfigError
    from pipeline_steps.export.c_transforms import check_supported
    from pipeline_steps.preprocess.model_transforms import ModelTransforms
    from pipeline_steps.preprocess.transforms import fit_variable_transforms

    rows = pd.DataFrame({"n_hits": [1, 2, 3, 4], "dz": [0.1, 0.2, 0.3, 0.4]})
    transforms = ModelTransforms(fit_variable_transforms(rows, {"n_hits": "standard"}, dequantize=["n_hits"]),
                                 fit_variable_transforms(rows, {"dz": "standard"}))
    with pytest.raises(ConfigError, match="n_hits"):
        check_supported(transforms)


#: A C++ caller (a Geant4 or ROOT user's code) of both functions; prints the targets, one row a line.
CPP_CALLER = r"""
#include "generator.h"
#include <cstdio>
#include <vector>
int main() {
  const int n = N_ROWS;
  std::vector<double> physical(n * FASTSIM_N_CONDITIONS);
  std::vector<float> model(n * FASTSIM_N_CONDITIONS), noise(n * FASTSIM_NOISE_DIM);
  for (double &x : physical) if (std::scanf("%lf", &x) != 1) return 3;
  for (float &x : model) if (std::scanf("%f", &x) != 1) return 3;
  for (float &x : noise) if (std::scanf("%f", &x) != 1) return 3;
  std::vector<double> targets(n * FASTSIM_N_TARGETS);
  std::vector<float> model_targets(n * FASTSIM_N_TARGETS);
  fastsim_generate_physical(physical.data(), noise.data(), targets.data(), n);
  fastsim_generator(model.data(), noise.data(), model_targets.data(), n);
  for (double t : targets) std::printf("%.17g\n", t);
  for (float t : model_targets) std::printf("%.9g\n", t);
  return 0;
}
"""


def test_a_cpp_program_calls_the_c_export_through_its_header(tmp_path):
    """Geant4 and ROOT users call the generator from C++: the header's extern "C" must let g++ link the C
    library (without it, g++ looks for mangled names), and C++ gets the values Python's ctypes call gets."""
    import subprocess

    physical_conditions, conditions, noise = export_physical_c(tmp_path)
    (tmp_path / "caller.cpp").write_text(CPP_CALLER.replace("N_ROWS", str(len(noise))))
    build = subprocess.run(["g++", "-Wall", "-Werror", "-std=c++17", "-O2", "-o", str(tmp_path / "caller"),
                            str(tmp_path / "caller.cpp"), f"-L{tmp_path}", "-lfastsim_generator"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    numbers = "\n".join(f"{x:.17g}" for x in np.concatenate([physical_conditions.ravel(),
                                                             np.asarray(conditions, np.float32).ravel(),
                                                             np.asarray(noise, np.float32).ravel()]))
    run = subprocess.run([str(tmp_path / "caller")], input=numbers, capture_output=True, text=True,
                         env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    printed = np.array(run.stdout.split(), dtype=np.float64)
    physical = printed[:len(noise) * len(TARGETS)].reshape(len(noise), len(TARGETS))
    model_space = printed[len(noise) * len(TARGETS):].reshape(len(noise), len(TARGETS)).astype(np.float32)
    np.testing.assert_array_equal(
        physical, c_export.run_physical(tmp_path / c_export.LIBRARY, physical_conditions, noise, len(TARGETS)))
    np.testing.assert_array_equal(
        model_space, c_export.run_library(tmp_path / c_export.LIBRARY, np.asarray(conditions, np.float32), noise,
                                          len(TARGETS)))
    assert np.isfinite(physical).all() and np.std(physical) > 0
