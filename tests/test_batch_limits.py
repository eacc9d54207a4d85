"""What the SLURM profile reads of a partition and its QOS (pipeline_steps/batch_limits.py), on the output of SLURM
22.05's scontrol, sinfo and sacctmgr; tests/test_cluster_slurm.py runs it against a live slurmctld and slurmdbd."""

from __future__ import annotations

import pytest

from pipeline_steps.batch_limits import (JobLimits, _tres_limits, asks_for_gpus, gpu_models, htcondor_pool_limits,
                                         most_threads, slurm_minutes, slurm_partition_limits, with_a_gpu)

#: ``scontrol show partition --oneliner`` of a site with a default CPU partition and a GPU one (fields trimmed).
PARTITIONS = (
    "PartitionName=short AllowGroups=ALL Default=NO MaxNodes=UNLIMITED MaxTime=04:00:00 MinNodes=0 "
    "MaxCPUsPerNode=UNLIMITED Nodes=c[01-04] State=UP DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n"
    "PartitionName=batch AllowGroups=ALL Default=YES MaxNodes=UNLIMITED MaxTime=1-00:00:00 MinNodes=0 "
    "MaxCPUsPerNode=UNLIMITED Nodes=c[01-40] State=UP DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n"
    "PartitionName=gpu AllowGroups=ALL Default=NO MaxNodes=UNLIMITED MaxTime=2-00:00:00 MinNodes=0 "
    "MaxCPUsPerNode=32 Nodes=g[01-02] State=UP DefMemPerNode=UNLIMITED MaxMemPerNode=190000\n"
    "PartitionName=percore AllowGroups=ALL Default=NO MaxNodes=UNLIMITED MaxTime=04:00:00 MinNodes=0 "
    "MaxCPUsPerNode=UNLIMITED Nodes=c[01-04] State=UP DefMemPerCPU=2000 MaxMemPerCPU=2000\n"
)
#: ``sinfo --noheader --Node --partition P --format "%c %m"``: cores and MB per node.
NODES = {"batch": "64 257000\n64 257000\n128 515000\n", "gpu": "64 257000\n64 257000\n", "short": "64 257000\n",
         "percore": "64 257000\n"}


#: ``sinfo --noheader --Node --partition P --format "%G"``: the nodes' GRES (the GPU nodes of two models).
GRES = {"batch": "(null)\n(null)\n(null)\n", "gpu": "gpu:a100-sxm4-80gb:4(S:0-1)\ngpu:v100:2(S:0,1),mps:200\n",
        "short": "(null)\n", "percore": "(null)\n"}


#: ``scontrol show config`` (two of its lines) of a site that keeps no accounting.
NO_ACCOUNTING = "AccountingStorageEnforce = none\nAccountingStorageType   = accounting_storage/none\n"


def site(command: list[str]) -> str | None:
    """The answers of the site above to the commands slurm_partition_limits runs."""
    if command == ["scontrol", "show", "config"]:
        return NO_ACCOUNTING
    if command[:3] == ["scontrol", "show", "partition"]:
        named = [word for word in command[3:] if not word.startswith("--")]
        lines = [line for line in PARTITIONS.splitlines() if not named or f"PartitionName={named[0]} " in line]
        return "\n".join(lines) + "\n" if lines else None  # scontrol fails on an unknown partition
    if command[0] == "sinfo":
        partition = command[command.index("--partition") + 1]
        return GRES[partition] if command[-1] == "%G" else NODES[partition]
    raise AssertionError(f"unexpected command {command}")


def test_the_default_partition_is_read_when_none_is_named():
    assert slurm_partition_limits("", environ={}, query=site) == JobLimits(1440, 515000, 128)


def test_a_partitions_own_caps_take_precedence_over_its_largest_node():
    assert slurm_partition_limits("gpu", environ={}, query=site) == JobLimits(2880, 190000, 32)
    assert slurm_partition_limits("short", environ={}, query=site) == JobLimits(240, 257000, 64)
    # 2000 MB a core: sbatch refuses more memory than the largest node's 64 cores are given at that rate
    assert slurm_partition_limits("percore", environ={}, query=site) == JobLimits(240, 128000, 64)


