"""Snakemake planning time (`snakemake -n`) for 10, 100 and 1000 raw files per dataset.

A thousand-file dataset must still plan in an interactive time (the issue's target: 10 s for 1000
files x 5 datasets). Two cases, each at 10, 100 and 1000 files per dataset:

* ``existing`` -- the datasets name files that exist (``files:`` globs over empty placeholders; a dry
  run never opens them), as on a cluster holding its raw ROOT files;
* ``toy`` -- the default without ``files:``: the raw files are still to be written by one toy job per
  dataset.

Snakemake's own work per job (the script of every script job opened and checked, each job's default
resources evaluated, the dry-run listing) dominates, so the time follows the number of jobs, and the
number of jobs no longer follows the number of files: one ingest job per part (at most 64 per dataset
and table, ``pipeline_steps/ingest/parts.py``), one toy job per dataset. What is left growing with the
files is Snakemake's handling of each file path (existence, timestamps, the producer of each toy file).
The README's Performance section has the profile.

Rows: each case's 1000-file plan against the 10 s target, and the growth of the plan's time from 10 to
100 and from 100 to 1000 files against linear growth (10x the time for 10x the files; the issue asks
for "near linear or better"), so a ratio above 1 is growth below linear. Each point is the median of
``REPEATS`` cold ``snakemake`` processes, as a user starts one.
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
FILE_COUNTS = (10, 100, 1000)
TARGET_SECONDS = 10.0
REPEATS = 3


def dataset_settings(workdir: Path, n_files: int, case: str) -> dict:
    """The ``datasets`` override of one case: toy slices, or globs over ``n_files`` placeholder files."""
    if case == "toy":
        return {d: {"toy": {"layout": d, "n_files": n_files, "entries_per_file": 100}} for d in DATASETS}
    datasets = {}
    for dataset in DATASETS:
        folder = workdir / "raw" / dataset
        folder.mkdir(parents=True)
        for index in range(n_files):
            (folder / f"run{index:05d}.root").touch()
        datasets[dataset] = {"files": [str(folder / "*.root")]}
    return datasets


def planning_seconds(n_files: int, case: str) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        override = Path(workdir) / "files.yaml"
        override.write_text(yaml.safe_dump({"datasets": dataset_settings(Path(workdir), n_files, case)}))
        started = time.perf_counter()
        subprocess.run(
            [SNAKEMAKE, "-n", "--quiet", "all", "--cores", "1", "--snakefile", str(REPO / "Snakefile"),
             "--directory", workdir, "--configfile", str(override)],
            check=True, capture_output=True,
        )
        return time.perf_counter() - started


def median_planning_seconds(n_files: int, case: str) -> float:
    times = sorted(planning_seconds(n_files, case) for _ in range(REPEATS))
    return times[len(times) // 2]


def case_rows(case: str, timings: dict[int, float]) -> list[dict]:
    """The 1000-file plan against the target, and each tenfold step's growth against linear (10x)."""
    label = "files exist" if case == "existing" else "toy files to generate"
    rows = [{"name": f"snakemake -n, {FILE_COUNTS[-1]} files x {len(DATASETS)} datasets, {label} "
                     f"(median of {REPEATS})",
             "ours": timings[FILE_COUNTS[-1]], "baseline": TARGET_SECONDS, "baseline_label": "target",
             "unit": "s", "lower_is_better": True}]
    rows += [{"name": f"snakemake -n time growth, {low} -> {high} files, {label}", "ours": timings[high] / timings[low],
              "baseline": high / low, "baseline_label": "linear in the files", "unit": "x", "lower_is_better": True}
             for low, high in zip(FILE_COUNTS[:-1], FILE_COUNTS[1:])]
    return rows


def main() -> None:
    rows, timings = [], {}
    for case in ("existing", "toy"):
        timings[case] = {n: median_planning_seconds(n, case) for n in FILE_COUNTS}
        rows += case_rows(case, timings[case])
    out = REPO / "results" / "bench" / "planning.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "seconds": timings}, indent=2))
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
