"""What the live cluster tests (SLURM, HTCondor) share: the tiny workflow's early targets, a local run of
them to compare with and the comparison, and for the README's bundle-runner batch examples their block, their
input files and the check that each output is its file's run alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
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


def gpu_rule_snakefile(rule: str, output: str, shell: str, threads: int = 1) -> str:
    """A Snakefile of one rule of ``threads`` that asks for a GPU, named as a rule of the workflow so that a profile's
    ``set-resources`` for it apply, writing ``output`` with ``shell`` (a Snakefile's shell string: ``{output}``,
    ``${{VAR}}``): it says what the batch system gave the job."""
    return f"""
rule {rule}:
    output: "{output}"
    log: "logs/{rule}.log"
    threads: {threads}
    resources: gpu=1
    shell: {shell!r}
"""


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


def readme_block(start: str, end: str, pattern: str) -> str:
    """The one fenced block matching ``pattern`` between the README's ``start`` and ``end`` markers, dedented."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(start):readme.index(end)]
    (block,) = re.findall(pattern, section, re.S)
    return textwrap.dedent(block)


def write_condition_files(folder: Path, count: int = 5, rows_each: int = 10) -> list[Path]:
    """``count`` ROOT files of a flow bundle's conditions (``tests/test_export_bundle.py``) in ``folder/gen``,
    named as CMS names files, and ``folder/gen_files.txt`` listing them: a bundle runner's list of inputs."""
    import uproot

    from tests.test_export_bundle import FLOW_CONDITIONS, physical_rows

    rows = physical_rows(count * rows_each, seed=9)[FLOW_CONDITIONS]
    (folder / "gen").mkdir(parents=True)
    paths = [folder / "gen" / f"{index:04d}-GUID.root" for index in range(count)]
    for index, path in enumerate(paths):
        with uproot.recreate(path) as sink:
            sink.mktree("Events", {column: rows[column].dtype for column in FLOW_CONDITIONS})
            sink["Events"].extend({column: rows[column].to_numpy()[rows_each * index:rows_each * (index + 1)]
                                   for column in FLOW_CONDITIONS})
    (folder / "gen_files.txt").write_text("".join(f"{path}\n" for path in paths))
    return paths


def assert_each_output_is_its_file_alone(bundle: Path, inputs: list[Path], outputs: Path, scratch: Path) -> None:
    """Every input's output in ``outputs`` holds the values the bundle gives that file run alone (into ``scratch``)."""
    import numpy as np
    import uproot

    for path in inputs:
        alone = scratch / f"alone_{path.name}"
        subprocess.run([sys.executable, str(bundle / "run_bundle.py"), str(bundle), str(path), str(alone)],
                       check=True, capture_output=True)
        with uproot.open(outputs / path.name) as batch, uproot.open(alone) as single:
            first, second = batch["Events"].arrays(library="np"), single["Events"].arrays(library="np")
        assert all(np.array_equal(first[column], second[column]) for column in first), path.name
