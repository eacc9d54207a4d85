"""Every profile plans the whole workflow (default and production configs), names only options the
installed Snakemake and executor plugins know, and the rule files stay lint- and snakefmt-clean."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("CONDOR_CONFIG", "/dev/null")  # the htcondor bindings (a plugin snakemake loads) warn without one
from snakemake.cli import get_argument_parser  # noqa: E402
from snakemake.profiles import ProfileConfigFileParser  # noqa: E402

from pipeline_steps import batch_limits  # noqa: E402
from pipeline_steps.model_kinds import MODEL_KINDS  # noqa: E402
from tests.conftest import REPO, SNAKEMAKE  # noqa: E402

PROFILES = sorted(path.parent.name for path in (REPO / "profiles").glob("*/config.yaml"))
CONFIGS = ["config/config.yaml", "config/production.yaml"]


def _rules_asking_for_a_gpu() -> set[str]:
    """Rules whose `resources:` ask for a `gpu`, read from the rule files (the profiles must route each)."""
    rules = set()
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", rule_file.read_text(), re.M | re.S):
            if re.search(r"^\s+gpu=", body, re.M):
                rules.add(name)
    return rules


GPU_RULES = _rules_asking_for_a_gpu()
_QUIET_ENV = dict(os.environ)


@pytest.fixture(autouse=True)
def no_batch_system_here(monkeypatch):
    """The cluster profiles read their partition's or pool's limits when they load (pipeline_steps/batch_limits.py):
    these tests read the profiles as written, also on a login node whose SLURM or HTCondor answers (there a test
    cluster's 2-core partition had made the trainings' 8 cores read min(8, 2)). test_batch_limits.py and the live
    tests read real answers."""
    monkeypatch.setattr(batch_limits, "_query", lambda command: None)


def _profile(name: str, **environment: str) -> dict:
    """The profile as Snakemake reads it (YTE templating included), under the given FASTSIM_* variables."""
    saved = dict(os.environ)
    os.environ.update(environment)
    try:
        with open(REPO / "profiles" / name / "config.yaml") as stream:
            return dict(ProfileConfigFileParser().parse(stream))
    finally:
        os.environ.clear()
        os.environ.update(saved)


#: Every FASTSIM_* variable that adds a top-level key to a profile (its ``?if`` keys are read only when set).
ALL_SITE_VALUES = {"FASTSIM_SLURM_QOS": "long", "FASTSIM_HTCONDOR_MAX_CPUS": "4"}


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("environment", [{}, ALL_SITE_VALUES], ids=["plain", "site values"])
def test_profile_names_only_known_options(name, environment):
    known = {option for action in get_argument_parser()._actions for option in action.option_strings}
    unknown = [key for key in _profile(name, **environment) if f"--{key}" not in known]
    assert not unknown, f"profiles/{name}/config.yaml: no such snakemake/plugin option: {unknown}"


def test_slurm_site_values_come_from_the_environment():
    plain = _profile("slurm")
    assert not any(entry.startswith(("slurm_partition=", "slurm_account=")) for entry in plain["default-resources"])
    assert "slurm-qos" not in plain
    site = _profile("slurm", FASTSIM_SLURM_PARTITION="cpu", FASTSIM_SLURM_ACCOUNT="proj",
                    FASTSIM_SLURM_GPU_PARTITION="gpu", FASTSIM_GPU_MODEL="a100", FASTSIM_SLURM_QOS="long")
    assert {"slurm_partition=cpu", "slurm_account=proj"} <= set(site["default-resources"])
    assert site["slurm-qos"] == "long"
    for rule in GPU_RULES:
        assert {f"{rule}:slurm_partition=gpu", f"{rule}:gpu_model=a100"} <= set(site["set-resources"])


def test_local_gpu_slots_are_the_listed_gpus_or_else_the_cores(tmp_path):
    """One training per GPU where there are GPUs; on a CPU-only machine the cores, not one slot, bound them."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    assert _profile("local", PATH=f"{fake.parent}:{os.environ['PATH']}")["resources"] == ["gpu=2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _profile("local", PATH=str(empty))["resources"] == [f"gpu={os.cpu_count()}"]


