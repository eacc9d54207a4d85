"""The export verification holds across CPU kernels and thread counts, and still fails on a defect.

A bundle is made on one machine and verified (by ``finalise`` at export, by a user's ``verify_bundle``)
on others: other SIMD kernels (AVX-512 vs AVX2 vs scalar), oneDNN on or off, other thread counts.
Here each kind's bundle is built once under this machine's defaults and verified in subprocesses under
other kernels; one set is also exported under the scalar kernels and verified here. The combinations
cover every pair of (ATen kernel, thread count), (ATen kernel, TF oneDNN) and (TF oneDNN, threads)
instead of the full 24-way product, to keep this to a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_export_bundle import (
    CALRATIO_HYPER,
    EXPORT,
    FLOW_CONDITIONS,
    FLOW_DERIVED,
    FLOW_TARGETS,
    raw_checksums,
    tiny_calratio,
    tiny_flow,
    tiny_gan,
    write_generative_inputs,
)

PROJECT = Path(__file__).resolve().parents[1]
GAN_CONDITIONS, GAN_TARGETS = ["gen_pt", "gen_eta"], ["dz", "pt"]
KERNEL_COMBOS = [
    {"ATEN_CPU_CAPABILITY": "default", "TF_ENABLE_ONEDNN_OPTS": "0", "threads": 1},
    {"ATEN_CPU_CAPABILITY": "avx2", "TF_ENABLE_ONEDNN_OPTS": "1", "threads": 2},
    {"ATEN_CPU_CAPABILITY": "avx512", "TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2", "threads": 1},
    {"ATEN_CPU_CAPABILITY": "default", "TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2", "threads": 2},
    {"ATEN_CPU_CAPABILITY": "avx2", "TF_ENABLE_ONEDNN_OPTS": "0", "threads": 1},
    {"ATEN_CPU_CAPABILITY": "avx512", "TF_ENABLE_ONEDNN_OPTS": "0", "threads": 2},
]
#: CPU flags each forced ATen kernel needs: torch trusts ATEN_CPU_CAPABILITY and dies of an illegal
#: instruction on a CPU without them (AVX-512 on an AMD EPYC of CI's kind).
ATEN_KERNEL_FLAGS = {"default": set(), "avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq"}}


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo; None where there is none to read (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def runnable(combos: list[dict]) -> list[dict]:
    """The combos whose forced ATen kernel this CPU can execute (all of them where flags are unknown)."""
    flags = cpu_flags()
    return [c for c in combos if flags is None or ATEN_KERNEL_FLAGS[c["ATEN_CPU_CAPABILITY"]] <= flags]


EXPORT_COMBO = KERNEL_COMBOS[0]  # the scalar kernels, single thread: as far from this machine's defaults as it gets

VERIFY_SCRIPT = """
import json, sys
threads = int(sys.argv[1])
import pipeline_steps  # first: triton before TensorFlow (common/triton_before_tensorflow.py)
import torch, tensorflow as tf
torch.set_num_threads(threads)
tf.config.threading.set_intra_op_parallelism_threads(threads)
from pipeline_steps.export.verify import verify_bundle
print(json.dumps({folder: verify_bundle(folder) for folder in sys.argv[2:]}))
"""

EXPORT_SCRIPT = """
import json, sys
threads = int(sys.argv[1])
import pipeline_steps  # first: triton before TensorFlow (common/triton_before_tensorflow.py)
import torch, tensorflow as tf
torch.set_num_threads(threads)
tf.config.threading.set_intra_op_parallelism_threads(threads)
from tests.test_export_kernels import export_all
print(json.dumps({k: str(v) for k, v in export_all(__import__("pathlib").Path(sys.argv[2])).items()}))
"""


def export_all(root: Path) -> dict[str, Path]:
    """One bundle per kind, from small models trained a few steps (outputs far from an identity or a constant)."""
    return {"flow": _flow_bundle(root / "flow"), "covariance_gan": _gan_bundle(root / "gan"),
            "calratio_rnn": _calratio_bundle(root / "calratio")}


def _flow_bundle(root: Path) -> Path:
    from pipeline_steps.export.step import run

    transforms = write_generative_inputs(root / "pre", FLOW_CONDITIONS, FLOW_TARGETS, FLOW_DERIVED,
                                         kinds={"gen_pt": "log_standard", "dz": "quantile_normal"})
    files = tiny_flow(root / "train", FLOW_CONDITIONS, FLOW_TARGETS)
    _train_flow_a_few_steps(root / "train", root / "pre" / "test.parquet")
    model = {"kind": "flow", "conditions": FLOW_CONDITIONS, "targets": FLOW_TARGETS, "derived": FLOW_DERIVED}
    run(files, str(transforms), str(root / "pre" / "test.parquet"), str(root / "bundle"),
        {"model_name": "flow", "model": model, "tree": "Events", "export": EXPORT}, [raw_checksums(root)])
    return root / "bundle"


def _train_flow_a_few_steps(train_dir: Path, test_split: Path, steps: int = 20) -> None:
    """Adam on the flow's likelihood of the fake rows' conditions with Gaussian targets: real gradients
    through every spline, on top of the helper's random perturbation."""
    import pandas as pd
    import torch

    from pipeline_steps.export.torch_export import load_flow

    model = load_flow(train_dir).train()
    conditions = torch.tensor(pd.read_parquet(test_split)[[f"cond__{c}" for c in FLOW_CONDITIONS]]
                              .to_numpy(np.float32))  # a copy: pandas' columns may be read-only
    targets = torch.from_numpy(np.random.default_rng(9).normal(0.5, 1.5, (len(conditions), len(FLOW_TARGETS)))
                               .astype(np.float32))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = -model.log_prob(targets, conditions).mean()
        loss.backward()
        optimiser.step()
    torch.save(model.state_dict(), train_dir / "model.pt")


