"""Atomic outputs: a hard-killed writer's temporary is removed by the next write of the same path, and
nothing that may belong to a live writer (this host or another one on the shared filesystem) is, except
by a workflow job: the only live writer of its outputs."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline_steps.common.atomic import atomic_dir, atomic_path, write_text_atomic
from tests.conftest import REPO

#: A writer killed by SIGKILL inside atomic_path / atomic_dir: no `finally` runs, the temporary stays.
KILLED_WRITER = """
import os, signal, sys
from pipeline_steps.common.atomic import atomic_dir, atomic_path
with atomic_path(sys.argv[1]) as tmp, atomic_dir(sys.argv[2]) as tmp_dir:
    tmp.write_text("half a table")
    (tmp_dir / "part.txt").write_text("half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _hidden(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_the_next_write_removes_the_temporaries_of_a_killed_writer(tmp_path):
    final, final_dir = tmp_path / "0.parquet", tmp_path / "checkpoint"
    killed = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(final), str(final_dir)], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert killed.wait() == -9
    left = _hidden(tmp_path)
    assert len(left) == 2 and all(f"_{killed.pid}." in name for name in left), left
    write_text_atomic(final, "table")
    with atomic_dir(final_dir) as tmp_dir:
        (tmp_dir / "part.txt").write_text("checkpoint")
    assert _hidden(tmp_path) == [] and final.read_text() == "table"
    assert (final_dir / "part.txt").read_text() == "checkpoint"


def test_temporaries_of_live_or_foreign_writers_and_of_other_outputs_are_kept(tmp_path):
    final = tmp_path / "0.parquet"
    with atomic_path(final) as live:  # this process: alive
        writer = live.name[len(".0.parquet."):].split(".")[0]  # <host>_<pid namespace>_<pid>
    host_and_namespace = writer.rsplit("_", 1)[0]
    assert writer == f"{host_and_namespace}_{os.getpid()}"
    dead_pid = _exited_pid()
    kept = [
        f".0.parquet.{host_and_namespace}_{os.getpid()}.abcd1234.tmp.parquet",  # a live writer on this host
        f".0.parquet.othernode_{host_and_namespace.rsplit('_', 1)[1]}_{dead_pid}.abcd1234.tmp.parquet",  # other host
        f".0.parquet.{host_and_namespace.rsplit('_', 1)[0]}_1_{dead_pid}.abcd1234.tmp.parquet",  # other container
        ".0.parquet.x8k2m1q0.tmp.parquet",  # older naming: no writer recorded
        f".0.parquet.1.parquet.{host_and_namespace}_{dead_pid}.abcd1234.tmp.parquet",  # another output's
    ]
    stale = f".0.parquet.{host_and_namespace}_{dead_pid}.abcd1234.tmp.parquet"
    for name in [*kept, stale]:
        (tmp_path / name).write_text("partial")
    write_text_atomic(final, "table")
    assert _hidden(tmp_path) == sorted(kept)


def test_a_workflow_job_removes_the_temporaries_of_any_earlier_writer_of_its_outputs(tmp_path, monkeypatch):
    """A workflow job is its outputs' only live writer (``claim_sole_writer``): the leftovers of an attempt killed
    on another node (the SLURM profile's retry after an OOM kill lands elsewhere) had stayed for good, and so had
    one whose pid an unrelated process reuses. Its own temporaries, another output's and an older naming stay."""
    import pipeline_steps.common.atomic as atomic

    final = tmp_path / "generated.root"
    host, namespace = atomic._this_host()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as unrelated:
        try:
            removed = [
                f".generated.root.othernode_{namespace}_{os.getpid()}.abcd_123.tmp.root",  # another node
                f".generated.root.{host}_1_{unrelated.pid}.abcd1234.tmp.root",  # another container
                f".generated.root.{host}_{namespace}_{unrelated.pid}.abcd1234.tmp.root",  # a reused pid
            ]
            kept = [
                f".generated.root.{host}_{namespace}_{os.getpid()}.abcd1234.tmp.root",  # this process's own
                f".generated.root.json.othernode_{namespace}_42.abcd1234.tmp.root",  # another output's
                ".generated.root.x8k2m1q0.tmp.root",  # older naming: no writer recorded
            ]
            for name in [*removed, *kept]:
                (tmp_path / name).write_text("partial")
            (tmp_path / f".generated.root.othernode_{namespace}_7.abcd1234.tmp").mkdir()  # a folder's, kept
            write_text_atomic(final, "before the claim")
            assert len(_hidden(tmp_path)) == 7
            monkeypatch.setattr(atomic, "_sole_writer", False)  # restored after the test
            atomic.claim_sole_writer()
            write_text_atomic(final, "rows")
            assert _hidden(tmp_path) == sorted([*kept, f".generated.root.othernode_{namespace}_7.abcd1234.tmp"])
            assert final.read_text() == "rows" and unrelated.poll() is None
        finally:
            unrelated.kill()


def _exited_pid() -> int:
    """The pid of a process that has finished (and been reaped), as a killed writer's would be."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_save_figure_writes_the_png_in_one_step_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pytest

    from pipeline_steps.common.figures import save_figure

    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    save_figure(figure, tmp_path / "loss.png", dpi=50)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(figure.number) and _hidden(tmp_path) == []

    broken, _ = plt.subplots()
    with pytest.raises(ValueError):
        save_figure(broken, tmp_path / "broken.png", format="no-such-format")
    assert not (tmp_path / "broken.png").exists() and _hidden(tmp_path) == []
    assert not plt.fignum_exists(broken.number)


def test_an_os_error_while_writing_names_the_output_and_leaves_nothing(tmp_path):
    """A full disk had said only "[Errno 28] No space left on device"; a read-only folder named the
    hidden temporary file."""
    import errno

    import pytest

    from pipeline_steps.common.atomic import atomic_path

    final = tmp_path / "results" / "generated.root"
    with pytest.raises(OSError, match=r"\[Errno 28\] while writing .*generated\.root: No space left on device") as info:
        with atomic_path(final):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and list(final.parent.iterdir()) == []
    with pytest.raises(ValueError):  # anything else passes unchanged
        with atomic_path(final):
            raise ValueError("not an OS error")


#: A rule's script stopped by SIGTERM (a batch time limit, scancel) inside its step and inside atomic_path.
STOPPED_JOB = """
import os, signal, sys, time
from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.logs import start_job, step_logging
start_job(sys.argv[2])
with step_logging(sys.argv[2]), atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half a table")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the handler runs at the next bytecode: the sleep is cut short
    tmp.write_text("whole table")
"""


def test_a_job_stopped_by_sigterm_removes_its_temporaries_and_says_so_in_its_log(tmp_path):
    """Python's default ends the process at SIGTERM without running any ``finally``: the temporary stayed, and
    only the next write of the same path on the same host removed it (a cluster's rerun lands elsewhere)."""
    script, final, log = tmp_path / "job.py", tmp_path / "0.parquet", tmp_path / "job.log"
    script.write_text(STOPPED_JOB)
    job = subprocess.run([sys.executable, str(script), str(final), str(log)], cwd=REPO, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    assert job.returncode == 143, job.stderr
    assert _hidden(tmp_path) == [] and not final.exists()
    text = log.read_text()
    assert "step stopped by SIGTERM" in text and "Traceback" not in text, text