def test_every_rule_asking_for_a_gpu_lands_where_a_gpu_is_and_no_other():
    assert {"train_flow", "generate_flow", "generate_covariance_gan"} <= GPU_RULES  # the rule-file reader works
    slurm = _profile("slurm", FASTSIM_SLURM_GPU_PARTITION="gpu")["set-resources"]
    htcondor = _profile("htcondor")["set-resources"]
    assert {entry.split(":")[0] for entry in slurm if entry.endswith(":slurm_partition=gpu")} == GPU_RULES
    assert {entry.split(":")[0] for entry in htcondor if entry.endswith(":request_gpus=1")} == GPU_RULES


def test_without_gpus_every_gpu_rule_asks_for_none_and_no_gpu_partition_or_model():
    """FASTSIM_NO_GPU=1 (a cluster or pool without GPUs): the GPU partition and model set for a GPU cluster are
    ignored, since `--gpus=a100:0` is no request the plugin can make."""
    site = {"FASTSIM_SLURM_GPU_PARTITION": "gpu", "FASTSIM_GPU_MODEL": "a100"}
    slurm = _profile("slurm", **site, FASTSIM_NO_GPU="1")["set-resources"]
    htcondor = _profile("htcondor", FASTSIM_NO_GPU="1")["set-resources"]
    assert {entry.split(":")[0] for entry in slurm if entry.endswith(":gpu=0")} == GPU_RULES
    assert {entry.split(":")[0] for entry in htcondor if entry.endswith(":request_gpus=0")} == GPU_RULES
    assert not any(":slurm_partition=gpu" in entry or ":gpu_model=" in entry for entry in slurm)
    assert not any(":gpu=0" in entry for entry in _profile("slurm", **site, FASTSIM_NO_GPU="0")["set-resources"])
    # "false" asks for GPUs (it had meant none, as every value but 0 did); a value of no clear meaning stops
    slurm_false = _profile("slurm", **site, FASTSIM_NO_GPU="false")["set-resources"]
    htcondor_false = _profile("htcondor", FASTSIM_NO_GPU="false")["set-resources"]
    assert not any(":gpu=0" in entry for entry in slurm_false)
    assert not any(":request_gpus=0" in entry for entry in htcondor_false)
    for name in ("slurm", "htcondor"):  # the batch profiles: the local ones run where the GPUs are seen
        with pytest.raises(Exception, match="FASTSIM_NO_GPU='maybe': expected 1"):
            _profile(name, FASTSIM_NO_GPU="maybe")


def test_htcondor_jobs_start_through_the_checkouts_wrapper_from_any_folder(tmp_path, monkeypatch):
    """Every HTCondor job runs job_wrapper.sh (it brings the job back from a worker's sandbox to its submit folder
    and the venv's python; tests/test_cluster_htcondor.py runs it live), found from the head's cwd anywhere."""
    monkeypatch.chdir(tmp_path)
    (entry,) = [entry for entry in _profile("htcondor")["default-resources"] if entry.startswith("job_wrapper=")]
    wrapper = Path(entry.removeprefix("job_wrapper="))
    assert wrapper == REPO / "profiles" / "htcondor" / "job_wrapper.sh"
    assert os.access(wrapper, os.X_OK), "git must keep the wrapper executable"


def test_resources_scale_with_the_attempt_and_gpus_never_via_slurm_extra():
    for name in ("slurm", "htcondor"):
        entries = _profile(name)["default-resources"] + _profile(name)["set-resources"]
        assert not any("slurm_extra" in entry and ("--gres" in entry or "--gpus" in entry) for entry in entries)
        memory = [entry for entry in entries if "mem_mb=" in entry or "request_memory=" in entry]
        assert memory and all("attempt" in entry for entry in memory), memory


def test_every_slurm_request_is_held_to_what_a_job_may_ask_of_its_partition():
    """A request above its partition's MaxTime or largest node stays pending for good (pipeline_steps/batch_limits.py;
    tests/test_cluster_slurm.py reads a live partition): every runtime, mem_mb and cpus_per_task is held."""
    limits = {"FASTSIM_SLURM_MAX_RUNTIME": "1440", "FASTSIM_SLURM_MAX_MEM_MB": "64000", "FASTSIM_SLURM_MAX_CPUS": "4"}
    profile = _profile("slurm", **limits, FASTSIM_SLURM_GPU_PARTITION="gpu")
    held = {"runtime": "1440", "mem_mb": "64000", "cpus_per_task": "4"}
    entries = [entry.split(":", 1)[-1] for entry in profile["default-resources"] + profile["set-resources"]]
    requests = [entry for entry in entries if entry.split("=")[0] in held]
    assert len(requests) == 3 * (1 + len(GPU_RULES)) - 2, requests  # the generations set no cores
    assert all(re.fullmatch(r"(\w+)=min\((.+), (\d+)\)", entry).group(3) == held[entry.split("=")[0]]
               for entry in requests), requests
    assert "train_flow:runtime=min(2880 * attempt, 1440)" in profile["set-resources"]
    assert "train_flow:runtime=2880 * attempt" in _profile("slurm")["set-resources"]  # no limit known: as written


