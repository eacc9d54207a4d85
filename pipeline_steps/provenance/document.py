"""results/provenance.json: what made each model, and a check that it still holds.

The document ties every model to what made it: the sha256 of each raw ROOT file it was trained on,
its config slice, the sha256 of its trained, generated, validation and export files, the package
versions and the git commit of the checkout. ``verify`` re-hashes the files it lists and reports drift, so a physicist can check
months later that a result still matches its inputs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pipeline_steps.common.source_hash import sha256_file
from pipeline_steps.common.versions import package_versions
from pipeline_steps.provenance.raw_checksums import checksums_of

#: Packages whose version can change a result's bytes (recorded in provenance.json).
RECORDED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "awkward", "uproot", "scipy", "scikit-learn",
    "torch", "zuko", "tensorflow", "keras", "onnx", "onnxruntime", "snakemake",
)


@dataclass(frozen=True)
class ModelRecord:
    """One model's inputs and outputs as the rule hands them over (paths relative to the workdir)."""

    name: str
    config: Mapping[str, Any]
    raw_inputs: Sequence[str]
    outputs: Sequence[str]


def git_state(checkout: str | Path) -> dict[str, Any]:
    """Commit of the workflow's checkout and whether it has uncommitted edits (``None`` outside git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def hash_files(paths: Sequence[str], hasher: Callable[[str], str] = sha256_file) -> dict[str, str]:
    """{path: sha256}, sorted by path; each file hashed once even when listed twice."""
    return {path: hasher(path) for path in sorted(set(paths))}


def build_provenance(models: Sequence[ModelRecord], checkout: str | Path, seed: int, raw_checksums: Mapping[str, str],
                     hasher: Callable[[str], str] = sha256_file) -> dict[str, Any]:
    """The provenance document (pure apart from hashing files, reading git and package metadata). The raw files'
    sha256 are looked up in ``raw_checksums`` (rule checksum_raw's, ``raw_checksums.py``), not hashed again."""
    return {
        "format": 1,
        "seed": seed,
        "git": git_state(checkout),
        "python": sys.version.split()[0],
        "packages": package_versions(RECORDED_PACKAGES),
        "models": {
            record.name: {
                "config": dict(record.config),
                "config_sha256": hashlib.sha256(json.dumps(record.config, sort_keys=True).encode()).hexdigest(),
                "raw_inputs": checksums_of(record.raw_inputs, raw_checksums, f"provenance of model {record.name}"),
                "outputs": hash_files(record.outputs, hasher),
            }
            for record in models
        },
    }


@dataclass(frozen=True)
class Drift:
    """A file whose bytes no longer match provenance.json (``now`` is None when it is missing)."""

    model: str
    role: str  # "raw_inputs" or "outputs"
    path: str
    recorded: str
    now: str | None

    def describe(self) -> str:
        state = "missing" if self.now is None else f"sha256 {self.now[:12]}... (recorded {self.recorded[:12]}...)"
        return f"{self.model}: {self.role[:-1].replace('_', ' ')} {self.path} changed: {state}"


def find_drift(document: Mapping[str, Any], root: str | Path = ".") -> list[Drift]:
    """Re-hash every file listed in a provenance document (paths relative to ``root``)."""
    root = Path(root)
    cache: dict[str, str | None] = {}
    drift: list[Drift] = []
    for model, entry in document["models"].items():
        for role in ("raw_inputs", "outputs"):
            for path, recorded in entry[role].items():
                if path not in cache:
                    full = root / path
                    cache[path] = sha256_file(full) if full.is_file() else None
                if cache[path] != recorded:
                    drift.append(Drift(model, role, path, recorded, cache[path]))
    return drift


def verify(provenance_path: str | Path = "results/provenance.json", root: str | Path = ".") -> int:
    """``make verify``: print drift between provenance.json and the files now on disk; 1 if any."""
    provenance_path = Path(provenance_path)
    if not provenance_path.is_file():
        print(f"verify: {provenance_path} not found; run the workflow first (it is built by `rule all`)")
        return 2
    document = json.loads(provenance_path.read_text())
    drift = find_drift(document, root)
    n_files = sum(len(e[role]) for e in document["models"].values() for role in ("raw_inputs", "outputs"))
    for item in drift:
        print(f"DRIFT {item.describe()}")
    print(f"verify: {len(drift)} drifted of {n_files} recorded (model, file) entries ({provenance_path})")
    return 1 if drift else 0
