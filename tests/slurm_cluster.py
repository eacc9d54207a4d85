"""A throw-away one-node SLURM cluster on localhost, for the live cluster test.

Everything lives under one folder (munge key and socket, slurm.conf, state, spool, logs), on free
ports, so it never touches a SLURM or munge the machine may already run. No systemd: munged,
slurmctld and slurmd are started in the foreground as child processes and stopped by their pids,
exactly those and nothing else. Client commands (sbatch, squeue, scontrol) find this cluster
through ``SLURM_CONF`` in ``cluster.env``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Debian packages of the daemons and client commands (bookworm: SLURM 22.05, munge 0.5.15).
DEBIAN_PACKAGES = ("slurm-wlm", "munge")
REQUIRED_COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun")
# With accounting: slurmdbd and its database (bookworm: MariaDB 10.11).
ACCOUNTING_PACKAGES = ("slurmdbd", "mariadb-server")
ACCOUNTING_COMMANDS = ("slurmdbd", "mariadbd", "mariadb-install-db", "sacctmgr")
#: The account the cluster's user runs under when it keeps accounting.
ACCOUNT = "fastsim"


@dataclass
class SlurmCluster:
    """A running one-node cluster: its folder, the environment its clients need, its daemons."""

    root: Path
    conf: Path
    partition: str
    node: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def scontrol(self, *args: str) -> str:
        return _check_output(["scontrol", *args], self.env)

    def squeue_all(self) -> str:
        """Every job the controller still remembers (finished ones for MinJobAge seconds)."""
        return _check_output(["squeue", "--states=all", "--noheader", "--format=%i|%j|%T|%k|%P"], self.env)

    def stop(self) -> None:
        """Stop the daemons this object started (by pid, newest first) and wait for them."""
        for name in reversed(list(self.processes)):
            _terminate(self.processes[name])
        self.processes.clear()

    def sacctmgr(self, *args: str) -> str:
        """``sacctmgr -i`` (no confirmation) against this cluster's slurmdbd."""
        return _check_output(["sacctmgr", "-i", *args], self.env)

    def daemon_logs(self) -> str:
        """The tails of the daemon logs, for assertion messages."""
        parts = []
        for log in sorted(self.root.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def ensure_slurm_installed(commands: tuple[str, ...] = REQUIRED_COMMANDS,
                           packages: tuple[str, ...] = DEBIAN_PACKAGES) -> None:
    """Install ``packages`` from Debian when one of ``commands`` is missing (CI machines may lack them)."""
    if all(shutil.which(command) or shutil.which(f"/usr/sbin/{command}") for command in commands):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"SLURM/munge commands {commands} are missing and cannot be installed here "
            f"(needs root and apt-get): install {' '.join(packages)}"
        )
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=environment,
        capture_output=True,
    )


def start_cluster(root: Path, *, partition: str = "debug", min_job_age_s: int = 300, timeout_s: float = 60,
                  accounting: bool = False) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under ``root`` and wait until the node is idle.

    MinJobAge is how long the controller keeps a finished job: the SLURM profile's squeue status
    command only sees a job's final state within it, hence the 300 s default. With ``accounting``, a
    MariaDB and slurmdbd start first, SLURM enforces associations, limits and QOS, and the user running
    this has an association under :data:`ACCOUNT`, its default QOS ``normal`` (of no limits).
    """
    ensure_slurm_installed()
    if accounting:
        ensure_slurm_installed(ACCOUNTING_COMMANDS, ACCOUNTING_PACKAGES)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged wants the socket's folder searchable by all
    node = socket.gethostname().split(".")[0]
    for folder in ("state", "spool"):
        (root / folder).mkdir(exist_ok=True)
    conf = root / "slurm.conf"
    ctld_port, slurmd_port, dbd_port, database_port = _free_ports(4)
    text = slurm_conf(root, node=node, partition=partition, min_job_age_s=min_job_age_s, ports=[ctld_port, slurmd_port])
    conf.write_text(_with_accounting(text, root, dbd_port) if accounting else text)
    (root / "plugstack.conf").write_text("")
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=f"{_srun_shim(root, conf)}{os.pathsep}{os.environ['PATH']}")
    for key in ("SLURM_JOB_ID", "SLURM_JOBID", "SBATCH_PARTITION", "SLURM_PARTITION", "SBATCH_ACCOUNT"):
        env.pop(key, None)
    cluster = SlurmCluster(root=root, conf=conf, partition=partition, node=node, env=env)
    try:
        _start_munged(cluster)
        if accounting:
            _start_slurmdbd(cluster, dbd_port, database_port, timeout_s)
        _start_daemon(cluster, "slurmctld", ["slurmctld", "-D", "-f", str(conf)])
        _start_daemon(cluster, "slurmd", ["slurmd", "-D", "-N", node, "-f", str(conf)])
        _wait_for_idle_node(cluster, timeout_s)
        if accounting:
            cluster.sacctmgr("add", "account", ACCOUNT)
            cluster.sacctmgr("add", "user", getpass.getuser(), f"account={ACCOUNT}", f"defaultaccount={ACCOUNT}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def slurm_conf(root: Path, *, node: str, partition: str, min_job_age_s: int, ports: list[int]) -> str:
    """slurm.conf of a one-node cluster without accounting, cgroups or systemd.

    The node declares the machine's CPUs and memory (MB); both are what sbatch requests are
    checked against, so a job asking for more is rejected, as on a real cluster.
    """
    cpus = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    ctld_port, slurmd_port = ports
    return "\n".join(
        [
            "ClusterName=fastsimtest",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={root / 'munge.socket'}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'slurmd.log'}",
            f"PlugStackConfig={root / 'plugstack.conf'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SchedulerType=sched/backfill",
            "ReturnToService=2",
            f"MinJobAge={min_job_age_s}",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            "Waittime=0",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _with_accounting(conf_text: str, root: Path, dbd_port: int) -> str:
    """slurm.conf's lines for a slurmdbd on ``dbd_port``, enforcing what real clusters enforce; the munge socket
    (AccountingStoragePass) is this cluster's, as for its other connections."""
    return conf_text.replace("AccountingStorageType=accounting_storage/none\n", "\n".join([
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=127.0.0.1",
        f"AccountingStoragePort={dbd_port}",
        f"AccountingStoragePass={root / 'munge.socket'}",
        "AccountingStorageEnforce=associations,limits,qos",
        # so a limit can name GPUs (gres/gpu=0) and a model's own (gres/gpu:a100=0), though the node has none
        "AccountingStorageTRES=gres/gpu,gres/gpu:a100",
        "",
    ]))


