"""Verification of a bundle: checksums, ONNX vs the stored framework outputs, framework reload.

``verification.npz`` in the bundle holds one batch: the model inputs (transformed units), the noise,
the framework's outputs on them and, for generative models, the physical conditions and the
framework's physical outputs (``pipeline_steps`` transforms). :func:`verify_bundle` recomputes
everything from the bundle files alone and raises :class:`BundleVerificationError` when a checksum
differs or an output is beyond the manifest's tolerance.

Tolerance ``t``: transformed outputs must agree to ``|a - b| <= t * max(1, |b|)``. Physical outputs
must agree to ``|a - b| <= t * (|b| + std(b))`` for continuous columns; for dequantised (integer)
columns a 1e-6 difference upstream can move a value across an integer, so at most a fraction ``t``
of their rows (at least one row) may differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline_steps.common.errors import InputError
from pipeline_steps.export import run_bundle
from pipeline_steps.export.manifest import read_manifest
from pipeline_steps.provenance import sha256_file

VERIFICATION_FILE = "verification.npz"


class BundleVerificationError(InputError):
    """A bundle whose files or outputs do not match its manifest."""


def check_checksums(folder: str | Path, manifest: Mapping[str, Any]) -> None:
    """Every file listed in ``manifest['checksums']`` exists and has that sha256."""
    folder = Path(folder)
    for name, expected in manifest["checksums"].items():
        path = folder / name
        if not path.exists():
            raise BundleVerificationError(f"{path}: listed in bundle.json but missing")
        found = sha256_file(path)
        if found != expected:
            raise BundleVerificationError(f"{path}: sha256 {found} differs from bundle.json ({expected}); "
                                          f"the file was changed after export")


def compare(name: str, found: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    """Largest scaled difference; raises beyond ``tolerance`` (transformed-space rule of the module doc)."""
    found, expected = np.asarray(found, np.float64), np.asarray(expected, np.float64)
    if found.shape != expected.shape:
        raise BundleVerificationError(f"{name}: shape {found.shape} differs from the framework's {expected.shape}")
    scaled = np.abs(found - expected) / np.maximum(1.0, np.abs(expected))
    worst = float(np.nanmax(scaled)) if scaled.size else 0.0
    same_non_finite = np.array_equal(np.isfinite(found), np.isfinite(expected))
    if not same_non_finite or worst > tolerance:
        raise BundleVerificationError(f"{name}: differs from the framework by {worst:.3g} (tolerance {tolerance:g})")
    return worst


def compare_physical(found: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], tolerance: float) -> float:
    """Physical columns (rule of the module doc); returns the largest continuous relative difference."""
    worst = 0.0
    for name, reference in expected.items():
        if name not in found:
            raise BundleVerificationError(f"physical output {name!r} missing from the bundle's output")
        a, b = np.asarray(found[name], np.float64), np.asarray(reference, np.float64)
        if np.issubdtype(np.asarray(reference).dtype, np.integer) or np.asarray(reference).dtype == np.bool_:
            differing = int(np.sum(a != b))
            if differing > max(1, int(tolerance * len(b))):
                raise BundleVerificationError(f"physical {name}: {differing} of {len(b)} integer values differ")
            continue
        scale = np.abs(b) + (float(np.std(b)) or 1.0)
        difference = float(np.max(np.abs(a - b) / scale)) if len(b) else 0.0
        if difference > tolerance:
            raise BundleVerificationError(f"physical {name}: differs from the framework by {difference:.3g} "
                                          f"(tolerance {tolerance:g})")
        worst = max(worst, difference)
    return worst


def load_verification(folder: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """verification.npz as {group: {name: array}} (keys are ``group/name``)."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    with np.load(Path(folder) / VERIFICATION_FILE, allow_pickle=False) as npz:
        for key in npz.files:
            group, name = key.split("/", 1)
            groups.setdefault(group, {})[name] = npz[key]
    return groups


def framework_outputs(folder: Path, manifest: Mapping[str, Any], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Reload the native model from the bundle and run it on ``inputs``."""
    if manifest["kind"] == "flow":
        from pipeline_steps.export.torch_export import load_flow, reference_targets

        return reference_targets(load_flow(folder), inputs["conditions"], inputs["noise"])
    from pipeline_steps.export.keras_export import keras_predict, load_keras

    model = load_keras(folder / manifest["files"]["native"][0])
    if manifest["kind"] == "covariance_gan":
        return keras_predict(model, [inputs["conditions"], inputs["noise"]])
    return keras_predict(model, dict(inputs))


def verify_bundle(folder: str | Path, framework: bool = True) -> dict[str, Any]:
    """Check a bundle against its manifest; returns the measured differences, raises on failure."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_checksums(folder, manifest)
    tolerance = float(manifest["verification"]["tolerance"])
    batch = load_verification(folder)
    bundle = run_bundle.Bundle(folder)
    onnx_out = bundle.run_onnx(batch["inputs"])
    report = {"rows": int(len(onnx_out)),
              "onnx_vs_framework": compare("ONNX output", onnx_out, batch["expected"]["output"], tolerance)}
    if framework:
        report["reloaded_framework_vs_stored"] = compare(
            "reloaded native model", framework_outputs(folder, manifest, batch["inputs"]),
            batch["expected"]["output"], tolerance)
    if "physical" in batch:
        physical = run_bundle.physical_outputs(bundle, onnx_out, batch["conditions_physical"])
        report["physical_onnx_vs_framework"] = compare_physical(physical, batch["physical"], tolerance)
    return report
