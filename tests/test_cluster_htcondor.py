"""The HTCondor profile on a live personal HTCondor pool (`tests/htcondor_pool.py`, started here, stopped here).

The workflow's jobs run as CERN's lxbatch runs them, each in its own directory on the worker with file transfer.
There, before `profiles/htcondor/job_wrapper.sh`, every job of the profile failed at once: HTCondor copied the
venv's python into that directory, where it had lost its venv ("python: No module named snakemake"). The failing
job runs as in a default pool, in its submit directory.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.cluster_runs import assert_same_outputs, count_jobs, early_targets, run_local
from tests.conftest import REPO, SNAKEMAKE, TINY_CONFIG
from tests.htcondor_pool import SANDBOXED, HTCondorPool, start_pool, unavailable_reason

pytestmark = [pytest.mark.htcondor, pytest.mark.slow]

SUBMITTED = re.compile(r"submitted to HTCondor Cluster ID (\d+)")

#: One rule that always fails: its retries show what the profile asks for on each attempt.
_FAILING_SNAKEFILE = """
rule broken:
    output: "broken.txt"
    log: "logs/broken.log"
    shell: 'pwd > where.txt; exit 3'
"""


@pytest.fixture(scope="module")
def pool():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    running = start_pool(REPO)
    yield running
    running.stop()
    assert not running.mounts


def test_tiny_workflow_through_htcondor_sandboxes_matches_local_run(pool: HTCondorPool, tmp_path):
    targets = early_targets()
    on_condor, local = tmp_path / SANDBOXED / "condor", tmp_path / "local"
    result = _snakemake(pool, on_condor, *targets)
    run_local(local, targets)

    clusters = SUBMITTED.findall(result.stdout + result.stderr)
    assert len(clusters) == count_jobs(local), f"one submission per job expected:\n{result.stderr[-3000:]}"
    finished = {cluster: (transfer, code, command) for cluster, transfer, code, command in
                pool.history("ClusterId", "ShouldTransferFiles", "ExitCode", "Cmd", cwd=on_condor)}
    for cluster in clusters:
        assert finished[cluster][:2] == ("YES", "0"), (cluster, finished, pool.daemon_logs())
        assert finished[cluster][2] == str(REPO / "profiles" / "htcondor" / "job_wrapper.sh")
    assert_same_outputs(on_condor, local)
    job_logs = sorted(path.relative_to(on_condor) for path in (on_condor / "logs" / "htcondor").rglob("*.err"))
    assert job_logs and all(re.fullmatch(r"logs/htcondor/\w+/\w+-\d+_\d+\.err", str(log)) for log in job_logs), job_logs


def test_failing_job_is_retried_with_more_memory_and_time_and_reported(pool: HTCondorPool, tmp_path):
    (tmp_path / "Snakefile").write_text(_FAILING_SNAKEFILE)
    result = _snakemake(pool, tmp_path, "broken.txt", snakefile=tmp_path / "Snakefile", check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Error in rule broken" in output, output[-3000:]
    clusters = SUBMITTED.findall(output)
    assert len(clusters) == 3, f"the profile's two retries expected:\n{output[-3000:]}"
    finished = {row[0]: row[1:] for row in pool.history("ClusterId", "ShouldTransferFiles", "ExitCode", "RequestMemory",
                                                        "MaxRuntime", cwd=tmp_path)}
    asked = [finished[cluster] for cluster in clusters]  # the job is snakemake: it exits 1 for its rule
    assert asked == [["IF_NEEDED", "1", str(4000 * attempt), str(3600 * attempt)] for attempt in (1, 2, 3)], asked
    assert (tmp_path / "where.txt").read_text().strip() == str(tmp_path), "the job must run in its submit directory"
    assert not (tmp_path / "broken.txt").exists()


def _snakemake(pool: HTCondorPool, workdir, *args: str, snakefile=REPO / "Snakefile",
               check: bool = True) -> subprocess.CompletedProcess:
    """snakemake with the HTCondor profile, run in the pool's chroot as its user (a submit node's view)."""
    workdir.mkdir(parents=True, exist_ok=True)
    pool.share(workdir, writable=True)
    command = [SNAKEMAKE, "--snakefile", str(snakefile), "--directory", str(workdir), "--configfile", str(TINY_CONFIG),
               "--profile", str(REPO / "profiles" / "htcondor"), "--sdm=env-modules", "--latency-wait", "5", *args]
    result = pool.run(command, cwd=workdir, env={"FASTSIM_NO_GPU": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}\n{pool.daemon_logs()}")
    return result
