"""Snakemake's head process on a local run: its job rate limiter switched off, so it schedules on job events only.

Why: Snakemake's command line limits job starts to ``--max-jobs-per-timespan`` (default 100 per 1 s), and with a
limiter present every scheduling pass ends by arming a one-second timer that starts another pass. A pass that a job's
start or end set off arms a timer too, so each job event starts one more chain of passes that lasts to the end of
the run (snakemake#2967; the open upstream change snakemake#3744). Each pass resets the params and resources of every
ready job and, under the greedy scheduler, stats every input file of them. In ``make run`` (85 jobs on 2 cores,
AVX2-only AMD EPYC, 2026-12-07) the head process used 41.2 s of CPU (26.9 user, 14.3 system) during the 351 s of
jobs, time taken from the two jobs that keep both cores busy: ~20 s of the run. With the limiter off it used 6.3 s,
and the jobs and their outputs were the same (the four ``generated.root`` identical by sha256).

What stays: the limit protects a batch system from a burst of submissions, so a cluster run (``--executor slurm``,
``htcondor``: not ``workflow.local_exec``) keeps it, and so does a local run that asks for another limit than the
default. Without the limiter Snakemake schedules as its Python API does by default (``SchedulingSettings``:
``max_jobs_per_timespan=None``): after each job's end, and in dry runs always.

The hook runs from ``onstart:`` (``workflow/rules/common.smk``): after Snakemake has built its scheduler, before
the first pass. It uses the scheduler's ``job_rate_limiter`` attribute, which Snakemake itself sets to None for dry
runs; if a Snakemake release renames it, the hook says so and changes nothing.
"""

from __future__ import annotations

import sys

__all__ = ["SNAKEMAKE_DEFAULT_RATE", "unthrottle_local_scheduler"]

#: Snakemake 9's ``--max-jobs-per-timespan`` default, as (jobs, seconds): only this one is switched off.
SNAKEMAKE_DEFAULT_RATE = (100, 1.0)


def unthrottle_local_scheduler(workflow, stream=sys.stderr) -> bool:
    """Drop the job rate limiter of ``workflow``'s scheduler on a local run with the default limit; True if dropped."""
    scheduler = getattr(workflow, "scheduler", None)
    if scheduler is None or not hasattr(scheduler, "job_rate_limiter"):
        print("scheduling: this Snakemake's scheduler has no job_rate_limiter; its passes are left as they are "
              "(pipeline_steps/local_scheduler.py)", file=stream)
        return False
    limiter = scheduler.job_rate_limiter
    if limiter is None or not workflow.local_exec:
        return False
    if (limiter.max_jobs, float(limiter.timespan)) != SNAKEMAKE_DEFAULT_RATE:
        return False  # a limit the user chose
    scheduler.job_rate_limiter = None
    jobs, seconds = SNAKEMAKE_DEFAULT_RATE
    print(f"scheduling: local run, Snakemake's default job rate limit ({jobs} per {seconds:g} s) off: passes on job "
          "events only (pipeline_steps/local_scheduler.py)", file=stream)
    return True
