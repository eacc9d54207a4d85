"""The bundle's run_bundle.py, run in a subprocess that can import only the standard library and
site-packages (no pipeline_steps, and a guard that torch/tensorflow/keras were never imported),
reproduces the framework's output from a ROOT file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uproot

from tests.test_export_bundle import (
    CALRATIO_HYPER,
    EXPORT,
    FLOW_CONDITIONS,
    export_flow,
    physical_rows,
    raw_file,
    tiny_calratio,
)

GUARD = textwrap.dedent("""
    import os, runpy, sys
    sys.path[:] = [p for p in sys.path if p and ("site-packages" in p or p.startswith(sys.base_prefix))
                   and not os.path.isdir(os.path.join(p, "pipeline_steps"))]
    runner, *arguments = sys.argv[1:]
    sys.argv = [runner, *arguments]
    try:
        runpy.run_path(runner, run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code
    forbidden = sorted(m for m in ("pipeline_steps", "torch", "tensorflow", "keras") if m in sys.modules)
    if forbidden:
        print("FORBIDDEN IMPORTS", forbidden)
        sys.exit(3)
    sys.exit(code)
""")


def run_standalone(tmp_path: Path, bundle: Path, source: Path, output: Path, *extra: str) -> None:
    guard = tmp_path / "guard.py"
    guard.write_text(GUARD)
    result = subprocess.run([sys.executable, "-I", str(guard), str(bundle / "run_bundle.py"), str(bundle),
                             str(source), str(output), *extra], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_standalone_runner_reproduces_the_flow(tmp_path):
    from pipeline_steps.export.batch import physical_targets, standard_normal
    from pipeline_steps.export.torch_export import load_flow, reference_targets
    from pipeline_steps.preprocess.transforms import load_transforms

    bundle = export_flow(tmp_path)
    rows = physical_rows(60, seed=11)[FLOW_CONDITIONS]
    source, output = tmp_path / "in.root", tmp_path / "out.root"
    with uproot.recreate(source) as sink:
        sink["Events"] = {name: rows[name].to_numpy() for name in FLOW_CONDITIONS}
    run_standalone(tmp_path, bundle, source, output, "--seed", "7")

    transforms = load_transforms(bundle / "transforms.json")
    conditions = transforms.conditions.forward(rows)
    noise = standard_normal(len(rows), 3, 7)
    expected = physical_targets(transforms, reference_targets(load_flow(bundle), conditions, noise), rows, None)
    with uproot.open(output) as produced:
        found = produced["Events"].arrays(library="np")
    assert set(expected) == {"pt", "dz", "charge"}
    for name, values in expected.items():
        if np.issubdtype(values.dtype, np.integer):
            assert np.mean(found[name] != values) <= 0.02, name
        else:
            np.testing.assert_allclose(found[name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(found["gen_pt"], rows["gen_pt"].to_numpy())


@pytest.mark.slow
def test_standalone_runner_reproduces_the_calratio_classifier(tmp_path):
    from pipeline_steps.export.keras_export import keras_predict, load_keras
    from pipeline_steps.export.step import run
    from pipeline_steps.preprocess.calratio_inputs import load_split

    files, transforms, jets, jagged = tiny_calratio(tmp_path / "cr")
    bundle = tmp_path / "export" / "calratio"
    model = {"kind": "calratio_rnn", "conditions": ["jet_pt", "jet_eta"], "hyperparameters": CALRATIO_HYPER}
    run(files, str(transforms), str(tmp_path / "cr" / "test.parquet"), str(bundle),
        {"model_name": "calratio", "model": model, "tree": "CalRatio", "export": EXPORT}, [raw_file(tmp_path)])
    source, output = tmp_path / "jets.root", tmp_path / "scores.root"
    with uproot.recreate(source) as sink:
        import awkward as ak

        sink["CalRatio"] = {**{c: jets[c].to_numpy() for c in jets.columns},
                            **{name: ak.Array([list(r) for r in rows]) for name, rows in jagged.items()}}
    run_standalone(tmp_path, bundle, source, output)
    sample = load_split(tmp_path / "cr", "test")
    classifier = load_keras(bundle / "model.keras")
    expected = keras_predict(classifier, {k: sample[k] for k in ("jets", "clusters", "tracks", "muon_segments")})
    with uproot.open(output) as produced:
        found = produced["CalRatio"].arrays(library="np")  # io.tree: the dataset's tree
    found = np.stack([found[f"prob_{c}"] for c in ("signal", "qcd", "bib")], axis=1)
    np.testing.assert_allclose(found, expected, atol=1e-5)