def test_a_node_of_unconfigured_memory_holds_no_memory_request():
    """SLURM reports 1 MB for a node without RealMemory in slurm.conf: held to it, every job would ask for 1 MB."""
    def unconfigured(command):
        return "16 1\n16 1\n" if command[0] == "sinfo" else site(command)

    assert slurm_partition_limits("short", environ={}, query=unconfigured) == JobLimits(240, None, 16)


def test_a_job_offered_several_partitions_may_ask_for_the_most_any_of_them_allows():
    assert slurm_partition_limits("short,gpu", environ={}, query=site) == JobLimits(2880, 257000, 64)
    assert slurm_partition_limits("short,gpus", environ={}, query=site) == JobLimits()  # one unknown: sbatch names it


def test_requests_are_held_to_the_limits_and_left_alone_without_any():
    limits = JobLimits(1440, 190000, 32)
    assert limits.held("2880 * attempt", "runtime") == "min(2880 * attempt, 1440)"
    assert limits.held("32000 * attempt", "mem_mb") == "min(32000 * attempt, 190000)"
    assert limits.held("threads", "cpus_per_task") == "min(threads, 32)"
    assert eval(limits.held("720 * attempt", "runtime"), {"attempt": 3}) == 1440
    assert eval(limits.held("720 * attempt", "runtime"), {"attempt": 1}) == 720
    assert JobLimits().held("2880 * attempt", "runtime") == "2880 * attempt"


def test_the_environment_sets_a_qos_limit_and_without_slurm_only_it_holds():
    environ = {"FASTSIM_SLURM_MAX_RUNTIME": "720", "FASTSIM_SLURM_MAX_MEM_MB": "", "FASTSIM_SLURM_MAX_CPUS": "16"}
    assert slurm_partition_limits("gpu", environ=environ, query=site) == JobLimits(720, 190000, 16)
    assert slurm_partition_limits("gpu", environ=environ, query=lambda command: None) == JobLimits(720, None, 16)
    assert slurm_partition_limits("", environ={}, query=lambda command: None) == JobLimits()
    with pytest.raises(ValueError, match=r"FASTSIM_SLURM_MAX_RUNTIME='2-00:00:00': expected a whole number above 0 "
                                         r"\(minutes\)"):
        slurm_partition_limits("gpu", environ={"FASTSIM_SLURM_MAX_RUNTIME": "2-00:00:00"}, query=site)


def test_a_partition_sbatch_will_refuse_is_left_to_sbatch_to_name():
    assert slurm_partition_limits("gpus", environ={}, query=site) == JobLimits()


@pytest.mark.parametrize("text, minutes", [("UNLIMITED", None), ("INFINITE", None), ("45", 45), ("30:00", 30),
                                           ("12:00:00", 720), ("0:59:59", 59), ("2-00:00:00", 2880),
                                           ("1-12", 2160), ("1-12:30", 2190)])
def test_slurm_times_read_as_sbatch_reads_them(text, minutes):
    assert slurm_minutes(text) == minutes


def test_a_time_slurm_would_not_write_is_refused_by_name():
    with pytest.raises(ValueError, match="SLURM time '2 days'"):
        slurm_minutes("2 days")


def pool(command: list[str]) -> str | None:
    """``condor_status -constraint C -af TotalSlotMemory TotalSlotCpus`` of a pool with two CPU machines and a GPU
    one; the CPU machine of most memory is not the one of most cores."""
    assert command[:2] == ["condor_status", "-constraint"], command
    assert command[3:] == ["-af", "TotalSlotMemory", "TotalSlotCpus"], command
    return "96000 16\n" if "TotalSlotGPUs" in command[2] else "64000 32\n128000 24\n96000 16\n"


