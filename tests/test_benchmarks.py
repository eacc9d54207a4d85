"""The benchmarks still run against the code they measure (no timings asserted: `make bench` only).

A benchmark calls the pipeline's functions directly, so a change of their contract breaks it
silently until the next `make bench` (the generation benchmark stopped at a KeyError when
``validation.generated_events`` became required). These run the cheap ones at a tiny size and turn
their output into table rows as ``run_all.py`` does.
"""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_generate_validate  # noqa: E402
import run_all  # noqa: E402


def test_generation_benchmark_runs_and_gives_table_rows():
    small = bench_generate_validate.bench_generation(3000, repeats=1)
    assert 0 < small["rows"] <= 3000 and small["blocks"] == 1 and small["root_bytes"] > 0
    result = {"generation": small, "generation_one_block": small,
              "figure_of_merit": bench_generate_validate.bench_fom(200),
              "validate": bench_generate_validate.bench_validate(400, bootstrap=2)}
    rows = run_all._generate_rows(result)
    assert len(rows) == 4
    for row in rows:
        assert row["ours"] > 0 and row["baseline"] > 0, row


@pytest.mark.parametrize("case", ["existing", "toy"])
def test_planning_benchmark_cases_name_five_datasets(tmp_path, case):
    import bench_planning

    datasets = bench_planning.dataset_settings(tmp_path, 3, case)
    assert set(datasets) == set(bench_planning.DATASETS)
    if case == "existing":
        assert len(list((tmp_path / "raw" / "ship").glob("*.root"))) == 3
