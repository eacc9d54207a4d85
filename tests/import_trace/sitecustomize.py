"""Test-only: on PYTHONPATH of the suite's complete tiny run (tests/conftest.py), so that every job it starts
records, as it exits, the rule it ran and the top-level modules it had loaded (FASTSIM_IMPORT_TRACE names the
folder). test_end_to_end checks them against the job's conda env in envs/, which CI cannot build."""

import atexit
import json
import os
import sys


def _record(folder: str) -> None:
    job = getattr(sys.modules.get("__main__"), "snakemake", None)  # a rule's script: Snakemake's object
    if job is None:
        return
    record = {"rule": job.rule, "model": dict(job.wildcards.items()).get("model"),
              "modules": sorted({name.split(".")[0] for name in sys.modules})}
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as stream:
        json.dump(record, stream)


if os.environ.get("FASTSIM_IMPORT_TRACE"):
    atexit.register(_record, os.environ["FASTSIM_IMPORT_TRACE"])