def test_slurm_trainings_without_gpus_ask_for_the_cores_their_threads_use():
    """With a GPU a training asks for 8 cores beside it; on CPU cores (FASTSIM_NO_GPU=1) it asks for its rule's
    threads (training.threads), as every other rule does: asking 8 for a one-thread training had kept 7 idle."""
    trainings = {rule for rule in GPU_RULES if rule.startswith("train_")}
    assert trainings and {f"{rule}:cpus_per_task='8'" for rule in trainings} <= set(_profile("slurm")["set-resources"])
    on_cpus = _profile("slurm", FASTSIM_NO_GPU="1")
    assert not any("cpus_per_task" in entry for entry in on_cpus["set-resources"]), on_cpus["set-resources"]
    assert "cpus_per_task=threads" in on_cpus["default-resources"]


def test_every_htcondor_memory_request_is_held_to_the_pools_largest_slot():
    """A request above every slot idles for good (tests/test_cluster_htcondor.py reads a live pool)."""
    profile = _profile("htcondor", FASTSIM_HTCONDOR_MAX_MEM_MB="60000")
    requests = [entry for entry in profile["default-resources"] + profile["set-resources"] if "request_memory=" in entry]
    assert len(requests) == 1 + len(GPU_RULES) and all(entry.endswith(", 60000)") for entry in requests), requests
    assert "train_flow:request_memory=32000 * attempt" in _profile("htcondor")["set-resources"]  # no pool: as written


def test_htcondor_threads_are_held_to_the_pools_largest_slot():
    """The plugin asks for a job's threads as request_cpus; more than any slot has idles for good, as memory does."""
    assert _profile("htcondor", FASTSIM_HTCONDOR_MAX_CPUS="4")["max-threads"] == "4"
    assert "max-threads" not in _profile("htcondor")  # no pool: the rules' threads as written


def test_profile_resource_rules_exist_in_the_workflow():
    rules = _snakemake("--list-rules").stdout.split()
    for name in PROFILES:
        named = {entry.split(":", 1)[0] for entry in _profile(name).get("set-resources", [])}
        assert named <= set(rules), f"profiles/{name}: set-resources for rules the workflow lacks: {named - set(rules)}"
        threaded = {entry.split("=", 1)[0] for entry in _profile(name).get("set-threads", [])}
        assert threaded <= set(rules), f"profiles/{name}: set-threads for rules the workflow lacks: {threaded - set(rules)}"


def test_local_generation_counts_one_core_and_the_cluster_two():
    """Locally a generation job is not confined to its cores, so it counts one and starts beside another job;
    on a cluster its cgroup is what it gets, so the rule's two (sampling + ROOT writer) stay."""
    generation = {rule for rule in GPU_RULES if rule.startswith("generate_")}
    assert dict(entry.split("=") for entry in _profile("local")["set-threads"]) == {rule: "1" for rule in generation}
    for name in ("slurm", "htcondor"):
        assert not any(entry.split("=")[0] in generation for entry in _profile(name).get("set-threads", []))
    rules = (REPO / "workflow" / "rules" / "generate.smk").read_text()
    assert len(re.findall(r"^    threads: 2\b", rules, re.M)) == len(generation)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", PROFILES)