def _start_slurmdbd(cluster: SlurmCluster, dbd_port: int, database_port: int, timeout_s: float) -> None:
    """A MariaDB of its own (no passwords: it listens on 127.0.0.1 only) and slurmdbd on it, with this cluster
    registered, as slurmctld needs at its start."""
    root = cluster.root
    subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={root / 'database'}", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True)
    _start_daemon(cluster, "mariadbd", ["mariadbd", "--user=root", f"--datadir={root / 'database'}",
                                        f"--socket={root / 'mariadb.socket'}", f"--port={database_port}",
                                        "--bind-address=127.0.0.1", "--skip-grant-tables",
                                        f"--pid-file={root / 'mariadbd.pid'}", f"--log-error={root / 'mariadbd.log'}"])
    _wait_for(lambda: (root / "mariadb.socket").exists(), timeout_s, "MariaDB did not create its socket", cluster)
    dbd_conf = root / "slurmdbd.conf"
    dbd_conf.write_text("\n".join([
        "AuthType=auth/munge", f"AuthInfo=socket={root / 'munge.socket'}", "DbdHost=localhost", "DbdAddr=127.0.0.1",
        f"DbdPort={dbd_port}", "SlurmUser=root", "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1",
        f"StoragePort={database_port}", "StorageUser=root", "StorageLoc=slurm_acct_db",
        f"PidFile={root / 'slurmdbd.pid'}", f"LogFile={root / 'slurmdbd.log'}", "",
    ]))
    dbd_conf.chmod(0o600)  # it holds the database's credentials: slurmdbd wants it readable by its user only
    cluster.env["SLURMDBD_CONF"] = str(dbd_conf)
    _start_daemon(cluster, "slurmdbd", ["slurmdbd", "-D"])

    def registered() -> bool:
        try:
            cluster.sacctmgr("add", "cluster", "fastsimtest")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False  # slurmdbd not listening yet
        return True

    _wait_for(registered, timeout_s, "slurmdbd did not answer", cluster)


def _srun_shim(root: Path, conf: Path) -> Path:
    """A folder with an ``srun`` that finds this cluster's slurm.conf.

    Inside a job, snakemake-executor-plugin-slurm-jobstep drops every SLURM_* variable but the job
    ids before calling srun, SLURM_CONF included; a real cluster keeps slurm.conf at the default
    path (or runs configless), which this throw-away cluster must not touch. PATH survives, so
    the real srun is reached through this two-line wrapper.
    """
    folder = root / "bin"
    folder.mkdir(exist_ok=True)
    real_srun = shutil.which("srun") or "/usr/bin/srun"
    shim = folder / "srun"
    shim.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{real_srun}" "$@"\n')
    shim.chmod(0o755)
    return folder


def _start_munged(cluster: SlurmCluster) -> None:
    key = cluster.root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    command = [
        "munged",
        "--foreground",
        "--force",
        f"--socket={cluster.root / 'munge.socket'}",
        f"--key-file={key}",
        f"--log-file={cluster.root / 'munged.log'}",
        f"--pid-file={cluster.root / 'munged.pid'}",
        f"--seed-file={cluster.root / 'munged.seed'}",
    ]
    _start_daemon(cluster, "munged", command)
    _wait_for(lambda: (cluster.root / "munge.socket").exists(), 10, "munged did not create its socket", cluster)


def _start_daemon(cluster: SlurmCluster, name: str, command: list[str]) -> None:
    executable = shutil.which(command[0]) or f"/usr/sbin/{command[0]}"
    output = open(cluster.root / f"{name}.out", "wb")  # noqa: SIM115 - kept open for the daemon's life
    cluster.processes[name] = subprocess.Popen(
        [executable, *command[1:]],
        stdout=output,
        stderr=subprocess.STDOUT,
        env=cluster.env,
        start_new_session=True,  # a Ctrl-C of pytest must not reach the daemons before stop() does
    )


def _wait_for_idle_node(cluster: SlurmCluster, timeout_s: float) -> None:
    def node_idle() -> bool:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{cluster.daemon_logs()}")
        try:
            state = cluster.scontrol("show", "node", cluster.node)
        except subprocess.CalledProcessError:
            return False
        return "State=IDLE" in state

    _wait_for(node_idle, timeout_s, f"node {cluster.node} never became IDLE", cluster)


def _wait_for(predicate, timeout_s: float, message: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{message} within {timeout_s} s:\n{cluster.daemon_logs()}")


def _terminate(process: subprocess.Popen, grace_s: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _check_output(command: list[str], env: dict[str, str]) -> str:
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=30).stdout