def test_an_htcondor_request_is_held_to_the_largest_slot_of_its_kind():
    assert htcondor_pool_limits(gpu=False, environ={}, query=pool) == JobLimits(mem_mb=128000, cpus=32)
    assert htcondor_pool_limits(gpu=True, environ={}, query=pool) == JobLimits(mem_mb=96000, cpus=16)
    assert JobLimits(mem_mb=96000).held("32000 * attempt", "request_memory") == "min(32000 * attempt, 96000)"
    set_by_hand = {"FASTSIM_HTCONDOR_MAX_MEM_MB": "60000", "FASTSIM_HTCONDOR_MAX_CPUS": "8"}
    assert htcondor_pool_limits(gpu=True, environ=set_by_hand, query=pool) == JobLimits(mem_mb=60000, cpus=8)
    assert htcondor_pool_limits(gpu=True, environ={}, query=lambda command: None) == JobLimits()  # no condor_status
    assert htcondor_pool_limits(gpu=True, environ={}, query=lambda command: "") == JobLimits()  # no GPU slot


def test_a_pool_without_gpu_slots_is_named_where_gpu_jobs_would_wait_unmatched(capsys):
    def cpu_only(command: list[str]) -> str:
        return "" if "TotalSlotGPUs" in command[2] else "64000 32\n"

    htcondor_pool_limits(gpu=True, environ={}, query=cpu_only)
    assert "the pool lists no slot with a GPU" in capsys.readouterr().err
    for gpu, query in ((False, cpu_only), (True, pool), (True, lambda command: None)):  # no GPU asked, one, no pool
        htcondor_pool_limits(gpu=gpu, environ={}, query=query)
        assert "no slot with a GPU" not in capsys.readouterr().err


def test_htcondor_threads_are_held_to_the_fewest_cores_a_job_may_land_on():
    """max-threads is one number for every rule: where GPU jobs go to GPU slots, their cores bound it too."""
    cpu, gpu = (htcondor_pool_limits(gpu=kind, environ={}, query=pool) for kind in (False, True))
    assert most_threads(cpu, gpu) == 16 and most_threads(cpu, cpu) == 32
    assert most_threads(cpu, JobLimits()) == 32 and most_threads(JobLimits(), JobLimits()) is None


#: The same site keeping accounting (``sacctmgr --noheader --parsable2`` answers, by entity and conditions): user ana
#: runs under account cms by default, whose association has its own MaxWall for the gpu partition; QOS normal is
#: cms's default, long atlas's, and the gpu partition has a QOS of its own (``QoS=gpu_qos``).
ENFORCED = ("AccountingStorageEnforce = associations,limits,qos\n"
            "AccountingStorageType   = accounting_storage/slurmdbd\n"
            "ClusterName             = hpc\n")
SACCTMGR = {  # the slurmdbd keeps a second cluster, where ana's associations differ
    ("user", "name=ana"): "cms\n",
    # Cluster|Partition|DefaultQOS|MaxWall|MaxTRESMins|MaxTRES|MaxTRESPerNode|GrpTRES
    ("assoc", "user=ana", "account=cms"): ("old|gpu|long|||||\nhpc||normal|||||\nhpc|gpu|normal|1-00:00:00||||\n"
                                           "old||long|||||\n"),
    ("assoc", "user=ana", "account=atlas"): "hpc||long|||||cpu=16\n",  # a group cap no job of more cores fits under
    ("assoc", "user=ana", "account=theory"): "hpc||normal|||||\n",  # an account kept off the GPUs (below)
    # a job's core-minutes and GPU-minutes capped (MaxTRESMins) by the association itself
    ("assoc", "user=ana", "account=lattice"): "hpc||normal||cpu=2880,gres/gpu=600|||\n",
    # one GPU model's minutes per job; its account keeps another model off (typed GPU limits, below)
    ("assoc", "user=ana", "account=cosmo"): "hpc||normal||gres/gpu:h100-80gb=120|||\n",
    # the accounts' own associations (Cluster|Account|User|ParentName|GrpTRES): on hpc, cms sits under physics, whose
    # group may run 48 cores in all and root's 200 GB; the other cluster's rows, were they shown, are not this one's
    ("assoc", "user=", "cluster=hpc"): ("hpc|root|||mem=200G\nhpc|physics||root|cpu=48\nhpc|cms||physics|\n"
                                        "hpc|atlas||physics|\nhpc|theory||physics|gres/gpu=0\nhpc|lattice||physics|\n"
                                        "hpc|cosmo||physics|gres/gpu:a100=0\n"
                                        "old|root|||\nold|cms||root|cpu=2,mem=1G\n"),
    # Name|MaxWall|MaxTRESMins|MaxTRES|MaxTRESPerNode|MaxTRESPerUser|MaxTRESPerAccount|GrpTRES
    ("qos", "name=normal"): "normal|12:00:00||cpu=64,mem=256G||||\n",
    ("qos", "name=long"): "long|7-00:00:00||||mem=128G|cpu=40|\n",
    ("qos", "name=normal,gpu_qos"): "normal|12:00:00||cpu=64,mem=256G||||\ngpu_qos|2-00:00:00||cpu=16|mem=100000M|||\n",
}


