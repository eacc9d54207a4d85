#!/bin/sh
# Every HTCondor job of profiles/htcondor starts here (the plugin's `job_wrapper` resource), with the
# arguments "<the head process's python> -m snakemake ...".
#
# Why: a pool that runs each job in its own sandbox with file transfer (CERN's lxbatch: the job starts in its
# pool directory) copies the job's executable there. Named directly, the venv's python was copied, lost its
# venv, and every job failed at once with "python: No module named snakemake"; and Snakemake's job, run in
# the sandbox, would not have found the workflow's relative paths. So, on a shared filesystem, the job goes back to
# its submit directory and runs the venv's python where it lies. With `--shared-fs-usage none` the inputs
# were transferred into the sandbox, so the job stays there.
set -eu
case " $* " in
  *" --shared-fs-usage none "*) ;;
  *)  # the submit directory: the job ad's OrigIwd where the starter made a sandbox the job's Iwd, else its Iwd
    ad=${_CONDOR_JOB_AD:?is unset: job_wrapper.sh runs only as an HTCondor job}
    submit_dir=$(sed -n 's/^OrigIwd = "\(.*\)"$/\1/p' "$ad")
    [ -n "$submit_dir" ] || submit_dir=$(sed -n 's/^Iwd = "\(.*\)"$/\1/p' "$ad")
    cd "${submit_dir:?no Iwd in $ad}" ;;
esac
if [ ! -x "${1:-}" ]; then
  echo "job_wrapper.sh: expected the head process's python as the first argument, got '${1:-}'" \
       "(on a pool without a shared filesystem the workers need the same python at the same path)" >&2
  exit 2
fi
exec "$@"
