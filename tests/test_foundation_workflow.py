"""The workflow as a whole: dry runs plan, lint is clean, every rule names an env that exists
and the env files pin what pyproject pins."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline_steps.model_kinds import MODEL_KINDS
from tests.conftest import REPO, run_snakemake

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def test_dry_run_of_default_config_plans_every_stage(tmp_path):
    result = run_snakemake("-n", "--quiet", "rules", workdir=tmp_path)
    planned = result.stdout + result.stderr
    for rule in ("toy_nanoaod", "ingest_table"):
        assert rule in planned, f"the default dry run does not plan {rule}:\n{planned[-3000:]}"


def test_lint_is_clean():
    result = run_snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def _rules_with_conda() -> dict[str, str | None]:
    """{rule name: conda path or None} read from the rule files' text."""
    rules: dict[str, str | None] = {}
    for rule_file in RULE_FILES:
        current, previous_line = None, ""
        for line in rule_file.read_text().splitlines():
            header = re.match(r"^(?:rule|checkpoint) (\w+):", line)
            if header:
                current = header.group(1)
                rules[current] = None
            conda = re.match(r'^\s+"(\.\./\.\./envs/[\w.]+)"', line)
            by_kind = re.match(r'^\s+kind_env\("(\w+)"\)', line)  # the env of a model kind: MODEL_KINDS
            if current and previous_line.strip() == "conda:" and (conda or by_kind):
                rules[current] = conda.group(1) if conda else MODEL_KINDS[by_kind.group(1)].env_file
            previous_line = line
    return rules


RERUN_TRIGGER_PARAMS = {"code"}
"""params a rule sets only so that Snakemake reruns it when they change (``kind_code``: the source hash of
the modules the job runs); every other param is there for the job to read."""


def test_every_param_a_rule_sets_reaches_its_script():
    """export_model.py had handed run() four of its rule's params by hand and left out ``branches``: every
    bundle's io.branches was empty, and run_bundle.py looked for renamed columns under their new names."""
    unread = []
    for rule_file in RULE_FILES:
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", rule_file.read_text(), re.S | re.M):
            script_name = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            params = re.search(r"^    params:\n((?:        .*\n)+)", body, re.M)
            if not script_name or not params:
                continue
            script = (rule_file.parent / script_name.group(1)).resolve().read_text()
            if "snakemake.params.items()" in script or re.search(r"params=snakemake\.params\b", script):
                continue  # the whole params go to the step
            unread += [f"{name}: {param}" for param in re.findall(r"^        (\w+)=", params.group(1), re.M)
                       if param not in RERUN_TRIGGER_PARAMS and f"snakemake.params.{param}" not in script]
    assert not unread, f"params set by a rule but not read by its script: {unread}"


def test_every_rule_names_an_existing_env():
    rules = _rules_with_conda()
    assert rules, "no rules found"
    for name, env in rules.items():
        assert env is not None, f"rule {name} has no conda: directive"
        env_path = (REPO / "workflow" / "rules" / env).resolve()
        assert env_path.exists(), f"rule {name} names {env}, which does not exist"


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def _env_requirements(env_file: Path) -> list[Requirement]:
    env = yaml.safe_load(env_file.read_text())
    specs = []
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            specs += [d for d in dependency.get("pip", []) if not d.startswith("-")]
        elif dependency not in ("pip",) and not dependency.startswith("python="):
            specs.append(dependency)
    return [Requirement(spec) for spec in specs]


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(env_file):
    pinned = _pyproject_requirements()
    env = yaml.safe_load(env_file.read_text())
    assert env["name"].startswith("fastsim-")
    assert "python=3.11" in env["dependencies"]
    for requirement in _env_requirements(env_file):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{env_file.name}: {requirement.name} is not a dependency in pyproject.toml"
        assert requirement.specifier == pinned[name].specifier, (
            f"{env_file.name}: {requirement.name}{requirement.specifier} differs from pyproject's "
            f"{pinned[name].specifier}"
        )


def test_benchmark_tables_are_ignored_by_git_and_benchmark_code_is_not():
    """`benchmark:` files (benchmarks/<stage>/<name>.tsv) are results of a run; benchmarks/*.py is code."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (e.g. an unpacked release): .gitignore is not in force")
    paths = ["benchmarks/train/jets.tsv", "benchmarks/ingest/ship/muons/0.tsv", "benchmarks/top.tsv",
             "benchmarks/bench_planning.py"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert result.stdout.split() == paths[:3], result.stderr