def accounting_site(command: list[str], enforce: str = ENFORCED) -> str | None:
    if command == ["scontrol", "show", "config"]:
        return enforce
    if command[0] == "sacctmgr":
        assert command[1:4] == ["--noheader", "--parsable2", "show"] and command[5] == "where", command
        shown = SACCTMGR.get((command[4], *command[6:-1]))
        columns = command[-1].removeprefix("format=").split(",")
        assert all(len(line.split("|")) == len(columns) for line in (shown or "").splitlines()), (command, shown)
        return shown
    shown = site(command)
    return shown.replace("PartitionName=gpu ", "PartitionName=gpu QoS=gpu_qos ") if shown else shown


def test_a_job_is_held_to_its_associations_and_qos_limits_where_slurm_enforces_them(capsys):
    """A job above its QOS's MaxWall or MaxTRES stays pending for good (QOSMaxWallDurationPerJobLimit, ...): each
    limit is the tightest of the partition's, the association's, its accounts' group totals and its QOS's (the
    default QOS and the partition's)."""
    ana = {"USER": "ana"}
    assert slurm_partition_limits("", environ=ana, query=accounting_site) == JobLimits(720, 200 * 1024, 48)
    assert slurm_partition_limits("gpu", environ=ana, query=accounting_site) == JobLimits(720, 100000, 16)
    assert "partition gpu with QOS gpu_qos,normal: a job may ask for at most 720 min" in capsys.readouterr().err
    atlas = {"USER": "ana", "FASTSIM_SLURM_ACCOUNT": "atlas"}
    assert slurm_partition_limits("batch", environ=atlas, query=accounting_site) == JobLimits(1440, 128 * 1024, 16)
    long = {**ana, "FASTSIM_SLURM_QOS": "long"}  # the QOS the profile submits with, not the default (and its cap of
    # one account's running jobs: pending for good with MaxCpuPerAccount above it)
    assert slurm_partition_limits("batch", environ=long, query=accounting_site) == JobLimits(1440, 128 * 1024, 40)
    assert "partition batch with QOS long: a job may ask for at most 1440 min" in capsys.readouterr().err
    overridden = {**ana, "FASTSIM_SLURM_MAX_RUNTIME": "2880"}  # another QOS asked for by hand
    assert slurm_partition_limits("gpu", environ=overridden, query=accounting_site).runtime_min == 2880



def test_an_account_kept_off_the_gpus_stops_the_gpu_jobs_before_any_waits_for_good():
    """``gres/gpu=0`` on an account above the user's keeps its GPU jobs pending for good (AssocGrpGRES): the profile
    says so at planning and names the way out; an account with GPUs, or one of a known count, passes."""
    theory = {"USER": "ana", "FASTSIM_SLURM_ACCOUNT": "theory"}
    limits = slurm_partition_limits("gpu", environ=theory, query=accounting_site)
    assert limits.gpus == 0
    with pytest.raises(ValueError, match=r"on partition gpu .* allows no GPU .*FASTSIM_NO_GPU=1"):
        with_a_gpu(limits, "gpu")
    cms = slurm_partition_limits("gpu", environ={"USER": "ana"}, query=accounting_site)
    assert cms.gpus is None and with_a_gpu(cms, "gpu") == cms
    assert with_a_gpu(JobLimits(gpus=2), "") == JobLimits(gpus=2)


