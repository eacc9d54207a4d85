"""The workflow as a whole: dry runs plan, lint is clean, every rule names an env that exists
and the env files pin what pyproject pins."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from packaging.utils import canonicalize_name

from tests.conftest import REPO, run_snakemake
from tests.workflow_files import RULE_FILES, env_requirements, pyproject_requirements, rules_with_conda


def test_dry_run_of_default_config_plans_every_stage(tmp_path):
    result = run_snakemake("-n", "--quiet", "rules", workdir=tmp_path)
    planned = result.stdout + result.stderr
    for rule in ("toy_nanoaod", "ingest_table"):
        assert rule in planned, f"the default dry run does not plan {rule}:\n{planned[-3000:]}"


def test_lint_is_clean():
    result = run_snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


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
    rules = rules_with_conda()
    assert rules, "no rules found"
    for name, env in rules.items():
        assert env is not None, f"rule {name} has no conda: directive"
        env_path = (REPO / "workflow" / "rules" / env).resolve()
        assert env_path.exists(), f"rule {name} names {env}, which does not exist"


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(env_file):
    pinned = pyproject_requirements()
    env = yaml.safe_load(env_file.read_text())
    assert env["name"].startswith("fastsim-")
    assert "python=3.11" in env["dependencies"]
    for requirement in env_requirements(env_file):
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
