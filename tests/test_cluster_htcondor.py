"""The HTCondor profile on a live personal HTCondor pool (`tests/htcondor_pool.py`, started here, stopped here).

The workflow's jobs run as CERN's lxbatch runs them, each in its own directory on the worker with file transfer.
There, before `profiles/htcondor/job_wrapper.sh`, every job of the profile failed at once: HTCondor copied the
venv's python into that directory, where it had lost its venv ("python: No module named snakemake"). The failing
job runs as in a default pool, in its submit directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.cluster_runs import (assert_each_output_is_its_file_alone, assert_same_outputs, count_jobs, early_targets,
                                gpu_rule_snakefile, readme_block, run_local, write_condition_files)
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
                pool.history("ClusterId", "ShouldTransferFiles", "ExitCode", "Cmd", submitted_from=on_condor)}
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
                                                        "MaxRuntime", submitted_from=tmp_path)}
    asked = [finished[cluster] for cluster in clusters]  # the job is snakemake: it exits 1 for its rule
    assert asked == [["IF_NEEDED", "1", str(4000 * attempt), str(3600 * attempt)] for attempt in (1, 2, 3)], asked
    assert (tmp_path / "where.txt").read_text().strip() == str(tmp_path), "the job must run in its submit directory"
    assert not (tmp_path / "broken.txt").exists()


#: A rule that would run for 3 minutes on its first attempt (held by the test meanwhile) and at once after.
_HELD_SNAKEFILE = """
rule heavy:
    output: "heavy.txt"
    log: "logs/heavy.log"
    resources: attempt_number=lambda wildcards, attempt: attempt
    shell: 'if [ {resources.attempt_number} -lt 2 ]; then sleep 180; fi; echo ok > {output}'