def test_dry_run_plans_the_whole_workflow(name, config, tmp_path):
    # `--sdm=env-modules` replaces the cluster profiles' conda (none on CI): the plan is otherwise the same.
    result = _snakemake("-n", "--quiet", "rules", "--profile", str(REPO / "profiles" / name), "--configfile",
                        str(REPO / config), "--directory", str(tmp_path), "--sdm=env-modules")
    assert "This was a dry-run" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_command_line_set_resources_replaces_the_profiles_whole_list_as_the_readme_says(tmp_path):
    """The README had said one resource could be changed on the command line; Snakemake replaces the profile's
    list instead, and the README now says so and to copy the profile. If Snakemake starts to merge the two, this
    fails and the README's advice can be simplified."""
    env = dict(_QUIET_ENV, FASTSIM_SLURM_GPU_PARTITION="gpu")
    base = ("-n", "--profile", str(REPO / "profiles" / "slurm"), "--directory", str(tmp_path), "--sdm=env-modules",
            "--slurm-no-account", "results/generate/jets/generated.root")

    def resources(*extra: str) -> dict:
        printed = _snakemake(*base, *extra, env=env).stdout
        return {rule: lines for rule, lines in re.findall(r"rule (\w+):\n(?:.*\n)*?\s+resources: (.*)", printed)}

    alone, overridden = resources(), resources("--set-resources", "train_flow:runtime=4320")
    assert "slurm_partition=gpu" in alone["generate_flow"] and "mem_mb=32000" in alone["train_flow"]
    assert "runtime=4320" in overridden["train_flow"] and "mem_mb=32000" not in overridden["train_flow"]
    assert "slurm_partition=gpu" not in overridden["generate_flow"]
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "a `--set-resources` or `--default-resources` there replaces the profile's whole list" in readme


# No conda channel is reachable here, so no env can be built; what `--sdm conda` needs to *plan* is only
# `conda --version`, `conda info --json` and the channel-priority query. This stand-in answers those three
# and refuses everything else, so a plan that tried to create or activate an env would fail.
PLANNING_ONLY_CONDA = """#!/bin/sh
case "$*" in
  "--version") echo "conda 24.11.3" ;;
  "info --json") printf '{"conda_prefix": "%s", "platform": "linux-64"}\\n' "$(dirname "$(dirname "$0")")" ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "planning-only conda: refused: $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def planning_conda(tmp_path, monkeypatch):
    """PATH with the real conda if there is one, else the planning-only stand-in above."""
    if shutil.which("conda") is None:
        bin_dir = tmp_path / "conda" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "conda").write_text(PLANNING_ONLY_CONDA)
        (bin_dir / "conda").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.slow
def test_conda_dry_run_plans_every_rule_with_its_env(planning_conda, tmp_path):
    """The SLURM profile's `--sdm conda` plans the whole default workflow, and every env of envs/ is used."""
    work = tmp_path / "work"
    common = ["--profile", str(REPO / "profiles" / "slurm"), "--directory", str(work)]
    plan = _snakemake("-n", "--quiet", "rules", *common, env=dict(os.environ))
    assert "This was a dry-run" in plan.stdout + plan.stderr
    listed = _snakemake("--list-conda-envs", *common, env=dict(os.environ)).stdout.splitlines()
    planned = {Path(line.split("\t")[0]).name for line in listed if line.endswith("_") and "envs/" in line}
    assert planned == {path.name for path in (REPO / "envs").glob("*.yaml")}, listed


def test_every_rule_has_an_existing_conda_env():
    """What `--sdm conda` needs, without conda: each rule names one of envs/*.yaml."""
    envs = {f"../../envs/{path.name}" for path in (REPO / "envs").glob("*.yaml")}
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        lines = rule_file.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.strip() == "conda:":
                named = lines[index + 1].strip().strip('"')
                by_kind = re.fullmatch(r'kind_env\("(\w+)"\)', named)  # a model kind's env: MODEL_KINDS
                named = MODEL_KINDS[by_kind.group(1)].env_file if by_kind else named
                assert named in envs, f"{rule_file.name}:{index + 2}: conda env {named} is not in envs/"
    lint = _snakemake("--lint", "json", check=False)
    assert "conda" not in "".join(line for line in lint.stdout.splitlines() if "No conda" in line)


def test_lint_is_clean():
    result = _snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_snakefmt_check_is_clean():
    snakefmt = str(Path(SNAKEMAKE).with_name("snakefmt"))
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    unformatted = [
        str(path.relative_to(REPO)) for path in files
        if subprocess.run([snakefmt, "--check", str(path)], cwd=REPO, capture_output=True).returncode != 0
    ]
    assert not unformatted, f"snakefmt --check fails on {unformatted}: run `snakefmt <file>` (settings: pyproject.toml)"


def _snakemake(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args], cwd=REPO, capture_output=True,
                            text=True, env=env or _QUIET_ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
