#!/bin/sh
# Every HTCondor job of profiles/htcondor starts here (the plugin's `job_wrapper` resource), with the
# arguments "<the head process's python> -m snakemake ...".
#
# Why: a pool that runs each job in its own sandbox with file transfer (CERN's lxbatch: the job starts in its
# pool directory) copies the job's executable there. Named directly, the venv's python was copied, lost its
# venv, and every job failed at once with "python: No module named snakemake"; and Snakemake's job, run in
# the sandbox, would not have found the workflow's relative paths. So the job goes back to its submit directory
# on the shared filesystem and runs the venv's python where it lies. (Without a shared filesystem,
# `--shared-fs-usage none`, the workflow does not run under plugin 0.3: README, HTCondor.)
set -eu
# the submit directory: the job ad's OrigIwd where the starter made a sandbox the job's Iwd, else its Iwd
ad=${_CONDOR_JOB_AD:?is unset: job_wrapper.sh runs only as an HTCondor job}
submit_dir=$(sed -n 's/^OrigIwd = "\(.*\)"$/\1/p' "$ad")
[ -n "$submit_dir" ] || submit_dir=$(sed -n 's/^Iwd = "\(.*\)"$/\1/p' "$ad")
cd "${submit_dir:?no Iwd in $ad}"
if [ ! -x "${1:-}" ]; then
  echo "job_wrapper.sh: expected the head process's python as the first argument, got '${1:-}'" >&2
  exit 2
fi
exec "$@"