def test_a_gpu_models_own_limits_hold_the_jobs_that_ask_for_that_model():
    """A job asking for a GPU model (``FASTSIM_GPU_MODEL=a100``: ``--gpus=a100:1``) waits for good under that model's
    ``gres/gpu:a100=0`` (AssocGrpGRES) or above its GPU-minutes (QOSMaxGRESMinutesPerJob), one asking for any GPU
    does not (both seen on the test cluster with its GPU declared as an a100): each model's limits are read for the
    jobs of that model only."""
    def gpu_limits(model: str) -> JobLimits:
        environ = {"USER": "ana", "FASTSIM_SLURM_ACCOUNT": "cosmo", **({"FASTSIM_GPU_MODEL": model} if model else {})}
        return slurm_partition_limits("gpu", environ=environ, query=accounting_site)

    assert (gpu_limits("").gpus, gpu_limits("").gpu_minutes) == (None, None)
    assert (gpu_limits("h100-80gb").gpus, gpu_limits("h100-80gb").gpu_minutes) == (None, 120)
    assert gpu_limits("a100").gpus == 0
    with pytest.raises(ValueError, match=r"allows no a100 \(gres/gpu=0 or gres/gpu:a100=0 .*FASTSIM_GPU_MODEL"):
        with_a_gpu(gpu_limits("a100"), "gpu", "a100")


def test_a_gpu_model_no_node_of_the_partition_has_is_named_at_planning():
    """sbatch refuses a GPU model that no node of the partition has with only "Requested node configuration is not
    available" (a model spelt in another case, or a node whose GPU is declared without one, on the test cluster):
    planning stops instead and names the models sinfo lists; a model there, or no model, passes."""
    limits = JobLimits(gpus=2)
    assert with_a_gpu(limits, "gpu", "a100-sxm4-80gb", query=site) == limits
    assert with_a_gpu(limits, "gpu", "", query=site) == limits
    for model in ("A100-SXM4-80GB", "a100"):
        with pytest.raises(ValueError, match=rf"FASTSIM_GPU_MODEL={model}, but no node of partition gpu has .*"
                                             r"'a100-sxm4-80gb', 'v100'"):
            with_a_gpu(limits, "gpu", model, query=site)
    with pytest.raises(ValueError, match=r"no node of partition batch has .*: no GPU\).*FASTSIM_NO_GPU=1"):
        with_a_gpu(limits, "", "v100", query=site)  # the default partition, batch, has none
    assert with_a_gpu(limits, "gpu", "a100", query=lambda command: None) == limits  # sinfo did not answer


@pytest.mark.parametrize("value, gpus", [(None, True), ("", True), ("0", True), ("false", True), ("No", True),
                                          ("1", False), ("true", False), (" YES ", False)])
def test_fastsim_no_gpu_is_read_as_its_words_say(value, gpus):
    """``FASTSIM_NO_GPU=false`` had sent a GPU cluster's trainings to CPU cores (any value but 0 meant no GPU)."""
    assert asks_for_gpus({} if value is None else {"FASTSIM_NO_GPU": value}) is gpus


def test_fastsim_no_gpu_of_another_value_is_refused_not_guessed():
    with pytest.raises(ValueError, match=r"FASTSIM_NO_GPU='on': expected 1 .* or 0 / unset"):
        asks_for_gpus({"FASTSIM_NO_GPU": "on"})


@pytest.mark.parametrize("sinfo_gres, models", [
    ("gpu:a100:4(S:0-1),gpu:v100:2\n", {"a100", "v100"}),
    ("gpu:2\n(null)\n", {""}),  # declared without a model
    ("gpu:tesla:2(S:0,1),mps:400,bandwidth:lustre:no_consume:4G\n", {"tesla"}),
    ("(null)\n", set()),
])
def test_gpu_models_read_as_sinfo_prints_them(sinfo_gres, models):
    assert gpu_models(sinfo_gres) == models


