"""Snakemake plans toy jobs only for datasets without `files` (dry runs, nothing executed)."""

import subprocess
import sys
from pathlib import Path

import pytest

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


def _planned_toy_outputs(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    return [lines[i + 1].split("output:")[1].strip() for i, line in enumerate(lines[:-1])
            if line.strip() == "rule toy_dataset:" and "output:" in lines[i + 1]]


def test_toy_dataset_is_planned_for_a_dataset_without_files(tmp_path):
    result = _dry_run(tmp_path, "data/raw/nanoaod/1.root")
    assert result.returncode == 0, result.stderr
    assert _planned_toy_outputs(result.stdout) == ["data/raw/nanoaod/1.root"]


def test_dataset_with_files_never_gets_toy_jobs(tmp_path):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "run_a.root").write_bytes(b"")
    override = f"datasets:\n  ship:\n    files: [\"{tmp_path}/user/*.root\"]\n"
    everything = _dry_run(tmp_path, override=override)
    report = everything.stdout + everything.stderr
    # Until every stage's rules exist the full plan may stop elsewhere; never in toy_dataset.
    assert "rule toy_dataset" not in report.split("Building DAG of jobs...")[-1].split("Job stats")[0]
    assert not [p for p in _planned_toy_outputs(everything.stdout) if p.startswith("data/raw/ship/")]
    explicit = _dry_run(tmp_path, "data/raw/ship/0.root", override=override)
    assert explicit.returncode != 0
    assert "datasets.ship has `files`" in explicit.stderr + explicit.stdout


def test_index_beyond_n_files_is_refused(tmp_path):
    result = _dry_run(tmp_path, "data/raw/lhcb_tracks/17.root")
    assert result.returncode != 0
    assert "toy.n_files" in result.stderr + result.stdout
