"""A throw-away personal HTCondor pool on localhost, for the live HTCondor test.

Debian bookworm has no HTCondor package, so the pool runs Debian trixie's `condor` (23.9) in a chroot,
built once with debootstrap and kept in ``CHROOT`` (~400 MB, 30-80 s to build; root, debootstrap and a Debian
mirror needed). Its daemons run as an unprivileged user of the chroot, as a personal pool does; they and
every job see the checkout, the venv's base Python and the test's folders at the paths they have outside
(bind mounts), so the head process runs in the chroot exactly as on a submit node.

A job submitted from under a folder named ``sandboxed`` runs as on CERN's lxbatch, in its own directory on
the worker with file transfer (a schedd transform sets ``ShouldTransferFiles = "YES"``); any other runs in its
submit directory, as in a default personal pool. Stopping kills exactly the processes in the chroot whose
environment names this pool's config, and removes the mounts this object made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

CHROOT = Path(os.environ.get("FASTSIM_HTCONDOR_CHROOT", "/var/cache/fastsim-tests/htcondor-trixie"))
MIRROR = os.environ.get("FASTSIM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "trixie"  # the oldest Debian release with an HTCondor package since bookworm dropped it
USER = "fastsim"
HOME = Path("/home") / USER

_CONFIG = """\
RELEASE_DIR = /usr
LOCAL_DIR = {local}
RUN = $(LOCAL_DIR)/run
LOG = $(LOCAL_DIR)/log
LOCK = $(LOCAL_DIR)/lock
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
CRED_STORE_DIR = $(LOCAL_DIR)/cred_dir
LIBEXEC = $(RELEASE_DIR)/libexec/condor
use ROLE : Personal
use FEATURE : PartitionableSlot
NETWORK_INTERFACE = 127.0.0.1
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = $(CONDOR_HOST):0
COLLECTOR_ADDRESS_FILE = $(LOG)/.collector_address
USE_SHARED_PORT = False
# pip's bindings (24.x) talking to these 23.9 daemons: FS alone failed ("Directory name doesn't match")
SEC_DEFAULT_AUTHENTICATION_METHODS = CLAIMTOBE, FS
SEC_CLIENT_AUTHENTICATION_METHODS = CLAIMTOBE, FS
ALLOW_WRITE = *
ALLOW_READ = *
NUM_CPUS = 2
# less than the training rules' 32 GB (and 64, 96 GB on retries), as lxbatch's slots have less than their last
# attempts: the profile holds every request to the largest slot (tests/test_cluster_htcondor.py)
MEMORY = 24000
SCHEDD_INTERVAL = 5
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 2
UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
"""

SANDBOXED = "sandboxed"
"""A job submitted from under a folder of this name runs as on CERN's lxbatch (``_SANDBOX``)."""

_SANDBOX = f"""\
# as CERN's lxbatch: the job runs in its own directory on the worker, with file transfer
JOB_TRANSFORM_NAMES = Sandbox
JOB_TRANSFORM_Sandbox @=end
   REQUIREMENTS regexp("/{SANDBOXED}/", Iwd)
   SET ShouldTransferFiles "YES"
   SET WhenToTransferOutput "ON_EXIT"
@end
"""


@dataclass
class HTCondorPool:
    """A running personal pool: the chroot, its config (a path inside the chroot) and the mounts to undo."""

    root: Path
    config: Path
    mounts: list[Path] = field(default_factory=list)

    def run(self, command: list[str], *, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """``command`` as the pool's user inside the chroot, in ``cwd`` (a path mounted from outside)."""
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(HOME), "LANG": "C.UTF-8",
                       "CONDOR_CONFIG": str(self.config), **(env or {})}
        chrooted = ["chroot", f"--userspec={USER}:{USER}", str(self.root), "env", "-i",
                    *(f"{key}={value}" for key, value in environment.items()),
                    "sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *command]
        return subprocess.run(chrooted, capture_output=True, text=True, timeout=timeout)

    def history(self, *attributes: str, submitted_from: Path) -> list[list[str]]:
        """``attributes`` of the finished jobs submitted from ``submitted_from`` (condor_history), oldest first."""
        return self._jobs(["condor_history", "-forwards"], attributes, submitted_from)

    def queue(self, *attributes: str, submitted_from: Path) -> list[list[str]]:
        """``attributes`` of the queued jobs (idle, running, held) submitted from ``submitted_from`` (condor_q)."""
        return self._jobs(["condor_q"], attributes, submitted_from)

    def _jobs(self, tool: list[str], attributes: tuple[str, ...], submitted_from: Path) -> list[list[str]]:
        """One row per job of this submit directory only: the other tests of a pytest worker share its pool."""
        result = self.run([*tool, "-constraint", f'Iwd == "{submitted_from}"', "-af", *attributes], cwd=submitted_from)
        assert result.returncode == 0, result.stderr
        return [line.split() for line in result.stdout.splitlines() if line.strip()]

    def share(self, path: Path, *, writable: bool = False) -> None:
        """Mount ``path`` (a folder outside) at the same path inside; ``writable`` hands it to the pool's user."""
        if writable:
            uid = int(_chroot_output(self.root, ["id", "-u", USER]))
            for entry in [path, *path.rglob("*")]:
                os.chown(entry, uid, uid, follow_symlinks=False)
        self._bind(path, self.root / path.relative_to("/"), "--bind")

    def stop(self) -> None:
        """Kill the pool's processes (daemons, head processes, jobs), then undo its mounts, newest first."""
        _kill_pool_processes(self.root, self.config)
        for target in reversed(self.mounts):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True)
        self.mounts.clear()

    def daemon_logs(self) -> str:
        """The tails of the daemons' logs, for assertion messages."""
        logs = sorted((self.root / self.config.parent.relative_to("/") / "local" / "log").glob("*Log"))
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs)

    def _bind(self, source: Path, target: Path, *options: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *options, str(source), str(target)], check=True, capture_output=True)
        self.mounts.append(target)


