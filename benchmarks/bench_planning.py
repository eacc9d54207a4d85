"""Snakemake planning time (`snakemake -n`) for 10, 100 and 1000 raw files per dataset.

A thousand-file dataset must still plan in an interactive time. The baseline is the planning
time of the 10-file DAG, so the ratio shows how planning scales with the number of files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DATASETS = ("ship", "nanoaod", "lhcb_tracks", "calratio_main", "calratio_cr")


def planning_seconds(n_files: int) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        override = Path(workdir) / "files.yaml"
        datasets = {d: {"toy": {"layout": d, "n_files": n_files, "entries_per_file": 100}} for d in DATASETS}
        override.write_text(yaml.safe_dump({"datasets": datasets}))
        started = time.perf_counter()
        subprocess.run(
            [SNAKEMAKE, "-n", "--quiet", "all", "--cores", "1", "--snakefile", str(REPO / "Snakefile"),
             "--directory", workdir, "--configfile", str(override)],
            check=True, capture_output=True,
        )
        return time.perf_counter() - started


def main() -> None:
    timings = {n: planning_seconds(n) for n in (10, 100, 1000)}
    rows = [
        {"name": f"snakemake -n, {n} files x {len(DATASETS)} datasets", "ours": timings[n], "baseline": timings[10],
         "baseline_label": "10 files", "unit": "s", "lower_is_better": True}
        for n in (100, 1000)
    ]
    rows.insert(0, {"name": f"snakemake -n, 10 files x {len(DATASETS)} datasets", "ours": timings[10], "baseline": None, "unit": "s"})
    out = REPO / "results" / "bench" / "planning.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=2))
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
