"""Hashes that tie outputs to their inputs and to the code that made them.

``sha256_file`` hashes a data file (raw ROOT inputs, trained models, exports); ``source_hash`` hashes
package source for the rules.

Snakemake reruns a job when its ``script:`` text changes, but not when a module that script
imports changes. Rules therefore carry ``params: code=source_hash(...)`` of the modules they use
(imports followed), and a code edit in one step reruns exactly the jobs that use it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # pipeline_steps/


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
    imports reruns nothing. Imports inside functions are followed into ``pipeline_steps.common`` only
    (helpers imported late to keep a job's start light); elsewhere they are the per-kind dispatch
    (export/generate pick the flow, GAN or CalRatio module at run time), so a rule names the
    kind-specific modules it dispatches to itself. The packages' ``__init__`` files, which run with
    any of their modules, are in the hash too. Every job script imports ``common/logs``, which rules
    name; they had named the whole ``common`` folder, so a docstring edit in ``common/figures`` reran
    all 52 jobs of the tiny workflow, toy files and ingestion included. Files are hashed in sorted
    order, so the value is stable across machines.
    """
    named = {file for module in modules for file in _module_files(module)}
    named |= {init for file in named for init in _package_inits(file)}  # the named modules' packages run too
    digest = hashlib.sha256()
    for path in sorted(_with_imports(named)):
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


@functools.lru_cache(maxsize=None)  # planning hashes ~20 rules over the same files; a file's imports are parsed once
def _imported_package_files(file: Path) -> tuple[Path, ...]:
    """Files of ``pipeline_steps`` modules named by the module-level imports of ``file``, of the
    ``pipeline_steps.common`` modules it imports anywhere, and the ``__init__`` files of their packages."""
    package_parts = file.relative_to(PACKAGE_ROOT).parent.parts
    tree = ast.parse(file.read_text(), filename=str(file))
    module_level = list(_module_level_statements(tree.body))
    at_import = {id(node) for node in module_level}
    late_common = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                   and id(node) not in at_import]
    found = []
    for node in [*module_level, *late_common]:
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
        if id(node) not in at_import:
            dotted = [name for name in dotted if name.startswith("pipeline_steps.common")]
        found += [path for name in dotted if (path := _package_file(name)) is not None]
    return (*found, *(init for path in found for init in _package_inits(path)))


def _package_inits(path: Path) -> list[Path]:
    """``__init__.py`` of every package above ``path`` inside ``pipeline_steps`` (run by any import of it)."""
    folders = [folder for folder in path.parents if folder == PACKAGE_ROOT or PACKAGE_ROOT in folder.parents]
    return [init for folder in folders if (init := folder / "__init__.py").is_file()]


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
