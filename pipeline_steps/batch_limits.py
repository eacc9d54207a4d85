"""What one job may ask of a SLURM partition or an HTCondor pool, read when the profile loads
(``profiles/slurm/config.yaml``, ``profiles/htcondor/config.yaml``), which holds its requests to it.

SLURM. The profile's requests grow with the attempt: a job killed for time or memory is resubmitted asking for more.
A request above the partition's ``MaxTime`` is not refused under SLURM's default ``EnforcePartLimits=NO``: the
job stays pending (reason ``PartitionTimeLimit``) for good, and Snakemake waits on it without a word: a
``train_flow`` job (48 h) on a 90-minute partition of the test cluster (``tests/slurm_cluster.py``, SLURM 22.05)
did, as its first attempt would on a 24-hour partition and its retry (96 h) on a 48-hour one. So each request is
held to what the partition allows: a training stopped at the limit resumes from its checkpoint in the next attempt.

More cores than any node of the partition has keep a job pending for good as well (reason
``PartitionConfig``: the trainings' 8 cores on a partition of 2-core nodes), and memory above every node's is
refused by sbatch ("Requested node configuration is not available"), failing the attempt: both are held to the
partition's largest node (each on its own: a partition of nodes with many cores and little memory beside nodes
with few cores and much could still be asked for a pair no node has). Where the partition sets ``MaxMemPerCPU``,
SLURM gives a job as many cores as its memory needs at that rate, and sbatch refuses it where no node has them
("CPU count per node can not be satisfied": 3000 MB at 1000 MB per core on the 2-core test node), so memory is
held to that rate times the largest node's cores as well. A step granted fewer cores than
``training.threads`` says so in its log and computes the same numbers, more slowly.

Where SLURM enforces accounting limits (``AccountingStorageEnforce`` with ``limits``), a job above its QOS's
``MaxWall`` or ``MaxTRES`` stays pending for good as well (reasons ``QOSMaxWallDurationPerJobLimit``,
``QOSMaxCpuPerJobLimit``, ``QOSMaxMemoryPerJob``: each seen on the test cluster with slurmdbd, a QOS of 60 min, one
core and 1000 MB). So the requests are also held to the job's association (the user's on this cluster, under
``FASTSIM_SLURM_ACCOUNT`` or the default account, for the partition or for any): its own ``MaxWall`` and TRES caps
(per job, per node, and the group's and a user's totals, which one job above them never fits under either), the
group totals of its account and of every account above it (``AssocGrpCpuLimit``), and those of its default QOS and
of the partition's QOS, an account's total among them (``sacctmgr``; the tighter of the two where
both set one, where SLURM lets the partition's win unless the job's QOS has ``OverPartQOS``: held a little too far
then, never too little). Where any of them allows no GPU (``gres/gpu=0``, or ``gres/gpu:a100=0`` for jobs asking for
``FASTSIM_GPU_MODEL=a100``), a job asking for one waits for good (``AssocGrpGRES``): the profile stops at planning
instead (:func:`with_a_gpu`), as it does where no node of the partition has the model asked for (sbatch's refusal
would not say why). Above a per-job ``MaxTRESMins``
(cores or GPUs times minutes) a job waits as well (``QOSMaxCpuMinutesPerJobLimit``), so a runtime is held to it over
the job's cores and GPUs (:meth:`JobLimits.held`). ``FASTSIM_SLURM_QOS`` names the QOS the profile submits with,
read instead of the default; one given by hand otherwise (``--slurm-qos``) is not seen: ``FASTSIM_SLURM_MAX_RUNTIME``
(minutes; it replaces the core- and GPU-minutes read as well), ``FASTSIM_SLURM_MAX_MEM_MB`` and
``FASTSIM_SLURM_MAX_CPUS`` replace everything read.

HTCondor. A job asking for more memory than any slot of the pool has is never matched and stays idle for good
(``condor_q -better-analyze``: ``TARGET.Memory >= RequestMemory`` matches no slot), the head waiting on it: the
trainings' third attempt asks for 96 GB, their second 64 GB, where lxbatch's machines have up to 32 cores at
~2 GB each. The profile holds ``request_memory`` to the largest slot of the pool (of those with a GPU for a GPU
job), read with ``condor_status``; ``FASTSIM_HTCONDOR_MAX_MEM_MB`` sets it instead. Cores idle a job the same way
(``TARGET.Cpus >= RequestCpus``: a job of 8 cores on the test pool's 2-core slot, checked by hand), and the plugin
asks for the rule's threads (``request_cpus``), which only Snakemake's ``max-threads`` holds: the profile sets it to
the largest slot's cores (the smaller of the CPU and GPU slots' where GPU jobs run), or ``FASTSIM_HTCONDOR_MAX_CPUS``;
a training so granted fewer cores still runs ``training.threads`` threads (train/settings.py: the threads are part
of the result) and computes the same numbers, more slowly. Time is not read:
a pool says nothing of its longest job (lxbatch: a week, above the profile's longest, 6 days for a third attempt).
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import subprocess
import sys
from dataclasses import astuple, dataclass
from typing import Callable, Mapping

#: SLURM's RealMemory of a node whose memory is not configured (slurm.conf's default).
UNCONFIGURED_MEMORY_MB = 1
#: slurmctld or a collector may be slow to answer on a busy login node; no answer leaves the requests as written.
QUERY_TIMEOUT_S = 10


@dataclass(frozen=True)
class JobLimits:
    """The most a job may ask for: minutes of wall time, MB of memory, cores and GPUs, and core-minutes and
    GPU-minutes (cores or GPUs times wall time: SLURM's ``MaxTRESMins``) (None: no limit known)."""

    runtime_min: int | None = None
    mem_mb: int | None = None
    cpus: int | None = None
    gpus: int | None = None
    cpu_minutes: int | None = None
    gpu_minutes: int | None = None

    def held(self, expression: str, resource: str, cores: str = "threads", gpus: int = 0) -> str:
        """``expression`` (a Snakemake resource expression of ``attempt`` or ``threads``) held to this limit of
        ``resource`` (SLURM's ``runtime``, ``mem_mb`` or ``cpus_per_task``; HTCondor's ``request_memory``). A
        ``runtime`` is also held to the core-minutes over the job's ``cores`` (the expression it asks its cores with,
        held in turn) and, for a job of ``gpus``, to the GPU-minutes over them."""
        cap = {"runtime": self.runtime_min, "mem_mb": self.mem_mb, "request_memory": self.mem_mb,
               "cpus_per_task": self.cpus}[resource]
        caps = [str(cap)] if cap is not None else []
        if resource == "runtime" and self.cpu_minutes is not None:
            caps.append(f"max(1, {self.cpu_minutes} // {self.held(cores, 'cpus_per_task')})")
        if resource == "runtime" and gpus and self.gpu_minutes is not None:
            caps.append(f"max(1, {self.gpu_minutes} // {gpus})")
        return f"min({expression}, {', '.join(caps)})" if caps else expression


def slurm_partition_limits(partition: str = "", environ: Mapping[str, str] = os.environ,
                           query: Callable[[list[str]], str | None] | None = None) -> JobLimits:
    """The limits of ``partition`` (the cluster's default partition when empty; of the most generous where it
    lists several, ``short,long``, as sbatch's ``-p`` takes them): its ``MaxTime``, and the smaller of its
    ``MaxMemPerNode`` (or ``MaxMemPerCPU`` times its largest node's cores) / ``MaxCPUsPerNode`` and its largest
    node's memory / cores, tightened by its association's and QOS's limits where they are enforced.
    ``FASTSIM_SLURM_MAX_RUNTIME``, ``_MAX_MEM_MB`` and ``_MAX_CPUS`` in ``environ`` replace what is read. Without
    SLURM's commands (a laptop's dry run), or for a partition they do not know (sbatch names it), nothing is read."""
    query = query or _query
    each = [_one_partition(name, environ, query) for name in partition.split(",")]
    known = None not in each
    read = JobLimits(*map(_largest, *(astuple(limits) for limits, _ in each))) if known else JobLimits()
    runtime = _env_int(environ, "FASTSIM_SLURM_MAX_RUNTIME")  # given: the minutes read, per job and per core, go
    limits = JobLimits(runtime or read.runtime_min,
                       _env_int(environ, "FASTSIM_SLURM_MAX_MEM_MB") or read.mem_mb,
                       _env_int(environ, "FASTSIM_SLURM_MAX_CPUS") or read.cpus, read.gpus,
                       None if runtime else read.cpu_minutes, None if runtime else read.gpu_minutes)
    if known:
        where = _partition_named(partition)
        qos = sorted({name for _, names in each for name in names})
        where += f" with QOS {','.join(qos)}" if qos else ""
        minutes = [f"{value} {unit}-minutes" for value, unit in ((limits.cpu_minutes, "core"),
                                                                (limits.gpu_minutes, "GPU")) if value is not None]
        per_job = f" (and runtimes to {' and '.join(minutes)} over the job's cores or GPUs)" if minutes else ""
        print(f"profiles/slurm: {where}: a job may ask for at most {_said(limits.runtime_min, 'min')}, "
              f"{_said(limits.mem_mb, 'MB')} and {_said(limits.cpus, 'cores')}; larger requests are held to them"
              f"{per_job}", file=sys.stderr)
    return limits


def htcondor_pool_limits(gpu: bool, environ: Mapping[str, str] = os.environ,
                         query: Callable[[list[str]], str | None] | None = None) -> JobLimits:
    """The memory and the cores of the pool's largest slot (partitionable or static; with a GPU where ``gpu``; each
    on its own), or ``FASTSIM_HTCONDOR_MAX_MEM_MB`` / ``_MAX_CPUS`` from ``environ``. Without ``condor_status``, or
    no slot, nothing is read; where the pool answers with no GPU slot for ``gpu``, the profile says to set
    ``FASTSIM_NO_GPU`` (a warning: a pool may flock its GPU jobs to machines its collector does not list)."""
    constraint = 'SlotType =!= "Dynamic"' + (" && TotalSlotGPUs =!= undefined && TotalSlotGPUs > 0" if gpu else "")
    shown = (query or _query)(["condor_status", "-constraint", constraint, "-af", "TotalSlotMemory", "TotalSlotCpus"])
    slots = [tuple(map(int, pair)) for pair in re.findall(r"^\s*(\d+)\s+(\d+)\s*$", shown or "", re.M)]
    largest = JobLimits(mem_mb=max(memory for memory, _ in slots), cpus=max(cpus for _, cpus in slots)) if slots \
        else JobLimits()
    limits = JobLimits(mem_mb=_env_int(environ, "FASTSIM_HTCONDOR_MAX_MEM_MB") or largest.mem_mb,
                       cpus=_env_int(environ, "FASTSIM_HTCONDOR_MAX_CPUS") or largest.cpus)
    if slots:
        print(f"profiles/htcondor: the pool's largest slot{' with a GPU' if gpu else ''} has {largest.mem_mb} MB and "
              f"{largest.cpus} cores; a job asks for at most {limits.mem_mb} MB and {limits.cpus} cores",
              file=sys.stderr)
    elif gpu and shown is not None:  # the collector answered: no slot of this pool has a GPU
        print("profiles/htcondor: the pool lists no slot with a GPU, so the jobs that ask for one (trainings, "
              "generation) match no slot here and wait idle: set FASTSIM_NO_GPU=1 to run them on CPU cores (unless "
              "the pool flocks them to GPU machines elsewhere)", file=sys.stderr)
    return limits


def asks_for_gpus(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the GPU jobs ask for a GPU: not where ``FASTSIM_NO_GPU`` is 1, true or yes (case aside); they do
    where it is 0, false, no or unset. Any other value is refused, not guessed: ``FASTSIM_NO_GPU=false`` had meant
    "no GPU" (every non-empty value but ``0`` did), sending the trainings of a GPU cluster to CPU cores without a
    word."""
    value = environ.get("FASTSIM_NO_GPU", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return True
    if value in ("1", "true", "yes"):
        return False
    raise ValueError(f"FASTSIM_NO_GPU={environ['FASTSIM_NO_GPU']!r}: expected 1 (no GPU: the GPU jobs run on CPU "
                     "cores) or 0 / unset (they ask for a GPU)")


def with_a_gpu(limits: JobLimits, partition: str, gpu_model: str = "",
               query: Callable[[list[str]], str | None] | None = None) -> JobLimits:
    """``limits`` of the jobs that ask for a GPU (of ``gpu_model`` where one is named), or a clear error where the
    association, an account above it or the QOS allows none (``gres/gpu=0``, or ``gres/gpu:<model>=0``, a site's way
    of keeping an account off its GPUs): each such job would stay pending for good (``AssocGrpGRES``, seen on the
    test cluster with a GPU declared), and the run with it. Also where no node of ``partition`` has a GPU of
    ``gpu_model`` (:func:`_check_gpu_model`)."""
    if limits.gpus == 0:
        limit = f"gres/gpu=0 or gres/gpu:{gpu_model}=0" if gpu_model else "gres/gpu=0"
        other_model = " or FASTSIM_GPU_MODEL to another model" if gpu_model else ""
        raise ValueError(f"profiles/slurm: on {_partition_named(partition)} your association, an account above it "
                         f"or your QOS allows no {gpu_model or 'GPU'} ({limit} in sacctmgr's limits), so every job "
                         "asking for one would wait for good: set FASTSIM_NO_GPU=1 to train on CPU cores, or "
                         f"FASTSIM_SLURM_ACCOUNT / FASTSIM_SLURM_QOS to ones with GPUs{other_model}")
    if gpu_model:
        _check_gpu_model(partition, gpu_model, query or _query)
    return limits


def _check_gpu_model(partition: str, gpu_model: str, query) -> None:
    """Stop where no node of ``partition`` has a GPU of ``gpu_model``: sbatch refuses every such job with only
    "Requested node configuration is not available" (``--gpus=A100:1`` on the test cluster's a100, and
    ``--gpus=a100:1`` on a node whose GPU is declared without a model), so every GPU job of the run would fail at
    submission, three times each. The models are read as sinfo lists the nodes' GRES; where sinfo does not answer or
    lists no node, nothing is checked."""
    name = partition or (_partition_fields("", query) or {}).get("PartitionName", "")
    shown = query(["sinfo", "--noheader", "--Node", *(["--partition", name] if name else []), "--format", "%G"])
    if not (shown or "").strip():
        return
    models = gpu_models(shown)
    if gpu_model in models:
        return
    have = ", ".join(sorted(f"'{model}'" if model else "GPUs without a model" for model in models))
    way_out = ("set FASTSIM_GPU_MODEL to one of them as spelt there (case counts) or unset it to take any GPU, or "
               "FASTSIM_SLURM_GPU_PARTITION to a partition with that model") if models else \
        "set FASTSIM_SLURM_GPU_PARTITION to a partition with GPUs, or FASTSIM_NO_GPU=1 to train on CPU cores"
    raise ValueError(f"profiles/slurm: FASTSIM_GPU_MODEL={gpu_model}, but no node of {_partition_named(name)} has a "
                     f"GPU of that model (sinfo's GRES of its nodes: {have or 'no GPU'}), so sbatch would refuse every "
                     f"job asking for one: {way_out}")


def gpu_models(sinfo_gres: str) -> set[str]:
    """The GPU models in sinfo's ``%G`` lines (``gpu:a100:4(S:0-1),gpu:v100:2``; ``gpu:2`` a GPU declared without
    a model, given as ""; ``(null)`` none)."""
    models = set()
    for entry in re.split(r"[,\s]+", re.sub(r"\([^)]*\)", "", sinfo_gres)):  # sockets, "(S:0,1)", dropped first
        name, *rest = entry.split(":")
        if name == "gpu" and rest:
            models.add("" if len(rest) == 1 and rest[0].isdigit() else rest[0])
    return models


def most_threads(*limits: JobLimits) -> int | None:
    """The threads a job may run with where its rule may go to any of ``limits`` (Snakemake's ``max-threads`` is one
    number for all rules): the fewest cores known, or None where none is."""
    return _tightest(*limits).cpus


def _one_partition(name: str, environ: Mapping[str, str], query) -> tuple[JobLimits, list[str]] | None:
    """The limits of one partition, and the QOS whose limits were read for it."""
    fields = _partition_fields(name, query)
    if fields is None:
        return None
    nodes_cpus, nodes_mb = _largest_node(fields["PartitionName"], query)
    per_core = _number(fields.get("MaxMemPerCPU", ""))
    own = JobLimits(slurm_minutes(fields.get("MaxTime", "UNLIMITED")),
                    _smallest(_number(fields.get("MaxMemPerNode", "")), nodes_mb,
                              per_core * nodes_cpus if per_core and nodes_cpus else None),
                    _smallest(_number(fields.get("MaxCPUsPerNode", "")), nodes_cpus))
    accounting, qos = _accounting_limits(fields, environ, query)
    return _tightest(own, accounting), qos


#: sacctmgr's columns of the TRES caps one job must fit under: its own (``MaxTRES``), per node, and the totals of a
#: user's or a group's running jobs, which a job above them alone never fits either (pending for good with
#: ``QOSGrpMemLimit``, seen on the test cluster with ``GrpTRES=mem=1000``).
ASSOCIATION_CAPS = ("MaxTRES", "MaxTRESPerNode", "GrpTRES")
#: A QOS's cap of one account's running jobs holds the same way (``MaxCpuPerAccount``, seen on the test cluster).
QOS_CAPS = ("MaxTRES", "MaxTRESPerNode", "MaxTRESPerUser", "MaxTRESPerAccount", "GrpTRES")


def _accounting_limits(partition: Mapping[str, str], environ: Mapping[str, str], query) -> tuple[JobLimits, list[str]]:
    """The ``MaxWall`` and the TRES caps of the job's association, of its QOS (``FASTSIM_SLURM_QOS``, which the
    profile submits with, else the association's default) and of the partition's QOS, where SLURM enforces them,
    and those QOS's names; nothing where it keeps no accounting or enforces no limits (``scontrol show config``),
    or where ``sacctmgr`` does not answer."""
    config = dict(re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", query(["scontrol", "show", "config"]) or "", re.M))
    if config.get("AccountingStorageType", "accounting_storage/none").endswith("/none") or \
            "limits" not in config.get("AccountingStorageEnforce", ""):
        return JobLimits(), []
    cluster = config.get("ClusterName", "")
    account, association = _association(cluster, partition["PartitionName"], environ, query)
    default_qos, *caps = association or [""] * (3 + len(ASSOCIATION_CAPS))
    names = [name for name in (environ.get("FASTSIM_SLURM_QOS") or default_qos, partition.get("QoS", "N/A"))
             if name not in ("", "N/A")]
    columns = ",".join(("Name", "MaxWall", "MaxTRESMins", *QOS_CAPS))
    qos_rows = _sacctmgr(query, "qos", f"name={','.join(names)}", columns) if names else []
    group_caps = _account_group_caps(cluster, account, query) if association else []
    model = environ.get("FASTSIM_GPU_MODEL", "")
    return _tightest(*(_caps(*row, gpu_model=model) for row in [caps, *(row[1:] for row in qos_rows)]),
                     *(_tres_limits(total, model) for total in group_caps)), names


def _caps(max_wall: str, tres_minutes: str, *tres_caps: str, gpu_model: str = "") -> JobLimits:
    """A ``MaxWall`` (SLURM time, empty for none), a ``MaxTRESMins`` and TRES caps (sacctmgr's text of each) as one
    job's limits. Above its core-minutes a job waits for good too (``QOSMaxCpuMinutesPerJobLimit``: 2 cores for 40
    minutes under ``MaxTRESMins=cpu=60`` on the test cluster, while 1 core ran), and above its model's GPU-minutes
    (``QOSMaxGRESMinutesPerJob``: an a100 job of 60 minutes under ``gres/gpu:a100=30``, while 20 minutes ran)."""
    wall = JobLimits(runtime_min=slurm_minutes(max_wall) if max_wall else None)
    per_minute = _tres_limits(tres_minutes, gpu_model)
    minutes = JobLimits(cpu_minutes=per_minute.cpus, gpu_minutes=per_minute.gpus)
    return _tightest(wall, minutes, *(_tres_limits(caps, gpu_model) for caps in tres_caps))


def _association(cluster: str, partition: str, environ: Mapping[str, str], query) -> tuple[str, list[str] | None]:
    """The account a job of this user would run under (``FASTSIM_SLURM_ACCOUNT``, else the user's default account)
    and ``[DefaultQOS, MaxWall, MaxTRESMins, *ASSOCIATION_CAPS]`` of its association: on this ``cluster`` (one
    slurmdbd may keep several), for ``partition`` where one is, else for any. An account's ``Max*`` limits are copied
    into its users' associations by slurmdbd (seen on the test cluster), so this row holds them; its ``Grp*`` totals
    are not."""
    user = environ.get("USER") or _login_name()
    account = environ.get("FASTSIM_SLURM_ACCOUNT") or \
        next((row[0] for row in _sacctmgr(query, "user", f"name={user}", "DefaultAccount")), "")
    if not user or not account:
        return account, None
    columns = ",".join(("Cluster", "Partition", "DefaultQOS", "MaxWall", "MaxTRESMins", *ASSOCIATION_CAPS))
    rows = _sacctmgr(query, "assoc", f"user={user}", f"account={account}", columns)
    here = [row[1:] for row in rows if row[0] == cluster or not cluster]
    chosen = [row for row in here if row[0] == partition] or [row for row in here if not row[0]]
    return account, chosen[0][1:] if chosen else None


def _account_group_caps(cluster: str, account: str, query) -> list[str]:
    """The ``GrpTRES`` of ``account`` and of each account above it up to ``root``: the total of all their users'
    running jobs, which a job above it alone never fits under (pending for good with ``AssocGrpCpuLimit``, seen on
    the test cluster with ``GrpTRES=cpu=1`` on the parent account). One ``sacctmgr`` call lists every account's
    association on this cluster (``user=`` empty: the accounts' rows, not the users'; a site's slurmdbd may keep
    thousands), walked up by ``ParentName``."""
    where = ["user=", *([f"cluster={cluster}"] if cluster else [])]
    rows = _sacctmgr(query, "assoc", *where, "Cluster,Account,User,ParentName,GrpTRES")
    accounts = {name: (parent, caps) for row_cluster, name, user, parent, caps in rows
                if not user and (row_cluster == cluster or not cluster)}
    caps, seen = [], set()
    while account in accounts and account not in seen:
        seen.add(account)
        account, own = accounts[account]
        caps.append(own)
    return caps


def _login_name() -> str:
    """The user's name, or "" in a container whose user id has no name (getpass raises there)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _sacctmgr(query, entity: str, *where_and_format: str) -> list[list[str]]:
    """Rows of ``sacctmgr show <entity> where <conditions> format=<columns>`` (the last argument), split on |."""
    *conditions, columns = where_and_format
    shown = query(["sacctmgr", "--noheader", "--parsable2", "show", entity, "where", *conditions, f"format={columns}"])
    return [line.split("|") for line in (shown or "").splitlines() if line.strip()]


#: MB per unit of a TRES memory value, as sacctmgr prints them (``mem=1000M``, ``mem=256G``).
MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def _tres_limits(tres: str, gpu_model: str = "") -> JobLimits:
    """A ``MaxTRES``-style ``cpu=64,mem=256G,node=1,gres/gpu=4`` (empty for none) as memory, core and GPU limits.
    A job that asks for a GPU model (``--gpus=a100:1``: ``gpu_model``) is held to that model's own count as well
    (``gres/gpu:a100=0``: pending for good with ``AssocGrpGRES`` on the test cluster, its GPU declared as an a100);
    one that asks for any GPU is not (it ran there under the same limit), so other models' counts are not read.
    Type names may hold dashes and dots (``gres/gpu:a100-sxm4-80gb``); sacctmgr prints them as gres.conf spells
    them, and sbatch matches the model's case exactly (``--gpus=A100:1`` was refused there). Memory is printed in
    the largest unit that holds it in two decimals (``mem=1536M`` as ``mem=1.50G``, 1572864M as ``1.50T``; 1365M
    as set), so a value may have decimals: read as ``1`` it had held every job to 1 MB."""
    values = {key: (float(number), unit)
              for key, number, unit in re.findall(r"([\w/:.-]+)=(\d+(?:\.\d+)?)([KMGTP]?)", tres)}
    memory = values.get("mem")
    gpus = [int(values[key][0]) for key in ("gres/gpu", *([f"gres/gpu:{gpu_model}"] if gpu_model else []))
            if key in values]
    return JobLimits(mem_mb=round(memory[0] * MB_PER_UNIT[memory[1]]) if memory else None,
                     cpus=int(values["cpu"][0]) if "cpu" in values else None,
                     gpus=min(gpus) if gpus else None)


def _tightest(*limits: JobLimits) -> JobLimits:
    """Each limit the smallest of those known (a job must satisfy all of them)."""
    return JobLimits(*map(_smallest, *map(astuple, limits)))


def slurm_minutes(text: str) -> int | None:
    """SLURM's time format -> whole minutes (None: ``UNLIMITED``). As sbatch's ``--time`` reads it: ``minutes``,
    ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes``,
    ``days-hours:minutes:seconds``."""
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text)
    if match is None:
        raise ValueError(f"SLURM time {text!r}: expected [days-]hours:minutes:seconds, minutes[:seconds] or UNLIMITED")
    days, parts = match.group(1), [int(part) for part in match.group(2).split(":")]
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return int(days) * 1440 + hours * 60 + minutes + seconds // 60
    if len(parts) == 3:
        return parts[0] * 60 + parts[1] + parts[2] // 60
    return parts[0] + (parts[1] // 60 if len(parts) == 2 else 0)


def _partition_fields(partition: str, query) -> dict | None:
    """``scontrol show partition``'s fields of ``partition``, or of the one marked ``Default=YES``."""
    shown = query(["scontrol", "show", "partition", *([partition] if partition else []), "--oneliner"])
    if shown is None:
        return None
    lines = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in shown.splitlines() if "PartitionName=" in line]
    chosen = [fields for fields in lines if fields["PartitionName"] == partition or
              (not partition and fields.get("Default") == "YES")]
    return chosen[0] if chosen else None


def _largest_node(partition: str, query) -> tuple[int | None, int | None]:
    """The most cores and the most memory (MB) of a node of ``partition``. A node whose ``RealMemory`` is not
    configured reports SLURM's default of 1 MB, which says nothing: held to it, every job would ask for 1 MB."""
    shown = query(["sinfo", "--noheader", "--Node", "--partition", partition, "--format", "%c %m"]) or ""
    nodes = [tuple(map(int, pair)) for pair in re.findall(r"^\s*(\d+)\s+(\d+)", shown, re.M)]
    memories = [memory for _, memory in nodes if memory > UNCONFIGURED_MEMORY_MB]
    return (max(c for c, _ in nodes) if nodes else None), (max(memories) if memories else None)


def _query(command: list[str]) -> str | None:
    """A batch system command's output, or None where it is missing, fails or does not answer in time. Asked once
    per process: the profile reads the CPU and the GPU partition's limits, and their association is the same
    (each sacctmgr call takes ~0.2 s on the test cluster)."""
    return _query_once(tuple(command))


@functools.lru_cache(maxsize=None)
def _query_once(command: tuple[str, ...]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "")
    if not value:
        return None
    if not value.isdigit() or int(value) == 0:
        unit = {"RUNTIME": "minutes", "MEM_MB": "MB", "CPUS": "cores"}[name.rsplit("MAX_", 1)[1]]
        raise ValueError(f"{name}={value!r}: expected a whole number above 0 ({unit})")
    return int(value)


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _largest(*values: int | None) -> int | None:
    """The most any of several partitions allows; None (no limit) where one has none."""
    return None if None in values else max(values)


def _smallest(*values: int | None) -> int | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def _partition_named(partition: str) -> str:
    """How a line names ``partition`` (empty: the cluster's default one)."""
    return f"partition {partition}" if partition else "the default partition"


def _said(value: int | None, unit: str) -> str:
    return f"{value} {unit}" if value is not None else {"min": "any time", "MB": "any memory"}.get(unit, f"any {unit}")