@pytest.mark.parametrize("tres, model, limits", [
    ("cpu=8,gres/gpu=2,mem=1G", "", JobLimits(mem_mb=1024, cpus=8, gpus=2)),
    ("gres/gpu:a100=0", "", JobLimits()),  # one model's count: the job asks for any GPU
    ("gres/gpu:a100=0", "a100", JobLimits(gpus=0)),
    ("gres/gpu=4,gres/gpu:a100=1", "a100", JobLimits(gpus=1)),  # the tighter of the two holds
    ("gres/gpu=1,gres/gpu:a100=3", "a100", JobLimits(gpus=1)),
    ("gres/gpu:a100-sxm4-80gb=2,cpu=4", "a100-sxm4-80gb", JobLimits(cpus=4, gpus=2)),  # a type name with dashes
    ("gres/gpu:a100-sxm4-80gb=0", "a100", JobLimits()),  # another model, not a prefix of the name read
    ("", "a100", JobLimits()),
    # sacctmgr prints memory in the largest unit that holds it in two decimals (mem=1536M on the test cluster)
    ("cpu=4,mem=1.50G", "", JobLimits(mem_mb=1536, cpus=4)),
    ("mem=1.50T", "", JobLimits(mem_mb=1572864)),
    ("mem=1365M", "", JobLimits(mem_mb=1365)),
])
def test_tres_caps_read_as_sacctmgr_prints_them(tres, model, limits):
    assert _tres_limits(tres, model) == limits


def test_a_jobs_runtime_is_held_to_its_core_and_gpu_minutes():
    """Above ``MaxTRESMins`` (cores or GPUs times minutes) a job waits for good (QOSMaxCpuMinutesPerJobLimit): the
    runtime is held to the core-minutes over the cores the job asks for (its threads held to the cores allowed) and,
    for a GPU job, to the GPU-minutes over its GPUs."""
    lattice = slurm_partition_limits("gpu", environ={"USER": "ana", "FASTSIM_SLURM_ACCOUNT": "lattice"},
                                     query=accounting_site)
    assert (lattice.cpu_minutes, lattice.gpu_minutes, lattice.cpus) == (2880, 600, 16)

    def runtime(expression: str, attempt: int, threads: int) -> int:
        return eval(expression, {}, {"attempt": attempt, "threads": threads})

    cpu_job = lattice.held("2880 * attempt", "runtime")  # a job of its rule's threads
    # 1 thread: QOS normal's 12 h; 32 threads ask for the 16 cores allowed: 2880 / 16
    assert [runtime(cpu_job, 1, threads) for threads in (1, 8, 32)] == [720, 360, 180]
    gpu_job = lattice.held("2880 * attempt", "runtime", cores="8", gpus=1)
    assert runtime(gpu_job, 3, 1) == 360  # 2880 core-minutes over 8 cores (600 GPU-minutes, 720 of the QOS)
    by_hand = slurm_partition_limits("gpu", query=accounting_site,  # minutes of another QOS, given by hand
                                     environ={"USER": "ana", "FASTSIM_SLURM_ACCOUNT": "lattice",
                                              "FASTSIM_SLURM_MAX_RUNTIME": "4320"})
    assert by_hand.held("2880 * attempt", "runtime", cores="8", gpus=1) == "min(2880 * attempt, 4320)"
    assert JobLimits(gpu_minutes=600).held("120 * attempt", "runtime", gpus=1) == "min(120 * attempt, max(1, 600 // 1))"
    assert JobLimits(cpu_minutes=10).held("60", "runtime", cores="threads") == "min(60, max(1, 10 // threads))"
    assert JobLimits(gpu_minutes=600).held("60", "runtime") == "60"  # a CPU job has no GPU-minutes to spend

def test_accounting_limits_are_not_read_where_slurm_does_not_enforce_them_or_does_not_answer():
    partition_only = JobLimits(1440, 515000, 128)
    not_enforced = ENFORCED.replace("associations,limits,qos", "associations")
    assert slurm_partition_limits("batch", environ={"USER": "ana"},
                                  query=lambda command: accounting_site(command, not_enforced)) == partition_only
    no_account = {"USER": "bob"}  # a user sacctmgr does not know
    assert slurm_partition_limits("batch", environ=no_account, query=accounting_site) == partition_only
    def slurmdbd_down(command):  # sacctmgr fails
        return None if command[0] == "sacctmgr" else accounting_site(command)

    assert slurm_partition_limits("batch", environ={"USER": "ana"}, query=slurmdbd_down) == partition_only