"""


def test_a_held_job_is_retried_with_more_memory_and_left_in_the_queue(pool: HTCondorPool, tmp_path):
    """CERN's pool holds a job that passes its memory or time. The profile fails it at once (`htcondor-held-timeout:
    0`) and Snakemake resubmits it with more memory; plugin 0.3 leaves the held job in the queue, as the README warns
    (released, it would run beside its retry). The README's commands, run from the run's folder, list it and remove
    it, and not a held job of another folder."""
    import threading

    (tmp_path / "Snakefile").write_text(_HELD_SNAKEFILE)
    held = []

    def hold_the_first_job_once_it_runs() -> None:
        """Polls until the job runs and is held; a query or hold that fails under load is tried again (an exception
        here would end the thread unseen, and the test would only time out)."""
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            try:
                running = [cluster for cluster, status in pool.queue("ClusterId", "JobStatus", submitted_from=tmp_path)
                           if status == "2"]
            except AssertionError:
                running = []
            if running and pool.run(["condor_hold", "-reason", "memory usage exceeded request_memory", running[0]],
                                    cwd=tmp_path).returncode == 0:
                held.append(running[0])
                return
            time.sleep(0.5)

    holder = threading.Thread(target=hold_the_first_job_once_it_runs)
    holder.start()
    result = _snakemake(pool, tmp_path, snakefile=tmp_path / "Snakefile", timeout=300)
    holder.join()

    assert held, "the first attempt never ran"
    assert f"HTCondor Cluster ID {held[0]} is held: memory usage exceeded request_memory" in result.stderr, result.stderr
    assert (tmp_path / "heavy.txt").read_text() == "ok\n"
    retried = pool.history("ClusterId", "RequestMemory", "ExitCode", submitted_from=tmp_path)
    assert [row[1:] for row in retried] == [["8000", "0"]] and retried[0][0] != held[0], retried
    assert pool.queue("ClusterId", "JobStatus", submitted_from=tmp_path) == [[held[0], "5"]]

    elsewhere = tmp_path / "another_run"  # another workflow's held job, which the README's commands must leave
    elsewhere.mkdir()
    pool.share(elsewhere, writable=True)
    (elsewhere / "job.sub").write_text("executable = /bin/true\nhold = true\nlog = job.log\nqueue\n")
    assert pool.run(["condor_submit", "job.sub"], cwd=elsewhere).returncode == 0
    listed, removed = readme_block("plugin 0.3 leaves the held job", "Do not `condor_release`",
                                   r"```bash\n(.*?)```").splitlines()
    assert re.search(rf"^ *{held[0]}\.0 ", pool.run(["sh", "-c", listed], cwd=tmp_path).stdout, re.M)
    assert pool.run(["sh", "-c", removed], cwd=tmp_path).returncode == 0
    assert "5" not in [status for _, status in pool.queue("ClusterId", "JobStatus", submitted_from=tmp_path)]
    assert [status for _, status in pool.queue("ClusterId", "JobStatus", submitted_from=elsewhere)] == ["5"]


def test_gpu_rule_runs_on_a_pool_without_gpus_with_fastsim_no_gpu(pool: HTCondorPool, tmp_path):
    """Asking for a GPU, such a job stays idle on this pool (`condor_q -better-analyze`: `TARGET.GPUs >= RequestGPUs`
    matches no slot; HTCondor does not refuse it as sbatch does): the profile says so when it loads. FASTSIM_NO_GPU=1
    asks for none, and it runs."""
    (tmp_path / "Snakefile").write_text(gpu_rule_snakefile("generate_flow", "generated.txt", "echo ok > {output}"))
    planned = _snakemake(pool, tmp_path, "-n", snakefile=tmp_path / "Snakefile", env={})
    assert "the pool lists no slot with a GPU" in planned.stderr and "FASTSIM_NO_GPU=1" in planned.stderr, \
        planned.stderr[-3000:]
    _snakemake(pool, tmp_path, snakefile=tmp_path / "Snakefile", timeout=180)
    assert (tmp_path / "generated.txt").read_text() == "ok\n"
    assert pool.history("RequestGpus", "JobBatchName", submitted_from=tmp_path) == [["0", "generate_flow-0"]]


def test_requests_are_held_to_the_pools_largest_slot(pool: HTCondorPool, tmp_path):
    """A job asking for more memory or cores than any slot has is never matched and idles for good (`TARGET.Memory
    >= RequestMemory`, `TARGET.Cpus >= RequestCpus` match no slot; checked by hand on this pool), the head waiting on
    it: lxbatch's machines have less than the trainings' 64 and 96 GB retries, and a site training on CPUs may set
    more `training.threads` than a slot's cores. The profile reads the pool's largest slot (24000 MB and 2 cores
    here: tests/htcondor_pool.py) when it loads and holds the request to it; the job runs."""
    # train_flow: the profile's largest request (32000 MB on a first attempt), with 8 threads (request_cpus)
    snakefile = gpu_rule_snakefile("train_flow", "trained.txt", "echo {threads} > {output}", threads=8)
    (tmp_path / "Snakefile").write_text(snakefile)
    slots = pool.run(["condor_status", "-af", "TotalSlotMemory", "TotalSlotCpus"], cwd=REPO)
    memory, cores = (max(int(line.split()[column]) for line in slots.stdout.splitlines()) for column in (0, 1))
    assert memory < 32000 and cores < 8, f"the pool's slot ({memory} MB, {cores} cores) must be smaller than the job"
    result = _snakemake(pool, tmp_path, snakefile=tmp_path / "Snakefile", timeout=180)
    assert (tmp_path / "trained.txt").read_text() == f"{cores}\n"  # the threads the step is told it has
    asked = pool.history("RequestMemory", "RequestCpus", "JobBatchName", submitted_from=tmp_path)
    assert asked == [[str(memory), str(cores), "train_flow-0"]], asked
    assert (f"profiles/htcondor: the pool's largest slot has {memory} MB and {cores} cores; a job asks for at most "
            f"{memory} MB and {cores} cores" in result.stderr), result.stderr[-3000:]


def test_readme_htcondor_submit_of_file_lists_runs_each_list_as_one_job(pool: HTCondorPool, tmp_path):
    """The README's HTCondor submit file for the bundle runner ("Using a bundle elsewhere", Many files), as written
    there but for DIR and the python, from a folder the pool sandboxes as lxbatch does: each job runs its list, and
    each output is the one its file gets alone. Without `transfer_executable = false` every job fails."""
    from tests.test_export_bundle import export_flow

    block = readme_block("- **Many files**", "- **Noise**", r"```\n( *# fastsim\.sub.*?)```")
    folder = tmp_path / SANDBOXED / "run"
    folder.mkdir(parents=True)
    bundle = export_flow(folder)
    submit = (re.sub(r"^DIR *= .*$", f"DIR = {folder}", block, flags=re.M)
              .replace("$(DIR)/fastsim-env/bin/python", sys.executable)
              .replace("$(DIR)/jets/run_bundle.py $(DIR)/jets", f"{bundle}/run_bundle.py {bundle}"))
    assert f"DIR = {folder}\n" in submit and sys.executable in submit and f"{bundle}/run_bundle.py" in submit
    inputs = write_condition_files(folder)
    (folder / "fastsim.sub").write_text(submit)
    copied_executable = submit.replace("transfer_executable = false\n", "")
    assert "transfer_executable" not in copied_executable
    (folder / "copied.sub").write_text(copied_executable)
    pool.share(folder, writable=True)

    copied = _submit_and_wait(pool, folder, "copied.sub")
    assert copied == ["1", "1", "1"], copied  # 5 files in lists of 2: three jobs, each failing
    error = (folder / "logs" / "part_000.err").read_text()
    assert "ModuleNotFoundError: No module named" in error, error  # which one: what the base Python lacks
    assert not any((folder / "fast").iterdir())
    assert _submit_and_wait(pool, folder, "fastsim.sub") == ["0", "0", "0"], pool.daemon_logs()
    assert sorted(path.name for path in (folder / "fast").iterdir()) == [path.name for path in inputs]
    assert_each_output_is_its_file_alone(bundle, inputs, folder / "fast", tmp_path)


def _submit_and_wait(pool: HTCondorPool, folder, submit_file: str) -> list[str]:
    """Split the list as the README says, submit ``submit_file`` and wait for its jobs: their exit codes."""
    prepared = pool.run(["sh", "-ec", "rm -rf part_* logs; split -l 2 -d -a 3 gen_files.txt part_; mkdir -p fast logs"],
                        cwd=folder)
    assert prepared.returncode == 0, prepared.stderr
    submitted = pool.run(["condor_submit", submit_file], cwd=folder)
    cluster = re.search(r"submitted to cluster (\d+)", submitted.stdout)
    assert cluster, submitted.stdout + submitted.stderr
    waited = pool.run(["condor_wait", "-wait", "300", "logs/fastsim.log", cluster[1]], cwd=folder, timeout=330)
    assert waited.returncode == 0, waited.stdout + waited.stderr + pool.daemon_logs()
    rows = pool.history("ClusterId", "ExitCode", submitted_from=folder)
    return [code for job_cluster, code in rows if job_cluster == cluster[1]]


def _snakemake(pool: HTCondorPool, workdir, *args: str, snakefile=REPO / "Snakefile", check: bool = True,
               timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """snakemake with the HTCondor profile and FASTSIM_NO_GPU=1 (the pool has no GPU; ``env`` replaces it), run in
    the pool's chroot as its user (a submit node's view)."""
    workdir.mkdir(parents=True, exist_ok=True)
    pool.share(workdir, writable=True)
    command = [SNAKEMAKE, "--snakefile", str(snakefile), "--directory", str(workdir), "--configfile", str(TINY_CONFIG),
               "--profile", str(REPO / "profiles" / "htcondor"), "--sdm=env-modules", "--latency-wait", "5",
               "--seconds-between-status-checks", "2", *args]  # the test pool only: 10 s by default
    result = pool.run(command, cwd=workdir, env={"FASTSIM_NO_GPU": "1"} if env is None else env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}\n{pool.daemon_logs()}")
    return result
