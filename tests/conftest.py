"""Shared fixtures: the repository root, the venv's snakemake, a runner for workflow tests, and the
two tiny pipeline runs the end-to-end and the reproducibility checks read, started when the session starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

import pipeline_steps  # noqa: F401  (before any test module imports TensorFlow: common/triton_before_tensorflow.py)

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
    command, environment = snakemake_command(workdir, *args, snakefile=snakefile, hash_seed=hash_seed)
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def snakemake_command(workdir: Path, *args: str, snakefile: Path,
                      hash_seed: str | None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of :func:`snakemake_in` (also what the background runs start)."""
    command = [SNAKEMAKE, "--snakefile", str(snakefile), "--profile", str(snakefile.parent / "profiles" / "ci"),
               "--directory", str(workdir), *args]
    environment = dict(os.environ, CONDOR_CONFIG="/dev/null")
    if hash_seed is not None:
        environment["PYTHONHASHSEED"] = hash_seed
    return command, environment


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
    root = session_root(tmp_path_factory)
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
    """The Snakefile of a copy of the repository as it was when the session started (or, with no tiny run
    to start, when the first workflow test asked), so an edit made meanwhile in the checkout cannot look like
    a code change to later dry runs. One copy for the session's workers, as the tiny runs were made from it."""
    return shared_session_dir(tmp_path_factory, "snapshot", copy_repository) / "Snakefile"


#: The tiny pipeline runs the suite shares, by fixture name: the folder under the session's common temporary
#: directory, the arguments after the ci profile, and PYTHONHASHSEED. ``complete_run`` (2 cores, hash seed 0)
#: is what test_end_to_end checks and test_reproducibility reruns and dry-runs against; ``fresh_run`` starts
#: from nothing on 1 core with another hash seed and must give the same bytes (test_reproducibility).
PIPELINE_RUNS = {
    "complete_run": ("complete", ("--configfile", str(TINY_CONFIG)), "0"),
    "fresh_run": ("fresh", ("--configfile", str(TINY_CONFIG), "--cores", "1"), "2718"),
}
#: The folder of the complete run where each job records its rule and the modules it loaded.
IMPORT_TRACE = "import_trace"
#: How often a test waiting for a background run looks for its exit status (seconds).
RUN_POLL_SECONDS = 2.0


