"""The benchmarks still run against the code they measure (no timings asserted: `make bench` only).

A benchmark calls the pipeline's functions directly, so a change of their contract breaks it
silently until the next `make bench` (the generation benchmark stopped at a KeyError when
``validation.generated_events`` became required). These run the cheap ones at a tiny size and turn
their output into table rows as ``run_all.py`` does.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_generate_validate  # noqa: E402
import run_all  # noqa: E402


def test_generation_benchmark_runs_and_gives_table_rows():
    small = bench_generate_validate.bench_generation(3000, repeats=1)
    assert 0 < small["rows"] <= 3000 and small["blocks"] == 1 and small["root_bytes"] > 0
    wide = bench_generate_validate.bench_generation(3000, repeats=1, float_type=np.float64)
    assert wide["rows"] == small["rows"] and wide["root_bytes"] > small["root_bytes"]  # float64 baskets, as labelled
    named = bench_generate_validate.bench_generation(3000, repeats=1, file_name=bench_generate_validate.CMS_FILE_NAME)
    assert named["rows"] == small["rows"] and named["file_name_bytes"] == 41 and small["file_name_bytes"] == 6
    flow = bench_generate_validate.bench_generation(300, repeats=1, sampler=bench_generate_validate.flow_sampler())
    assert flow["rows"] <= 300 and "spline flow" in flow["sampler"]
    result = {"generation": small, "generation_one_block": small, "generation_float64": wide,
              "generation_cms_names": named, "generation_flow": flow,
              "figure_of_merit": bench_generate_validate.bench_fom(200),
              "validate": bench_generate_validate.bench_validate(400, bootstrap=2)}
    rows = run_all._generate_rows(result)
    assert len(rows) == 7 and "float64 fields" in rows[2]["name"] and "spline flow" in rows[4]["name"]
    assert "41-byte file names" in rows[3]["name"] and "6-byte file names" in rows[0]["name"]
    assert len(small["pair_ratios"]) == small["repeats"] and " in 1)" in rows[0]["name"]  # each pair's spread shown
    for row in rows:
        assert row["ours"] > 0 and row["baseline"] > 0, row


@pytest.mark.parametrize("case", ["existing", "toy"])
def test_planning_benchmark_cases_name_five_datasets(tmp_path, case):
    import bench_planning

    datasets = bench_planning.dataset_settings(tmp_path, 3, case)
    assert set(datasets) == set(bench_planning.DATASETS)
    if case == "existing":
        assert len(list((tmp_path / "raw" / "ship").glob("*.root"))) == 3


def test_calratio_benchmark_runs_and_gives_a_table_row(tmp_path):
    """It had built its training settings with a field the trainer no longer has (``threads``)."""
    import json
    import subprocess

    out = tmp_path / "bench_calratio.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_calratio.py"), "--jets", "64", "--epochs", "1",
                    "--num-splits", "2", "--threads", "1", "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, text=True)
    rows = run_all._calratio_rows(json.loads(out.read_text()))
    assert len(rows) == 1 and rows[0]["ours"] > 0 and rows[0]["baseline"] > 0


def test_make_bench_fails_when_a_benchmark_fails_and_still_writes_the_other_rows(tmp_path, monkeypatch):
    """A broken benchmark used to leave its rows out of bench.md while `make bench` exited 0."""
    (tmp_path / "bench_broken.py").write_text("raise SystemExit(1)\n")
    (tmp_path / "bench_fine.py").write_text("import json, sys\nopen(sys.argv[1], 'w').write(json.dumps([]))\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(run_all, "OUT_DIR", tmp_path / "out")
    fine_row = {"name": "fine", "ours": 2.0, "baseline": 1.0, "unit": "x"}
    monkeypatch.setattr(run_all, "BENCHMARKS", {"broken": ([], lambda result: []),
                                                "fine": (["{out}"], lambda result: [fine_row])})
    with pytest.raises(SystemExit, match="bench_broken.py failed"):
        run_all.main([])
    assert "| fine | fine | 2 |" in (tmp_path / "out" / "bench.md").read_text()


def test_planning_rows_compare_growth_with_linear_and_the_plan_with_the_target():
    """The growth rows had printed t10 / t100 under 'ratio (>1 = ours better)'."""
    import bench_planning

    rows = bench_planning.case_rows("existing", {10: 2.0, 100: 3.0, 1000: 6.0})
    plan, *growth = rows
    assert plan["ours"] == 6.0 and plan["baseline"] == bench_planning.TARGET_SECONDS
    assert [(row["ours"], row["baseline"]) for row in growth] == [(1.5, 10.0), (2.0, 10.0)]
    assert all(row["lower_is_better"] and "growth" in row["name"] for row in growth)


def test_ingest_rows_hold_both_baselines_and_the_memory_above_imports():
    """The plain baseline alone (pyarrow's default encoding, pandas imported in its timer) had stood for
    'uproot + pyarrow'; memory had been the whole process's, imports included."""
    from run_all import _ingest_rows

    def run(mode, scale, seconds, own):
        return {"mode": mode, "scale": scale, "rows_per_s": 1000 / seconds, "mb_per_s": 10 / seconds,
                "peak_rss_mib": 100 + own, "own_peak_mib": own, "all_seconds": [seconds] * 3}

    runs = [run(mode, scale, seconds, own) for scale in (1, 10)
            for mode, seconds, own in (("ours", 2.0, 20), ("baseline", 2.5, 30), ("baseline_our_encoding", 1.6, 25))]
    rows = _ingest_rows({"runs": runs})
    labels = {row["baseline_label"] for row in rows}
    assert labels == {"uproot.concatenate + pyarrow", "the same, writing with ours' Parquet encoding"}
    speeds = [row["ours"] / row["baseline"] for row in rows if row["unit"] == "rows/s"]
    assert speeds == [1.25, 0.8, 1.25, 0.8]
    own = [row for row in rows if "above imports" in row["name"]]
    assert [(row["ours"], row["baseline"]) for row in own] == [(20, 30), (20, 30)]
    lzma = [run(mode, 10, seconds, 0) for mode, seconds in (("ours", 4.0), ("ours_2_threads", 2.5), ("baseline", 5.0))]
    threads, plain = _ingest_rows({"runs": runs, "lzma_runs": lzma})[-2:]
    assert "LZMA-9" in threads["name"] and (threads["ours"], threads["baseline"]) == (4.0, 2.5)
    assert threads["baseline_label"] == "the same, 1 read thread"
    assert (plain["ours"], plain["baseline"], plain["baseline_label"]) == (2.5, 2.0, "uproot.concatenate + pyarrow")


def test_runner_benchmark_exports_a_bundle_and_measures_both_modes(tmp_path):
    """The runner benchmark builds a real bundle through the export step and runs the runner on it (one file in
    steps and whole, and a list of files in one run and a process each); at 64
    rows both modes are one step, so their peak memory is of one size and every figure is real."""
    import json
    import subprocess

    out = tmp_path / "runner.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_runner.py"), "--rows", "64", "--many-files", "3",
                    "--many-file-rows", "40", "--output", str(out)], cwd=REPO, check=True, capture_output=True, text=True)
    document = json.loads(out.read_text())
    rows = document["rows"]
    assert [row["unit"] for row in rows] == ["MiB", "rows/s", "x", "rows/s"]
    assert rows[3]["name"].startswith("standalone runner rows/s, 3 files of 40 rows in one run")
    assert all(len(case["all"]) == 2 and case["rows"] == 120 for case in document["runs"]["many_files"].values())
    assert all(row["ours"] > 0 and row["baseline"] > 0 for row in rows)
    assert document["runs"]["streamed_x4"]["rows"] == 256 and len(document["runs"]["whole_x4"]["all"]) == 2
    assert 50 < rows[0]["ours"] < 2 * rows[0]["baseline"]  # a process's VmHWM in MiB (imports ~140), not bytes
    runs = document["runs"]
    assert rows[2]["ours"] == runs["streamed_x4"]["peak_rss_mib"] / runs["streamed_x1"]["peak_rss_mib"]
