"""``bundle.json``: what a bundle contains, how to feed it, and where it came from.

The manifest is written for someone without this project: input/output names, order, shapes and
units, the noise's dimension and distribution, padding lengths, the ONNX opset, the recipe for the
transforms, the verification tolerance and result, and provenance (sha256 of every raw input file,
the model's config slice, package versions, git commit, sha256 of every other bundle file).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.source_hash import sha256_file
from pipeline_steps.common.versions import package_versions
from pipeline_steps.provenance.raw_checksums import read_checksums

MANIFEST = "bundle.json"
FORMAT_VERSION = 2  # 2: verification.npz holds the float64 reference, verification records quantiles
PACKAGES = ("numpy", "onnx", "onnxruntime", "torch", "zuko", "tensorflow", "keras", "tf2onnx", "uproot", "pandas")

TRANSFORM_RECIPE = [
    "transforms.json (+ transforms.npz: arrays referenced as {\"npz\": key}) holds 'conditions' and 'targets', "
    "each a list of variables in model order with kind and params, plus an optional ZCA 'decorrelation'.",
    "forward (physical -> model): per variable, if 'dequantize': x = floor(x) + U(1e-3, 1 - 1e-3) drawn from "
    "numpy default_rng([seed, variable_index]), seed = the section's 'seed' in transforms.json; then, if params has clip_low and/or clip_high, x = clip(x, clip_low, "
    "clip_high) (a missing bound is no bound); then log(x + offset) (log_standard), log10(x + offset) "
    "(log10_quantile_normal), offset = params.offset or 0, or sign(x)log1p(|x|) (signed_log_standard); "
    "then standard: (x - mean) / std, minmax: 2(x - low)/(high - low) - 1, "
    "quantile: piecewise-linear map x_knots -> z_knots, linearly extrapolated with the end slopes; "
    "then, if present, y = (x - mean) @ matrix.T.",
    "inverse (model -> physical): undo in reverse order (inverse_matrix, z_knots -> x_knots, exp(y) - offset / "
    "10**y - offset / expm1), then x = max(x, point_mass_low) / min(x, point_mass_high) when present (targets: "
    "an edge value spread over a block beyond the edge for training), floor dequantised variables, cast to the "
    "variable's dtype; a clip is not undone (a clipped value comes back as its bound).",
    "targets_to_physical: undo target_representation (covariance), then each 'derived' variable "
    "(ratio: a = r*b, or a = r*max(b, floor) when the derived entry has 'floor'; difference: a = d + b; "
    "delta_phi: a = wrap(d + b) into (-pi, pi]) with b the physical condition.",
    "support (generated rows only): clip each physical target named in 'support.ranges' to its training [low, high], "
    "then for each group of 'support.sums' ({columns, high}: parts of one whole) scale the group's columns of every "
    "row whose sum s exceeds t = high / ((1 + 2**-(k+1)) (1 + 2**-24)) by t / s, k the smallest 'mantissa_bits' of "
    "the group's columns (23 for one not listed), "
    "then replace each one named in 'support.values' by the nearest of those values (ties go to the lower), "
    "then round each one named in 'support.mantissa_bits' to the nearest float32 with that many mantissa bits "
    "(add half of the last kept bit to the bit pattern, clear the dropped bits), the precision the file stores.",
    "SHiP (categories.json present): targets are per-category normalised; per row of category c (info = "
    "categories[c]) and variable x: v = clip(v, -1, 1); if x is in info.broadening (b): w = b.min + (v + 1)/2 "
    "(b.max - b.min) - b.mean, v = sign(w) w**2 + b.mean; then x = info.min[x] + (v + 1)/2 (info.max[x] - "
    "info.min[x]); StartX = StartY = 0 where info.from_target.",
    "run_bundle.py in this folder implements all of the above with numpy only.",
]


def bundle_checksums(folder: str | Path, names: Iterable[str]) -> dict[str, str]:
    """{file name: sha256} of the named bundle files."""
    folder = Path(folder)
    return {name: sha256_file(folder / name) for name in sorted(names)}


def git_commit(where: str | Path = ".") -> str:
    """The project's git commit (with ``-dirty`` when the tree has changes), ``unknown`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=20, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else (commit or "unknown")


def provenance(raw_checksums: Iterable[str | Path], model_config: Mapping[str, Any],
               project_dir: str | Path) -> dict[str, Any]:
    """The bundle's provenance; the raw files' sha256 as rule checksum_raw recorded them (``raw_checksums``: its
    JSONs for the model's datasets), not hashed again here (``provenance/raw_checksums.py`` says why)."""
    return {
        "raw_files_sha256": read_checksums(raw_checksums),
        "model_config": dict(model_config),
        "packages": package_versions(PACKAGES),  # an absent one (TensorFlow in a torch env) is null
        "git_commit": git_commit(project_dir),
    }


def write_manifest(folder: str | Path, manifest: Mapping[str, Any]) -> None:
    write_text_atomic(Path(folder) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=False) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the bundle manifest ({error})") from error
