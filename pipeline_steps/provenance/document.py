"""Hashes that tie outputs to their inputs and to the code that made them.

Snakemake reruns a job when its ``script:`` text changes, but not when a module that script
imports changes. Rules therefore carry ``params: code=source_hash(...)`` of the modules they use
(imports followed), and a code edit in one step reruns exactly the jobs that use it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks (raw ROOT files can be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def source_hash(*modules: str) -> str:
    """Short sha256 over the source of package sub-modules and everything they import from it.

    A name is a module file (``models/flow``) or a sub-package folder (``ingest``). Module-level
    imports of ``pipeline_steps`` modules are followed transitively, so an edit in a shared helper
    (say ``train/schedule``) reruns every job that uses it, while an edit in a module a rule never
    imports reruns nothing. Imports inside functions are *not* followed: in this package they are
    the per-kind dispatch (export/generate pick the flow, GAN or CalRatio module at run time), so a
    rule names the kind-specific modules it dispatches to itself. Files are hashed in sorted order,
    so the value is stable across machines.
    """
    digest = hashlib.sha256()
    for path in sorted(_with_imports({file for module in modules for file in _module_files(module)})):
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _module_files(module: str) -> list[Path]:
    target = PACKAGE_ROOT / module
    if target.is_dir():
        return sorted(target.rglob("*.py"))
    file = target.with_suffix(".py")
    if not file.exists():
        raise FileNotFoundError(f"source_hash: no module or package {module!r} under {PACKAGE_ROOT}")
    return [file]


def _with_imports(files: set[Path]) -> set[Path]:
    """The files plus every package module they import, directly or not."""
    seen: set[Path] = set()
    pending = list(files)
    while pending:
        file = pending.pop()
        if file in seen:
            continue
        seen.add(file)
        pending.extend(_imported_package_files(file))
    return seen


def _imported_package_files(file: Path) -> list[Path]:
    """Files of ``pipeline_steps`` modules named by the module-level imports of ``file``."""
    package_parts = file.relative_to(PACKAGE_ROOT).parent.parts
    found = []
    for node in _module_level_statements(ast.parse(file.read_text(), filename=str(file)).body):
        if isinstance(node, ast.Import):
            dotted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(("pipeline_steps", *package_parts[: len(package_parts) - node.level + 1]))
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            dotted = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [path for name in dotted if (path := _package_file(name)) is not None]
    return found


def _module_level_statements(body: list[ast.stmt]):
    """Statements run at import time, including those under module-level ``if``/``try``."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            nested = [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            nested += [stmt for handler in getattr(node, "handlers", []) for stmt in handler.body]
            yield from _module_level_statements(nested)


def _package_file(dotted: str) -> Path | None:
    parts = dotted.split(".")
    if parts[0] != "pipeline_steps":
        return None
    target = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# --- provenance.json and its verification ------------------------------------------------------
#
# results/provenance.json ties every model to what made it: the sha256 of each raw ROOT file it
# was trained on, its config slice, the sha256 of its trained/exported files, the package versions
# and the git commit of the checkout. ``verify`` re-hashes the files it lists and reports drift, so
# a physicist can check months later that a result still matches its inputs.

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


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` when absent), read from metadata, not imported."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


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


def build_provenance(models: Sequence[ModelRecord], checkout: str | Path, seed: int,
                     hasher: Callable[[str], str] = sha256_file) -> dict[str, Any]:
    """The provenance document (pure apart from hashing files, reading git and package metadata)."""
    cache: dict[str, str] = {}

    def cached(path: str) -> str:
        if path not in cache:
            cache[path] = hasher(path)
        return cache[path]

    return {
        "format": 1,
        "seed": seed,
        "git": git_state(checkout),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "models": {
            record.name: {
                "config": dict(record.config),
                "config_sha256": hashlib.sha256(json.dumps(record.config, sort_keys=True).encode()).hexdigest(),
                "raw_inputs": hash_files(record.raw_inputs, cached),
                "outputs": hash_files(record.outputs, cached),
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


def write_provenance(models: Sequence[ModelRecord], output: str, checkout: str, seed: int,
                     log: str | None = None) -> None:
    """The rule's entry point: hash everything, write results/provenance.json atomically."""
    from pipeline_steps.common.atomic import write_text_atomic
    from pipeline_steps.common.logs import step_logging

    with step_logging(log):
        document = build_provenance(models, checkout, seed)
        write_text_atomic(output, json.dumps(document, indent=2, sort_keys=True) + "\n")
        logger.info("provenance of %d models -> %s (git %s)", len(models), output, document["git"]["commit"])


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


if __name__ == "__main__":
    raise SystemExit(verify(*sys.argv[1:3]))


def records_from_rule(models: Mapping[str, Mapping[str, Any]]) -> list[ModelRecord]:
    """ModelRecords from the provenance rule's ``params.models`` ({name: {config, raw_inputs, outputs}})."""
    return [
        ModelRecord(name, dict(entry["config"]), list(entry["raw_inputs"]), list(entry["outputs"]))
        for name, entry in models.items()
    ]
