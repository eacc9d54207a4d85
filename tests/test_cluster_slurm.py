"""The SLURM profile on a live one-node SLURM (started here, stopped here): jobs really go through
sbatch, produce the same bytes as a local run, failures are reported and retries resubmit.

Needs root (or slurm-wlm and munge already installed); `tests/slurm_cluster.py` starts the daemons.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SNAKEMAKE, TINY_CONFIG
from tests.cluster_runs import (assert_each_output_is_its_file_alone, assert_same_outputs, count_jobs, early_targets,
                                gpu_rule_snakefile, readme_block, run_local, write_condition_files)
from tests.slurm_cluster import ACCOUNT, SlurmCluster, start_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")

# Runs on the test cluster only: status checks start after 2 s instead of 40 s; no conda here.
_FAST_SLURM = ["--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--sdm=env-modules"]

# A workflow whose jobs report what SLURM gave them; `flaky` fails on its first attempt. It exposes
# the package to its jobs exactly as workflow/rules/common.smk does.
_PROBE_SNAKEFILE = """
from pipeline_steps.workflow_config import expose_package_to_jobs

expose_package_to_jobs("{repo}")

rule all:
    input: "probe.txt", "flaky.txt"

rule probe:
    output: "probe.txt"
    log: "logs/probe.log"
    shell: 'echo "$SLURM_JOB_ID ${{PYTHONPATH:-}}" > {output}'

rule flaky:
    output: "flaky.txt"
    log: "logs/flaky.log"
    resources: attempt_number=lambda wildcards, attempt: attempt
    shell: 'echo "$SLURM_JOB_ID" >> attempts.txt; test {resources.attempt_number} -ge 2; echo ok > {output}'

rule broken:
    output: "broken.txt"
    log: "logs/broken.log"
    shell: 'echo "$SLURM_JOB_ID" > broken_job_id.txt; exit 3'
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0 and not shutil.which("slurmctld"):
        pytest.skip("starting a SLURM cluster needs root or slurm-wlm installed")
    running = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield running
    pids = [process.pid for process in running.processes.values()]
    running.stop()
    assert not any(_alive(pid) for pid in pids), "a SLURM/munge daemon outlived stop()"


def test_tiny_workflow_through_sbatch_matches_local_run(cluster: SlurmCluster, tmp_path):
    targets = early_targets()
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    result = _snakemake(cluster, on_slurm, "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, *targets)
    run_local(local, targets)

    job_ids = SUBMITTED.findall(result.stdout + result.stderr)
    assert len(job_ids) == count_jobs(local), f"one sbatch per job expected:\n{result.stderr[-3000:]}"
    remembered = cluster.squeue_all()
    for job_id in job_ids:
        assert re.search(rf"^{job_id}\|[^|]*\|COMPLETED\|rule_", remembered, re.M), remembered
    assert_same_outputs(on_slurm, local)


def test_job_sees_its_allocation_and_a_retry_is_resubmitted(cluster: SlurmCluster, tmp_path):
    (tmp_path / "Snakefile").write_text(_PROBE_SNAKEFILE.replace("{repo}", str(REPO)))
    result = _snakemake(cluster, tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, "--retries", "1",
                        snakefile=tmp_path / "Snakefile")

    job_id, pythonpath = (tmp_path / "probe.txt").read_text().split(maxsplit=1)
    assert job_id in SUBMITTED.findall(result.stdout + result.stderr)
    assert re.search(rf"^{job_id}\|[^|]*\|COMPLETED\|rule_probe\|{cluster.partition}$", cluster.squeue_all(), re.M)
    assert str(REPO) in pythonpath.split(os.pathsep), "the head's PYTHONPATH (the package) must reach the job"
    attempts = (tmp_path / "attempts.txt").read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1], f"two sbatch submissions expected, got {attempts}"
    assert (tmp_path / "flaky.txt").read_text().strip() == "ok"