def _train_keras_a_few_steps(path: Path, inputs, target: np.ndarray, loss: str, steps: int = 10) -> None:
    import keras

    model = keras.models.load_model(path, compile=False, safe_mode=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    model.fit(inputs, target, batch_size=max(1, len(target) // steps), epochs=1, verbose=0, shuffle=False)
    model.save(path)


def _gan_bundle(root: Path) -> Path:
    import pandas as pd

    from pipeline_steps.export.step import run

    transforms = write_generative_inputs(root / "pre", GAN_CONDITIONS, GAN_TARGETS, kinds={"dz": "quantile_normal"})
    files = tiny_gan(root / "train", GAN_CONDITIONS, GAN_TARGETS)
    conditions = pd.read_parquet(root / "pre" / "test.parquet")[[f"cond__{c}" for c in GAN_CONDITIONS]].to_numpy(np.float32)
    rng = np.random.default_rng(11)
    noise = rng.standard_normal((len(conditions), 4)).astype(np.float32)
    _train_keras_a_few_steps(Path(files[0]), [conditions, noise],
                             rng.normal(1.0, 2.0, (len(conditions), len(GAN_TARGETS))).astype(np.float32), "mse")
    model = {"kind": "covariance_gan", "conditions": GAN_CONDITIONS, "targets": GAN_TARGETS}
    run(files, str(transforms), str(root / "pre" / "test.parquet"), str(root / "bundle"),
        {"model_name": "gan", "model": model, "tree": "Tracks", "export": EXPORT}, [raw_checksums(root)])
    return root / "bundle"


def _calratio_bundle(root: Path) -> Path:
    from pipeline_steps.export.step import run
    from pipeline_steps.models.calratio_rnn import model_inputs
    from pipeline_steps.preprocess.calratio_inputs import load_split

    files, transforms, _, _ = tiny_calratio(root / "cr")
    inputs = model_inputs(load_split(root / "cr", "test"), False, slice(0, None))
    labels = np.random.default_rng(12).integers(0, 3, len(inputs["jets"]))
    _train_keras_a_few_steps(Path(files[0]), inputs, labels, "sparse_categorical_crossentropy")
    model = {"kind": "calratio_rnn", "conditions": ["jet_pt", "jet_eta"], "hyperparameters": CALRATIO_HYPER}
    run(files, str(transforms), str(root / "cr" / "test.parquet"), str(root / "bundle"),
        {"model_name": "calratio", "model": model, "tree": "CalRatio", "export": EXPORT}, [raw_checksums(root)])
    return root / "bundle"


def run_under(combo: dict, script: str, *arguments: str) -> dict:
    """``script`` in a fresh interpreter under the combo's kernels and thread count; its JSON output."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")}
    env.update({key: str(value) for key, value in combo.items() if key != "threads"})
    env.update({"OMP_NUM_THREADS": str(combo["threads"]), "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    result = subprocess.run([sys.executable, "-c", script, str(combo["threads"]), *arguments], cwd=PROJECT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{combo}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    return export_all(tmp_path_factory.mktemp("kernels"))


@pytest.mark.slow
def test_bundles_verify_under_every_other_kernel_and_thread_count(bundles, tmp_path):
    """Made here, verified under each combo (the cross-CPU case); made under scalar kernels, verified here."""
    from pipeline_steps.export.verify import verify_bundle

    folders = [str(folder) for folder in bundles.values()]
    margins = {}
    combos = runnable(KERNEL_COMBOS)
    assert combos, "no kernel combination this CPU can run"  # the scalar kernels run everywhere
    for combo in combos:
        reports = run_under(combo, VERIFY_SCRIPT, *folders)
        for kind, folder in bundles.items():
            report = reports[str(folder)]
            for check in ("onnx_vs_reference", "reloaded_framework_vs_reference"):
                assert report[check]["found"]["max"] <= report[check]["allowed"]["max"], (combo, kind, check)
            margins[(kind, json.dumps(combo))] = report["reloaded_framework_vs_reference"]["margin"]
    elsewhere = run_under(EXPORT_COMBO, EXPORT_SCRIPT, str(tmp_path / "elsewhere"))
    for kind, folder in elsewhere.items():
        report = verify_bundle(folder)
        assert report["onnx_vs_reference"]["own_float32"]["max"] > 0, kind  # a real float32 error was measured
    print("margins (allowed / found, reloaded framework):", margins)


@pytest.mark.slow
def test_the_bound_still_catches_a_perturbed_onnx_weight(bundles, tmp_path):
    """A weight of the ONNX graph changed by 1e-3 relative (a defect far smaller than any bug in practice)
    fails the check at the median, where float32 rounding is ~1e-7 of the spread."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from pipeline_steps.export import run_bundle
    from pipeline_steps.export.verify import BundleVerificationError, check_against_reference, load_verification

    for kind, original in bundles.items():
        folder = tmp_path / kind
        shutil.copytree(original, folder)
        graph = onnx.load(str(folder / "model.onnx"))
        weight = max(graph.graph.initializer, key=lambda tensor: int(np.prod(tensor.dims)))
        values = numpy_helper.to_array(weight).copy()
        weight.CopyFrom(numpy_helper.from_array(values * np.float32(1 + 1e-3), weight.name))
        onnx.save(graph, str(folder / "model.onnx"))
        batch = load_verification(folder)
        perturbed = run_bundle.Bundle(folder).run_onnx(batch["inputs"])
        with pytest.raises(BundleVerificationError, match="beyond the float32 bound"):
            check_against_reference("ONNX output", perturbed, batch["expected"]["output"],
                                    batch["reference"]["output"], EXPORT["tolerance"])


@pytest.mark.slow
def test_jets_sized_flow_fails_the_old_fixed_rule_and_passes_the_analysis(tmp_path):
    """The reported failure, reproduced: a flow of the jets model's size (17 targets, 8 conditions, 8 bins,
    hidden 64) has float32 errors far above a fixed 1e-4 on its badly conditioned rows (the inverse splines
    amplify rounding), so ONNX fails the old fixed rule; the analysis' bound accepts it, because the
    framework's own float32 output is just as far from the float64 truth."""
    import onnxruntime
    import torch

    from pipeline_steps.export import torch_export
    from pipeline_steps.export.verify import check_against_reference
    from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow

    conditions, targets = [f"c{i}" for i in range(8)], [f"t{i}" for i in range(17)]
    spec = FlowSpec(conditions, targets, FlowHyperparameters(n_bins=8, hidden_dim=64, n_blocks=2),
                    [FlowPart(None, None, list(targets))])
    model = build_flow(spec)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.from_numpy(0.2 * rng.standard_normal(tuple(parameter.shape)).astype(np.float32)))
    model.eval()
    c = rng.standard_normal((512, 8)).astype(np.float32)
    z = rng.standard_normal((512, 17)).astype(np.float32)
    own = torch_export.reference_targets(model, c, z)
    reference = torch_export.float64_targets(model, c, z)
    torch_export.export_flow_onnx(model, tmp_path / "jets.onnx", EXPORT["opset"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(tmp_path / "jets.onnx"), options, providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"conditions": c, "noise": z})[0]
    old_rule = np.abs(onnx_out - own) / np.maximum(1.0, np.abs(own))
    assert old_rule.max() > EXPORT["tolerance"]
    report = check_against_reference("ONNX output", onnx_out, own, reference, EXPORT["tolerance"])
    assert report["own_float32"]["max"] > EXPORT["tolerance"]  # the model's own float32 error, not ONNX's fault
    print("jets-sized flow:", report)


READ_ONLY_ROWS_SCRIPT = """
import warnings
import numpy as np, torch
from pipeline_steps.export import torch_export
from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow

spec = FlowSpec(["c0", "c1"], ["t0", "t1"], FlowHyperparameters(n_bins=4, hidden_dim=8, n_blocks=1),
                [FlowPart(None, None, ["t0", "t1"])])
torch.manual_seed(0)
model = build_flow(spec).eval()
rng = np.random.default_rng(0)
c, z = rng.standard_normal((16, 2)).astype(np.float32), rng.standard_normal((16, 2)).astype(np.float32)
before = z.copy()
c.flags.writeable = z.flags.writeable = False
warnings.simplefilter("error")  # after the imports: only the call under test may not warn
out = torch_export.reference_targets(model, c, z)
assert out.shape == (16, 2) and np.isfinite(out).all()
np.testing.assert_array_equal(z, before)
"""


def test_reference_targets_take_read_only_rows_without_a_warning():
    """Verification rows come from pandas' copy-on-write columns, which are read-only; the framework's
    reference must neither warn about them (``torch.from_numpy`` does) nor write into them. Run in a
    fresh interpreter, the call under warnings as errors: torch gives that warning once per process, so
    an earlier test in the same worker would otherwise hide it."""
    result = subprocess.run([sys.executable, "-c", READ_ONLY_ROWS_SCRIPT], cwd=PROJECT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
