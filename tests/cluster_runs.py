"""What the live cluster tests (SLURM, HTCondor) share: the tiny workflow's early targets, a local run of
them to compare with, and the comparison itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO, SNAKEMAKE, TINY_CONFIG

DATASET = "lhcb_tracks"


def early_targets(dataset: str = DATASET) -> list[str]:
    """The earliest stages' outputs of one dataset: toy files, plus ingest's when that stage exists."""
    rules = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--list-rules"],
                           capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    targets = [f"data/raw/{dataset}/{index}.root" for index in range(2)]
    if any(rule.startswith("ingest") for rule in rules):
        targets.append(f"results/ingest/{dataset}/summary.json")
    return targets


def run_local(workdir: Path, targets: list[str]) -> None:
    """``targets`` of the tiny config, run on this machine in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(TINY_CONFIG), "--cores", "2", *targets]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-4000:]


def count_jobs(local_workdir: Path) -> int:
    """Jobs the local run ran: one log file per job under logs/ (the cluster run must match it)."""
    return sum(1 for log in (local_workdir / "logs").rglob("*.log"))


def assert_same_outputs(remote: Path, local: Path) -> None:
    """Every data and result file of the local run exists in the remote run's folder, byte for byte."""
    produced = sorted(p.relative_to(local) for folder in ("data", "results") for p in (local / folder).rglob("*")
                      if p.is_file())
    assert produced, "the local run produced nothing to compare"
    for relative in produced:
        assert (remote / relative).read_bytes() == (local / relative).read_bytes(), f"{relative} differs"
