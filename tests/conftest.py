"""Shared fixtures: the repository root, the venv's snakemake, a runner for workflow tests, and the
one complete tiny run that the end-to-end and the reproducibility checks both read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"


#: A NanoAOD jets table (config ``datasets.<d>.tables.<t>``) for the generation tests' small layouts.
JETS_TABLE = {
    "collection": {"counter": "nJet", "prefix": "Jet_"},
    "fields": ["pt", "area", "nConstituents"],
    "event_fields": ["PV_npvs"],
    "match": {"index": "genJetIdx", "collection": {"counter": "nGenJet", "prefix": "GenJet_"},
              "fields": ["pt", "eta"], "output_prefix": "gen_"},
}


def run_snakemake(*args: str, workdir: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the checkout's Snakefile with the test profile, in ``workdir`` (outputs land there).

    No PYTHONHASHSEED pin: outputs must not depend on it (test_reproducibility).
    """
    return snakemake_in(workdir or REPO, *args, snakefile=REPO / "Snakefile", check=check, hash_seed=None)


def snakemake_in(workdir: Path, *args: str, snakefile: Path, check: bool = True,
                 hash_seed: str | None = "0") -> subprocess.CompletedProcess:
    """Snakemake on any Snakefile (the checkout, a snapshot or a modified copy) with its ci profile.

    ``hash_seed`` pins PYTHONHASHSEED for the Snakemake process; None leaves the environment's.
    """
    command = [SNAKEMAKE, "--snakefile", str(snakefile), "--profile", str(snakefile.parent / "profiles" / "ci"),
               "--directory", str(workdir), *args]
    environment = dict(os.environ, CONDOR_CONFIG="/dev/null")
    if hash_seed is not None:
        environment["PYTHONHASHSEED"] = hash_seed
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def copy_repository(target: Path, source_root: Path = REPO) -> Path:
    """A runnable copy of the workflow (what a code edit is tried on; the checkout is never edited).

    ``copy2`` keeps modification times: Snakemake reruns a job whose script is newer than its outputs.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "pipeline_steps", "profiles", "envs"):
        source = source_root / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target / name)
    return target / "Snakefile"


def shared_session_dir(tmp_path_factory, name: str, make) -> Path:
    """``make(folder)`` run once for the whole test session, whichever process asks first.

    ``make test`` runs pytest-xdist workers, and a session fixture is per worker: the first worker to
    ask builds the folder in the session's common temporary directory while holding a file lock, and
    the others wait for it and read the same folder. Beside it, ``<name>.done`` marks a folder that was
    built whole and ``<name>.failed`` holds the error of a build that failed, which the other workers
    raise instead of building again (a broken pipeline would otherwise cost every worker a run).
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # .../pytest-N/popen-gwK -> .../pytest-N, common to the session's workers
    folder, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with FileLock(str(root / f"{name}.lock")):
        if failed.exists():
            raise AssertionError(f"{name}, built by another worker, failed:\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                make(folder)
            except Exception as error:
                failed.write_text(str(error))
                raise
            done.touch()
    return folder


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory) -> Path:
    """The Snakefile of a copy of the repository as it was when the first workflow test started, so an
    edit made meanwhile in the checkout cannot look like a code change to later dry runs. One copy
    for the session's workers, as the complete run they share was made from it."""
    return shared_session_dir(tmp_path_factory, "snapshot", copy_repository) / "Snakefile"


@pytest.fixture(scope="session")
def complete_run(tmp_path_factory, snapshot) -> Path:
    """One complete run of the tiny config (PYTHONHASHSEED=0, the ci profile's 2 cores), from the snapshot.

    A tiny run costs 3-4 minutes on 2 cores, a sixth of the suite: test_end_to_end checks its outputs
    and test_reproducibility reruns and dry-runs against it, so one run serves both, and the workers
    of ``make test`` share it (:func:`shared_session_dir`). The terminal output is kept in
    ``terminal.txt``. Tests add files beside the results (a report, a note) but never change an output.
    """
    def run(workdir: Path) -> None:
        result = snakemake_in(workdir, "--configfile", str(TINY_CONFIG), snakefile=snapshot)
        (workdir / "terminal.txt").write_text(result.stdout + result.stderr)

    return shared_session_dir(tmp_path_factory, "complete", run)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_config() -> Path:
    return TINY_CONFIG


def preprocess_outputs(folder: Path) -> dict[str, Path]:
    """Output paths of ``preprocess.model_splits.run`` under ``folder``, one per key it writes."""
    from pipeline_steps.preprocess.model_splits import OUTPUT_KEYS

    names = {"train": "train.parquet", "validation": "validation.parquet", "test": "test.parquet",
             "transforms": "transforms.json", "distributions": "plots/distributions.png",
             "correlations": "plots/correlations.png"}
    assert set(names) == set(OUTPUT_KEYS)
    return {key: folder / name for key, name in names.items()}
