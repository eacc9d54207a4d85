"""Snakemake plans toy jobs only for datasets without `files` (dry runs, nothing executed)."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def _dry_run(workdir: Path, *targets: str, override: str | None = None) -> subprocess.CompletedProcess:
    configs = [str(REPO / "config" / "config.yaml")]
    if override is not None:
        (workdir / "override.yaml").write_text(override)
        configs.append(str(workdir / "override.yaml"))
    command = [str(SNAKEMAKE), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--cores", "1", "--configfile", *configs, "--", *targets]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _planned_toy_jobs(stdout: str) -> dict[str, list[str]]:
    """{rule: outputs} of the toy jobs of a dry run (``rule toy_<dataset>:`` then ``output: a, b``)."""
    lines = stdout.splitlines()
    return {line.strip()[len("rule "):-1]: lines[i + 1].split("output:")[1].strip().split(", ")
            for i, line in enumerate(lines[:-1])
            if line.strip().startswith("rule toy_") and "output:" in lines[i + 1]}


def test_one_toy_job_writes_every_file_of_a_dataset_without_files(tmp_path):
    result = _dry_run(tmp_path, "data/raw/nanoaod/1.root")
    assert result.returncode == 0, result.stderr
    n_files = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]["nanoaod"]["toy"]["n_files"]
    assert _planned_toy_jobs(result.stdout) == {"toy_nanoaod": [f"data/raw/nanoaod/{i}.root" for i in range(n_files)]}


def test_a_toy_dataset_past_two_hundred_files_gets_a_toy_rule_per_run_of_its_ingest_parts(tmp_path):
    """Planning cost grows with the outputs of the one job that makes a file (workflow_plan.TOY_FILES_PER_JOB)."""
    override = "datasets:\n  nanoaod:\n    toy: {layout: nanoaod, n_files: 250, entries_per_file: 10}\n"
    result = _dry_run(tmp_path, "results/ingest/nanoaod/summary.json", override=override)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _planned_toy_jobs(result.stdout)
    assert sorted(jobs) == ["toy_nanoaod", "toy_nanoaod_1"]
    assert sorted(sum(jobs.values(), []), key=lambda path: int(Path(path).stem)) == [
        f"data/raw/nanoaod/{index}.root" for index in range(250)]


def test_the_blacklisted_toy_file_is_written_but_never_ingested(tmp_path):
    """The toy rogue file exists, as a bad real file would; the blacklist keeps it out of ingestion."""
    result = _dry_run(tmp_path, "results/ingest/ship/summary.json")
    assert result.returncode == 0, result.stderr
    assert "data/raw/ship/3.root" in _planned_toy_jobs(result.stdout)["toy_ship"]
    ingest_inputs = [line for line in result.stdout.splitlines() if line.strip().startswith("input: data/raw/ship/")]
    assert ingest_inputs and not any("3.root" in line for line in ingest_inputs)


def test_dataset_with_files_never_gets_toy_jobs(tmp_path):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "run_a.root").write_bytes(b"")
    override = f"datasets:\n  ship:\n    files: [\"{tmp_path}/user/*.root\"]\n"
    everything = _dry_run(tmp_path, override=override)
    assert everything.returncode == 0, everything.stderr[-3000:]
    toy_jobs = _planned_toy_jobs(everything.stdout)
    assert "toy_ship" not in toy_jobs and "toy_nanoaod" in toy_jobs
    explicit = _dry_run(tmp_path, "data/raw/ship/0.root", override=override)
    assert explicit.returncode != 0 and "data/raw/ship/0.root" in explicit.stderr + explicit.stdout


def test_index_beyond_n_files_is_refused(tmp_path):
    result = _dry_run(tmp_path, "data/raw/lhcb_tracks/17.root")
    assert result.returncode != 0
    assert "data/raw/lhcb_tracks/17.root" in result.stderr + result.stdout
