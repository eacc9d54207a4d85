"""The local run's scheduler without Snakemake's job rate limiter (pipeline_steps/local_scheduler.py)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline_steps.local_scheduler import SNAKEMAKE_DEFAULT_RATE, unthrottle_local_scheduler

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JOBS, DEFAULT_SECONDS = SNAKEMAKE_DEFAULT_RATE


def _workflow(max_jobs, timespan, local=True):
    limiter = SimpleNamespace(max_jobs=max_jobs, timespan=timespan)
    return SimpleNamespace(scheduler=SimpleNamespace(job_rate_limiter=limiter), local_exec=local)


def test_the_default_limit_of_a_local_run_goes_and_says_so():
    workflow, stream = _workflow(DEFAULT_JOBS, DEFAULT_SECONDS), io.StringIO()
    assert unthrottle_local_scheduler(workflow, stream) is True
    assert workflow.scheduler.job_rate_limiter is None
    assert "job rate limit" in stream.getvalue()


@pytest.mark.parametrize("max_jobs, timespan, local", [(DEFAULT_JOBS, DEFAULT_SECONDS, False),
                                                       (DEFAULT_JOBS // 10, DEFAULT_SECONDS, True),
                                                       (DEFAULT_JOBS, 60 * DEFAULT_SECONDS, True)])
def test_cluster_runs_and_chosen_limits_keep_their_limiter(max_jobs, timespan, local):
    workflow, stream = _workflow(max_jobs, timespan, local), io.StringIO()
    limiter = workflow.scheduler.job_rate_limiter
    assert unthrottle_local_scheduler(workflow, stream) is False
    assert workflow.scheduler.job_rate_limiter is limiter
    assert stream.getvalue() == ""


def test_a_scheduler_without_the_attribute_is_left_alone_with_a_line():
    workflow, stream = SimpleNamespace(scheduler=SimpleNamespace(), local_exec=True), io.StringIO()
    assert unthrottle_local_scheduler(workflow, stream) is False
    assert not hasattr(workflow.scheduler, "job_rate_limiter")
    assert "no job_rate_limiter" in stream.getvalue()


SNAKEFILE = """
from pipeline_steps.local_scheduler import unthrottle_local_scheduler

onstart:
    unthrottle_local_scheduler(workflow)

rule all:
    input:
        "a.txt",
        "b.txt",

rule wait:
    output:
        "{name}.txt",
    shell:
        "sleep 3 && touch {output}"
"""


def _scheduling_passes(folder: Path, *extra: str) -> tuple[int, str]:
    """Passes of the head process that found jobs ready (its debug line), and its terminal output."""
    (folder / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "--verbose", *extra],
                            cwd=folder, capture_output=True, text=True,
                            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr.count("Ready jobs"), result.stderr


@pytest.mark.slow
def test_installed_snakemake_schedules_on_job_events_only(tmp_path):
    """The installed Snakemake, on one core, two 3-s jobs and `all`: with its command-line default limit switched off
    the head passes once per job (each after an event); with a limit it chose, the user's, it also passes every
    second while the second job waits for the core. So the hook runs before scheduling, on the attribute the
    scheduler reads, and the default it recognises is this Snakemake's."""
    (tmp_path / "default").mkdir(), (tmp_path / "chosen").mkdir()
    passes, terminal = _scheduling_passes(tmp_path / "default")
    assert "job rate limit" in terminal
    assert passes <= 3, terminal[-3000:]
    passes, terminal = _scheduling_passes(tmp_path / "chosen", "--max-jobs-per-timespan", "10/1s")
    assert "job rate limit" not in terminal
    assert passes >= 4, terminal[-3000:]