def test_failing_job_is_reported_failed(cluster: SlurmCluster, tmp_path):
    (tmp_path / "Snakefile").write_text(_PROBE_SNAKEFILE.replace("{repo}", str(REPO)))
    result = _snakemake(cluster, tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, "--retries", "0",
                        "broken.txt", snakefile=tmp_path / "Snakefile", check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    job_id = (tmp_path / "broken_job_id.txt").read_text().strip()
    assert "Error in rule broken" in output
    assert re.search(rf"SLURM-job '{job_id}' failed", output), output[-3000:]
    assert re.search(rf"^{job_id}\|[^|]*\|FAILED\|", cluster.squeue_all(), re.M)
    assert not (tmp_path / "broken.txt").exists()


def test_gpu_jobs_run_on_cpu_cores_of_a_cluster_without_gpus_with_fastsim_no_gpu(cluster: SlurmCluster, tmp_path):
    """The test cluster, like many a university's, has no GPU: sbatch refuses `--gpus=1` ("Invalid generic
    resource"), so every training and generation job had failed to submit. FASTSIM_NO_GPU=1 makes the profile ask
    for `gpu: 0`; the job runs on its CPU cores. With a GPU model named, sbatch's refusal would not say why ("Requested
    node configuration is not available"): planning stops on what sinfo lists instead."""
    (tmp_path / "Snakefile").write_text(gpu_rule_snakefile(
        "generate_flow", "generated.txt", 'echo "$SLURM_JOB_ID ${{CUDA_VISIBLE_DEVICES:-no GPU}}" > {output}'))
    arguments = ("--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, "--retries", "0")
    refused = _snakemake(cluster, tmp_path, *arguments, snakefile=tmp_path / "Snakefile", check=False)
    assert refused.returncode != 0 and "Invalid generic resource" in refused.stdout + refused.stderr, refused.stderr
    named = _snakemake(cluster, tmp_path, "-n", *arguments, snakefile=tmp_path / "Snakefile", check=False,
                       env={"FASTSIM_GPU_MODEL": "a100"})
    assert named.returncode != 0 and f"but no node of partition {cluster.partition} has a GPU of that model (sinfo's " \
        "GRES of its nodes: no GPU)" in named.stderr and "FASTSIM_NO_GPU=1" in named.stderr, named.stderr[-3000:]
    on_cpu = _snakemake(cluster, tmp_path, *arguments, snakefile=tmp_path / "Snakefile",
                        env={"FASTSIM_NO_GPU": "1"})
    job_id, devices = (tmp_path / "generated.txt").read_text().strip().split(maxsplit=1)
    assert job_id in SUBMITTED.findall(on_cpu.stdout + on_cpu.stderr) and devices == "no GPU"


def test_requests_are_held_to_what_the_partition_allows_a_job(cluster: SlurmCluster, tmp_path):
    """Above its partition's MaxTime a job stays pending for good under SLURM's default EnforcePartLimits=NO
    (reason PartitionTimeLimit), and Snakemake waits on it: train_flow's 48 h did on this cluster's partition
    made 90 minutes long, and its 8 cores on these 2-core nodes (PartitionConfig). Memory above every node's is
    refused by sbatch. The profile reads the limits when it loads and holds the requests to them; the job runs."""
    # train_flow: the profile's longest and largest request (2880 min and 32000 MB on a first attempt), on CPU cores
    # with training.threads 8 (a GPU job asks for 8 cores as well)
    (tmp_path / "Snakefile").write_text(gpu_rule_snakefile(
        "train_flow", "job.txt", 'scontrol show job "$SLURM_JOB_ID" --oneliner > {output}', threads=8))
    node = _node(cluster)
    node_cpus, node_mb = int(node["CPUTot"]), int(node["RealMemory"])
    # memory per core: SLURM gives a job the cores its memory needs at this rate, and sbatch refuses one needing more
    # cores than the node has ("CPU count per node can not be satisfied"), as 32000 MB would here
    per_core = min(32000, node_mb) // (2 * node_cpus)
    cluster.scontrol("update", f"PartitionName={cluster.partition}", "MaxTime=90", f"MaxMemPerCPU={per_core}")
    try:
        result = _snakemake(cluster, tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM,
                            "--retries", "0", snakefile=tmp_path / "Snakefile", env={"FASTSIM_NO_GPU": "1"})
    finally:
        cluster.scontrol("update", f"PartitionName={cluster.partition}", "MaxTime=INFINITE", "MaxMemPerCPU=0")
    job = dict(re.findall(r"(\w+)=(\S*)", (tmp_path / "job.txt").read_text()))
    assert job["TimeLimit"] == "01:30:00" and job["MinMemoryNode"] == f"{per_core * node_cpus}M", job
    assert job["MinCPUsNode"] == str(min(8, node_cpus)), job
    assert (f"profiles/slurm: partition {cluster.partition}: a job may ask for at most 90 min, {per_core * node_cpus} "
            f"MB and {node_cpus} cores; larger requests are held to them") in result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="module")
def accounting_cluster(tmp_path_factory):
    """A cluster with slurmdbd, enforcing associations, limits and QOS, as clusters with a QOS per queue do."""
    if os.geteuid() != 0 and not shutil.which("slurmdbd"):
        pytest.skip("starting SLURM with accounting needs root or slurmdbd and MariaDB installed")
    running = start_cluster(tmp_path_factory.mktemp("slurm_accounting"), accounting=True)
    yield running
    pids = [process.pid for process in running.processes.values()]
    running.stop()
    assert not any(_alive(pid) for pid in pids), "a SLURM, munge or MariaDB daemon outlived stop()"


def test_requests_are_held_to_the_qos_a_job_gets(accounting_cluster: SlurmCluster, tmp_path):
    """Above its QOS's MaxWall or MaxTRES a job stays pending for good where SLURM enforces limits (reasons
    QOSMaxWallDurationPerJobLimit, QOSMaxCpuPerJobLimit, QOSMaxMemoryPerJob: each seen here by hand, with sbatch, on
    this cluster; without the hold, this test's job stayed pending with the first), and Snakemake waits on it. The
    profile reads the default QOS of the user's association and holds the requests to it; the job runs. sacctmgr
    prints 1536 MB as ``mem=1.50G``, which had been read as 1 MB."""
    cluster = accounting_cluster
    cluster.sacctmgr("add", "qos", "short", "MaxWall=60", "MaxTRES=cpu=1,mem=1536")
    cluster.sacctmgr("modify", "user", getpass.getuser(), "set", "qos=normal,short", "defaultqos=short")
    # train_flow: 2880 min and 32000 MB on a first attempt, on CPU cores with training.threads 8
    (tmp_path / "Snakefile").write_text(gpu_rule_snakefile(
        "train_flow", "job.txt", 'scontrol show job "$SLURM_JOB_ID" --oneliner > {output}', threads=8))
    result = _snakemake(cluster, tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM,
                        "--retries", "0", snakefile=tmp_path / "Snakefile", env={"FASTSIM_NO_GPU": "1"})
    job = dict(re.findall(r"(\w+)=(\S*)", (tmp_path / "job.txt").read_text()))
    assert (job["QOS"], job["TimeLimit"], job["MinMemoryNode"], job["MinCPUsNode"]) == ("short", "01:00:00", "1.50G",
                                                                                         "1"), job
    assert (f"profiles/slurm: partition {cluster.partition} with QOS short: a job may ask for at most 60 min, 1536 MB "
            f"and 1 cores; larger requests are held to them") in result.stderr, result.stderr[-3000:]
    # FASTSIM_SLURM_QOS: the profile submits with that QOS (normal: no limits) and reads it instead of the default
    (tmp_path / "job.txt").unlink()
    _snakemake(cluster, tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, "--retries", "0",
               snakefile=tmp_path / "Snakefile", env={"FASTSIM_NO_GPU": "1", "FASTSIM_SLURM_QOS": "normal"})
    job = dict(re.findall(r"(\w+)=(\S*)", (tmp_path / "job.txt").read_text()))
    node_cpus = int(_node(cluster)["CPUTot"])
    assert (job["QOS"], job["TimeLimit"], job["MinCPUsNode"]) == ("normal", "2-00:00:00", str(min(8, node_cpus))), job
    # a partition's own QOS binds its jobs too (the cluster is this test's alone: its partition keeps the QOS)
    cluster.sacctmgr("add", "qos", "partqos", "MaxWall=30", "MaxTRESPerNode=mem=500")
    cluster.scontrol("update", f"PartitionName={cluster.partition}", "QoS=partqos")
    planned = _snakemake(cluster, tmp_path, "-n", "--forceall", "--profile", str(REPO / "profiles" / "slurm"),
                         *_FAST_SLURM, snakefile=tmp_path / "Snakefile", env={"FASTSIM_NO_GPU": "1"})
    assert (f"profiles/slurm: partition {cluster.partition} with QOS partqos,short: a job may ask for at most 30 min, "
            f"500 MB and 1 cores") in planned.stderr, planned.stderr[-3000:]


def test_requests_are_held_to_the_group_total_of_an_account_above_the_users(accounting_cluster: SlurmCluster,
                                                                            tmp_path):
    """A job above the running-jobs total (``GrpTRES``) of an account above the user's stays pending for good
    (``AssocGrpCpuLimit``: a 2-core job under ``GrpTRES=cpu=1`` of the parent account, seen here by hand with
    sbatch), and that total is not copied into the user's association as its ``Max*`` limits are. The profile walks
    the accounts up to root and holds the cores to it; the job runs."""
    cluster = accounting_cluster
    if int(_node(cluster)["CPUTot"]) < 2:
        pytest.skip("a node of one core holds every job to one core already")
    cluster.sacctmgr("add", "account", "physics")
    cluster.sacctmgr("modify", "account", ACCOUNT, "set", "parent=physics")
    cluster.sacctmgr("modify", "account", "physics", "set", "GrpTRES=cpu=1")
    run = ["--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, "--retries", "0"]
    site = {"FASTSIM_NO_GPU": "1", "FASTSIM_SLURM_QOS": "normal"}
    try:
        (tmp_path / "Snakefile").write_text(gpu_rule_snakefile(
            "train_flow", "job.txt", 'scontrol show job "$SLURM_JOB_ID" --oneliner > {output}', threads=8))
        planned = _snakemake(cluster, tmp_path, "-n", *run, snakefile=tmp_path / "Snakefile", env=site)
        # said before any job is submitted: a job held too little would wait here for good
        assert re.search(r"profiles/slurm: partition \S+ with QOS \S+: a job may ask for at most .* and 1 cores",
                         planned.stderr), planned.stderr[-3000:]
        _snakemake(cluster, tmp_path, *run, snakefile=tmp_path / "Snakefile", env=site)
    finally:
        cluster.sacctmgr("modify", "account", "physics", "set", "GrpTRES=cpu=-1")
    job = dict(re.findall(r"(\w+)=(\S*)", (tmp_path / "job.txt").read_text()))
    assert (job["Account"], job["MinCPUsNode"]) == (ACCOUNT, "1"), job


@pytest.mark.parametrize("tres, stopped_env, planned_env, said", [
    ("gres/gpu", {}, {"FASTSIM_NO_GPU": "1"}, "allows no GPU (gres/gpu=0"),
    # a model's own count holds the jobs asking for that model (--gpus=a100:1), not those asking for any GPU
    ("gres/gpu:a100", {"FASTSIM_GPU_MODEL": "a100"}, {}, "allows no a100 (gres/gpu=0 or gres/gpu:a100=0"),
])
def test_an_account_without_gpus_is_named_at_planning(accounting_cluster: SlurmCluster, tmp_path, tres, stopped_env,
                                                     planned_env, said):
    """``GrpTRES=gres/gpu=0`` on the user's account keeps a GPU job pending for good (``AssocGrpGRES``: seen by hand
    on this cluster with a GPU declared in gres.conf), and ``gres/gpu:a100=0`` a job asking for an a100 (a GPU
    declared as one; a job asking for any GPU ran). Planning with the profile stops and names the way out; with
    ``FASTSIM_NO_GPU=1``, or without the model, it plans."""
    cluster = accounting_cluster
    (tmp_path / "Snakefile").write_text(gpu_rule_snakefile("train_flow", "job.txt", "echo > {output}", threads=1))
    plan = ["-n", "--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM]
    cluster.sacctmgr("modify", "account", ACCOUNT, "set", f"GrpTRES={tres}=0")
    try:
        stopped = _snakemake(cluster, tmp_path, *plan, snakefile=tmp_path / "Snakefile", check=False, env=stopped_env)
        planned = _snakemake(cluster, tmp_path, *plan, snakefile=tmp_path / "Snakefile", env=planned_env)
    finally:
        cluster.sacctmgr("modify", "account", ACCOUNT, "set", f"GrpTRES={tres}=-1")
    assert stopped.returncode != 0 and said in stopped.stderr, stopped.stderr[-3000:]
    assert "FASTSIM_NO_GPU=1" in stopped.stderr and "train_flow" in planned.stdout + planned.stderr


def test_a_runtime_is_held_to_the_core_minutes_of_the_qos(accounting_cluster: SlurmCluster, tmp_path):
    """Above its QOS's ``MaxTRESMins`` (cores times minutes) a job stays pending for good
    (``QOSMaxCpuMinutesPerJobLimit``: 2 cores for 40 minutes under ``cpu=60`` here by hand, while 1 core ran). The
    profile holds the runtime to the core-minutes over the cores the job asks for; the job runs."""
    cluster = accounting_cluster
    cores = min(2, int(_node(cluster)["CPUTot"]))
    cluster.sacctmgr("add", "qos", "coremin", "MaxTRESMins=cpu=40")
    cluster.sacctmgr("modify", "user", getpass.getuser(), "set", "qos+=coremin")
    (tmp_path / "Snakefile").write_text(gpu_rule_snakefile(
        "train_flow", "job.txt", 'scontrol show job "$SLURM_JOB_ID" --oneliner > {output}', threads=cores))
    run = ["--profile", str(REPO / "profiles" / "slurm"), *_FAST_SLURM, "--retries", "0"]
    site = {"FASTSIM_NO_GPU": "1", "FASTSIM_SLURM_QOS": "coremin"}
    planned = _snakemake(cluster, tmp_path, "-n", *run, snakefile=tmp_path / "Snakefile", env=site)
    # said before any job is submitted: 2880 minutes would have waited for good
    assert "held to them (and runtimes to 40 core-minutes over the job's cores or GPUs)" in planned.stderr, \
        planned.stderr[-3000:]
    _snakemake(cluster, tmp_path, *run, snakefile=tmp_path / "Snakefile", env=site)
    job = dict(re.findall(r"(\w+)=(\S*)", (tmp_path / "job.txt").read_text()))
    held = ("coremin", f"00:{40 // cores:02d}:00", str(cores))
    assert (job["QOS"], job["TimeLimit"], job["MinCPUsNode"]) == held, job


def _node(cluster: SlurmCluster) -> dict[str, str]:
    """``scontrol show node``'s fields of the cluster's one node (its cores: ``CPUTot``; memory: ``RealMemory``)."""
    return dict(re.findall(r"(\w+)=(\S*)", cluster.scontrol("show", "node", cluster.node, "--oneliner")))


def _snakemake(cluster: SlurmCluster, workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile",
               check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """snakemake against the test cluster: its SLURM_CONF, partition via the profile's SITE variable, and the
    FASTSIM_* variables of ``env``."""
    workdir.mkdir(parents=True, exist_ok=True)
    given = env or {}
    env = dict(cluster.env, FASTSIM_SLURM_PARTITION=cluster.partition)
    env.pop("PYTHONPATH", None)  # what jobs see of it must come from the workflow
    for key in ("FASTSIM_SLURM_GPU_PARTITION", "FASTSIM_SLURM_ACCOUNT", "FASTSIM_SLURM_QOS", "FASTSIM_GPU_MODEL",
                "FASTSIM_NO_GPU"):
        env.pop(key, None)  # this machine's site values
    env.update(given)
    command = [SNAKEMAKE, "--snakefile", str(snakefile), "--directory", str(workdir), "--configfile", str(TINY_CONFIG),
               "--slurm-no-account", "--slurm-keep-successful-logs", *args]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}\n{cluster.daemon_logs()}")
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/test_cluster_slurm.py
    sys.exit(pytest.main([__file__, "-v"]))


#: A rule's script as SLURM runs it: inside its step and inside an atomic_path when the job is cancelled.
_CANCELLED_JOB = """
import sys, time
from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.logs import start_job, step_logging
start_job(sys.argv[2])
with step_logging(sys.argv[2]), atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half a table")
    time.sleep(300)
"""


def test_a_cancelled_job_removes_its_temporaries_and_logs_why(cluster: SlurmCluster, tmp_path):
    """scancel and a job's time limit send SIGTERM (then SIGKILL after KillWait): Python's default had ended the
    job at once and left its hidden temporary beside the outputs (checked on this cluster with SIGTERM reset to
    the default); a time limit, checked by hand, gives the same as scancel."""
    import time

    script = tmp_path / "job.py"
    script.write_text(_CANCELLED_JOB)
    env = {**cluster.env, "PYTHONPATH": str(REPO)}
    job = subprocess.run(["sbatch", "--parsable", f"--output={tmp_path}/slurm.out", "--wrap",
                          f"{sys.executable} {script} {tmp_path}/0.parquet {tmp_path}/job.log"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".0.parquet.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".0.parquet.*")), cluster.daemon_logs()
    subprocess.run(["scancel", job], env=env, check=True)
    while time.monotonic() < deadline and "stopped by SIGTERM" not in (tmp_path / "job.log").read_text():
        time.sleep(0.2)
    time.sleep(1)
    assert "stopped by SIGTERM" in (tmp_path / "job.log").read_text(), cluster.daemon_logs()
    assert not list(tmp_path.glob(".0.parquet.*")) and not (tmp_path / "0.parquet").exists()


def test_readme_job_array_of_file_lists_runs_each_list_as_one_task(cluster: SlurmCluster, tmp_path):
    """The README's SLURM job array for the bundle runner ("Using a bundle elsewhere", Many files), as written
    there but for the paths and 2 files a list: every task runs its list, and each output is the one its file
    gets run alone (one --seed for all tasks: the streams are keyed by each file's values). A task submitted again
    (``--array=<its index>``) runs only the file it had not written (``--skip-existing``)."""
    import time

    from tests.test_export_bundle import export_flow

    block = readme_block("- **Many files**", "- **Noise**", r"```bash\n(.*?)```")
    bundle = export_flow(tmp_path)
    script = (block.replace("-l 50", "-l 2").replace("fastsim-env/bin/python", sys.executable)
              .replace("jets/run_bundle.py jets", f"{bundle}/run_bundle.py {bundle}"))
    assert script != block and "sbatch --array" in script
    inputs = write_condition_files(tmp_path)
    names = [path.name for path in inputs]
    submitted = subprocess.run(["bash", "-ec", script], cwd=tmp_path, env=cluster.env, capture_output=True, text=True)
    job = re.search(r"Submitted batch job (\d+)", submitted.stdout)
    assert job, submitted.stdout + submitted.stderr
    deadline = time.monotonic() + 120
    while job[1] in subprocess.run(["squeue", "-h", "-o", "%F"], env=cluster.env, capture_output=True,
                                   text=True).stdout.split() and time.monotonic() < deadline:
        time.sleep(1)
    logs = sorted(tmp_path.glob(f"slurm-{job[1]}_*.out"))
    assert len(logs) == 3, cluster.daemon_logs()  # 5 files in lists of 2: three tasks
    assert sorted(path.name for path in (tmp_path / "fast").iterdir()) == names, [log.read_text() for log in logs]
    assert_each_output_is_its_file_alone(bundle, inputs, tmp_path / "fast", tmp_path)
    # A task cut by its time limit (its second file not written), submitted again as the README says
    (tmp_path / "fast" / names[3]).unlink()
    again = script.replace("--array=0-$((n - 1))", "--array=1")
    assert again != script
    resubmitted = subprocess.run(["bash", "-ec", again], cwd=tmp_path, env=cluster.env, capture_output=True,
                                 text=True)
    task = re.search(r"Submitted batch job (\d+)", resubmitted.stdout)
    assert task, resubmitted.stdout + resubmitted.stderr
    while task[1] in subprocess.run(["squeue", "-h", "-o", "%F"], env=cluster.env, capture_output=True,
                                    text=True).stdout.split() and time.monotonic() < deadline + 120:
        time.sleep(1)
    log = (tmp_path / f"slurm-{task[1]}_1.out").read_text()
    assert f"kept 1 of 2 outputs, each newer than its input and the bundle (fast/{names[2]}); 1 to run" in log, log
    assert sorted(path.name for path in (tmp_path / "fast").iterdir()) == names
    assert_each_output_is_its_file_alone(bundle, inputs[3:4], tmp_path / "fast", tmp_path)
