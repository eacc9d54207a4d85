"""What the workflow's own files declare, read from their text for the tests: each rule's conda env, the
packages pyproject.toml requires and those each env of envs/ installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline_steps.model_kinds import MODEL_KINDS
from tests.conftest import REPO

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def rules_with_conda() -> dict[str, str | None]:
    """{rule name: conda path (relative to a rule file) or None}. A rule named in a loop (``rule:`` then
    ``name: f"toy_{_job}"``) is listed under its name's fixed start (``toy_``)."""
    rules: dict[str, str | None] = {}
    for rule_file in RULE_FILES:
        current, previous_line, naming = None, "", False
        for line in rule_file.read_text().splitlines():
            header = re.match(r"^(?:rule|checkpoint) (\w+):", line)
            looped = re.match(r'^\s+f"(\w+)\{', line) if naming else None
            if header or looped:
                current = (header or looped).group(1)
                rules[current] = None
            naming = line.strip() == "name:" and previous_line.strip() == "rule:"
            conda = re.match(r'^\s+"(\.\./\.\./envs/[\w.]+)"', line)
            by_kind = re.match(r'^\s+kind_env\("(\w+)"\)', line)  # the env of a model kind: MODEL_KINDS
            if current and previous_line.strip() == "conda:" and (conda or by_kind):
                rules[current] = conda.group(1) if conda else MODEL_KINDS[by_kind.group(1)].env_file
            previous_line = line
    return rules


def env_of_rule(rule: str, rules: dict[str, str | None]) -> str:
    """The env file name (``ingest``) of a job's ``rule``, a looped rule's by its name's start."""
    conda = rules.get(rule) or next(path for start, path in rules.items() if rule.startswith(start))
    return Path(conda).stem


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def env_requirements(env_file: Path) -> list[Requirement]:
    env = yaml.safe_load(env_file.read_text())
    specs = []
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            specs += [d for d in dependency.get("pip", []) if not d.startswith("-")]
        elif dependency not in ("pip",) and not dependency.startswith("python="):
            specs.append(dependency)
    return [Requirement(spec) for spec in specs]