def session_root(tmp_path_factory) -> Path:
    """The temporary directory common to the session's pytest-xdist workers (or the only process's)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # .../pytest-N/popen-gwK -> .../pytest-N


class BackgroundRun:
    """A snakemake run started by this process, and the thread that records its exit status when it ends."""

    def __init__(self, process: subprocess.Popen, thread: threading.Thread) -> None:
        self.process, self.thread = process, thread

    def finish(self, stop: bool) -> None:
        """Wait for the run to end; ``stop``: ask it to end first (snakemake stops its jobs on SIGTERM)."""
        if stop:
            self.process.terminate()
        self.thread.join()


def start_background_run(root: Path, name: str, args: tuple[str, ...], hash_seed: str,
                         snakefile: Path) -> BackgroundRun | None:
    """Start the run ``name`` in ``root/name`` unless a worker of this session already did (then None).

    Its terminal output goes to ``terminal.txt`` in its folder and its exit status, when it ends, to
    ``root/<name>.rc``, which :func:`wait_for_run` reads from any worker.
    """
    folder, started = root / name, root / f"{name}.started"
    with FileLock(str(root / f"{name}.lock")):
        if started.exists():
            return None
        folder.mkdir()
        command, environment = snakemake_command(folder, *args, snakefile=snakefile, hash_seed=hash_seed)
        if name == PIPELINE_RUNS["complete_run"][0]:  # its jobs record what they import (tests/import_trace)
            (folder / IMPORT_TRACE).mkdir()
            environment["FASTSIM_IMPORT_TRACE"] = str(folder / IMPORT_TRACE)
            environment["PYTHONPATH"] = os.pathsep.join(
                entry for entry in (str(REPO / "tests" / "import_trace"), environment.get("PYTHONPATH")) if entry)
        terminal = (folder / "terminal.txt").open("w")
        process = subprocess.Popen(command, cwd=folder, stdout=terminal, stderr=subprocess.STDOUT, text=True,
                                   env=environment)
        started.touch()

    def record_status() -> None:
        status = process.wait()
        terminal.close()
        (root / f"{name}.rc.part").write_text(str(status))
        (root / f"{name}.rc.part").rename(root / f"{name}.rc")

    thread = threading.Thread(target=record_status, name=f"wait-{name}", daemon=True)
    thread.start()
    return BackgroundRun(process, thread)


def wait_for_run(root: Path, name: str) -> Path:
    """The folder of the background run ``name`` once it has ended; a failed run fails the test with its tail."""
    status_file = root / f"{name}.rc"
    while not status_file.exists():
        time.sleep(RUN_POLL_SECONDS)
    folder, status = root / name, status_file.read_text()
    if status != "0":
        tail = (folder / "terminal.txt").read_text()[-6000:]
        raise AssertionError(f"the {name} tiny run (snakemake) failed with status {status}:\n{tail}")
    return folder


@pytest.fixture(scope="session", autouse=True)
def pipeline_runs_started(request, tmp_path_factory):
    """Start every tiny run a collected test needs when the session starts, each once for all workers.

    Why: the two runs are most of the suite's time (minutes each); built when their first test asked,
    one worker built while the other, reaching a test that reads the same run, waited on it with a core
    idle. Started at once in the background, they run beside the unit tests, which the two workers take
    first (:func:`pytest_collection_modifyitems` puts the runs' readers last). At the end of the session
    this process waits for the runs it started, so none is left running; a session stopped early
    (``-x``, ``--maxfail``) stops them instead of waiting minutes for runs no test will read.
    """
    wanted = [name for name in PIPELINE_RUNS if any(name in item.fixturenames for item in request.session.items)]
    started = [start_pipeline_run(request, tmp_path_factory, fixture) for fixture in wanted]
    yield
    stopped_early = bool(request.session.shouldfail or request.session.shouldstop)
    for run in started:
        if run is not None:
            run.finish(stop=stopped_early)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that read a background tiny run go last, in collection order otherwise (the same on every worker).

    pytest-xdist hands each worker consecutive tests from the front of this list, so the unit tests keep
    both workers busy while the runs (:func:`pipeline_runs_started`) are made.
    """
    items.sort(key=lambda item: any(name in item.fixturenames for name in PIPELINE_RUNS))


def start_pipeline_run(request, tmp_path_factory, fixture: str) -> BackgroundRun | None:
    """Start the run ``fixture`` names in :data:`PIPELINE_RUNS` from the snapshot, unless already started."""
    folder, args, hash_seed = PIPELINE_RUNS[fixture]
    return start_background_run(session_root(tmp_path_factory), folder, args, hash_seed,
                                request.getfixturevalue("snapshot"))


def pipeline_run(request, tmp_path_factory, fixture: str) -> Path:
    """The finished folder of the run ``fixture`` names in :data:`PIPELINE_RUNS`.

    Started when the session started (:func:`pipeline_runs_started`), or here when the test asked for it
    in a way collection cannot see (``request.getfixturevalue``).
    """
    start_pipeline_run(request, tmp_path_factory, fixture)
    return wait_for_run(session_root(tmp_path_factory), PIPELINE_RUNS[fixture][0])


@pytest.fixture(scope="session")
def complete_run(request, tmp_path_factory) -> Path:
    """One complete run of the tiny config (PYTHONHASHSEED=0, the ci profile's 2 cores), from the snapshot.

    The workers of ``make test`` share it. The terminal output is kept in ``terminal.txt``. Tests add
    files beside the results (a report, a note) but never change an output.
    """
    return pipeline_run(request, tmp_path_factory, "complete_run")


@pytest.fixture(scope="session")
def fresh_run(request, tmp_path_factory) -> Path:
    """A second complete tiny run from an empty folder: 1 core and PYTHONHASHSEED=2718 (``complete_run``: 2, 0)."""
    return pipeline_run(request, tmp_path_factory, "fresh_run")


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