def unavailable_reason() -> str | None:
    """Why no pool can be started here (None: it can)."""
    if os.geteuid() != 0:
        return "a personal HTCondor in a chroot needs root (mounts, chroot)"
    if Path(sys.base_prefix) in (Path("/usr"), Path("/")):
        return f"the venv's base Python lies in {sys.base_prefix}, which the chroot's own /usr would hide"
    if not (CHROOT / "usr/sbin/condor_master").exists() and not shutil.which("debootstrap") and not shutil.which("apt-get"):
        return f"no chroot at {CHROOT} and neither debootstrap nor apt-get to build one"
    return None


def start_pool(checkout: Path, *, timeout_s: float = 120) -> HTCondorPool:
    """Start a personal pool in the (built on first use) chroot; the checkout and the venv's Python are shared."""
    root = ensure_chroot()
    pool = HTCondorPool(root=root, config=HOME / f"condor-{os.getpid()}-{time.monotonic_ns()}" / "condor_config")
    try:
        pool._bind(Path("/proc"), root / "proc", "-t", "proc")
        pool._bind(Path("/dev"), root / "dev", "--bind")
        for shared in _outside_paths(checkout):
            pool.share(shared)
        _write_config(pool)
        started = pool.run(["/usr/sbin/condor_master"], cwd=HOME)
        if started.returncode != 0:
            raise RuntimeError(f"condor_master did not start:\n{started.stdout}\n{started.stderr}")
        _wait_until_ready(pool, timeout_s)
    except BaseException:
        pool.stop()
        raise
    return pool


def _outside_paths(checkout: Path) -> list[Path]:
    """The checkout, the venv (when it lies elsewhere) and the venv's base Python: what the jobs run."""
    paths = [checkout.resolve()]
    for path in (Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()):
        if not any(path.is_relative_to(shared) for shared in paths):
            paths.append(path)
    return paths


def ensure_chroot() -> Path:
    """The trixie chroot with HTCondor, built once (one pytest worker builds, another waits) and renamed when whole."""
    CHROOT.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CHROOT) + ".lock"):
        if not (CHROOT / "usr/sbin/condor_master").exists():
            _build_chroot()
    return CHROOT


def _build_chroot() -> None:
    """debootstrap trixie (minbase), install `condor` and add the pool's user; a failed build leaves nothing."""
    if not shutil.which("debootstrap"):
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "debootstrap"]):
            _checked(command)
    building = CHROOT.with_name(CHROOT.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        _checked(["debootstrap", "--variant=minbase", SUITE, str(building), MIRROR])
        (building / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
        shutil.copy("/etc/resolv.conf", building / "etc/resolv.conf")
        _checked(["mount", "-t", "proc", "proc", str(building / "proc")])
        try:
            for command in (["apt-get", "update", "-qq"],
                            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "condor"],
                            ["apt-get", "clean"],
                            ["useradd", "--create-home", "--shell", "/bin/sh", USER]):
                _checked(["chroot", str(building), *command])
        finally:
            subprocess.run(["umount", str(building / "proc")], capture_output=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    (building / "root").chmod(0o755)  # a base Python under /root (pyenv) is reached through it
    (building / "tmp").chmod(0o1777)
    building.rename(CHROOT)


def _write_config(pool: HTCondorPool) -> None:
    local = pool.config.parent / "local"
    inside = pool.root / local.relative_to("/")
    for folder in ("log", "run", "lock", "spool", "execute", "cred_dir"):
        (inside / folder).mkdir(parents=True)
    (inside.parent / "condor_config").write_text(_CONFIG.format(local=local) + _SANDBOX)
    _chroot_output(pool.root, ["chown", "-R", f"{USER}:{USER}", str(local.parent)])


def _wait_until_ready(pool: HTCondorPool, timeout_s: float) -> None:
    """Until the slot is advertised and the schedd answers a query."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        slots = pool.run(["condor_status", "-af", "Name"], cwd=HOME)
        queue = pool.run(["condor_q", "-totals"], cwd=HOME)
        if slots.returncode == 0 and slots.stdout.strip() and queue.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError(f"the personal HTCondor pool was not ready after {timeout_s} s\n{pool.daemon_logs()}")


def _kill_pool_processes(root: Path, config: Path) -> None:
    """SIGKILL every process in ``root`` whose environment names ``config``: the pool's daemons, the head processes
    run against it and their jobs (getenv), and nothing of another pool that a second pytest worker runs there."""
    marker = f"CONDOR_CONFIG={config}".encode()
    for attempt in range(50):
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "root") == str(root) and marker in (entry / "environ").read_bytes().split(b"\0"):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"processes of the pool {config} survived SIGKILL")


def _chroot_output(root: Path, command: list[str]) -> str:
    return _checked(["chroot", str(root), *command])


def _checked(command: list[str]) -> str:
    """Run ``command`` (as root, non-interactive apt); its stdout, or an error that shows what it said."""
    result = subprocess.run(command, capture_output=True, text=True,
                            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if result.returncode != 0:
        raise RuntimeError(f"building/starting the HTCondor test pool: {' '.join(command)} failed "
                           f"(status {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout.strip()
