"""The ingest DAG: blacklisted files are absent from a dry run; absent blacklist entries only warn; a
mistake in `datasets.<name>.files` stops planning with the key and the path named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_blacklisted_file_absent_from_dry_run(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for stem in ("a", "b", "c"):
        (raw / f"{stem}.root").write_bytes(b"")  # a dry run never opens them
    override = {
        "datasets": {"ship": {"files": [str(raw / "*.root")]}},
        "blacklist": ["b.root", "never_there_*.root"],
    }
    result = _dry_run(tmp_path, override)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ingested = _ingest_inputs(output)
    assert sorted(path for paths in ingested for path in paths) == [str(raw / "a.root"), str(raw / "c.root")]
    assert "b.root" not in output.replace("'b.root'", "")
    assert output.count("blacklist entry 'never_there_*.root' matches no raw file") == 1


@pytest.mark.parametrize(
    "files, blacklist, expected",
    [
        (["raw/*.rot"], [], "datasets.ship.files: 'raw/*.rot' matched no file"),
        (["raw/a.root", "raw/z.root"], [], "datasets.ship.files: 'raw/z.root' does not exist"),
        (["raw"], [], "datasets.ship.files: 'raw' is a directory; expected ROOT files, e.g. 'raw/*.root'"),
        (["raw/*.root"], [], "datasets.ship.files: 'raw/c{1}.root' has '{' or '}' in its path"),
        (["raw/*.root"], ["*.root"], "datasets.ship: every file is blacklisted: datasets.ship.files ['raw/*.root']"),
    ],
)
def test_bad_files_entry_stops_planning_naming_key_and_path(tmp_path, files, blacklist, expected):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("a.root", "b.root", "c{1}.root"):
        (raw / name).write_bytes(b"")
    result = _dry_run(tmp_path, {"datasets": {"ship": {"files": files}}, "blacklist": blacklist})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in output, output[-3000:]
    assert "Building DAG of jobs" not in output  # refused while the workflow is read, before any job is planned


def test_one_file_by_relative_and_absolute_path_is_ingested_once(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.root").write_bytes(b"")
    result = _dry_run(tmp_path, {"datasets": {"ship": {"files": ["raw/a.root", str(tmp_path / "raw" / "*.root")]}}})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert _ingest_inputs(output) == [["raw/a.root"]]


def test_each_file_is_ingested_by_exactly_one_job_of_at_most_ingest_parts(tmp_path):
    (tmp_path / "raw").mkdir()
    for index in range(40):
        (tmp_path / "raw" / f"run{index:03d}.root").write_bytes(b"")
    result = _dry_run(tmp_path, {"datasets": {"ship": {"files": ["raw/*.root"], "ingest_parts": 8}}})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    ingested = _ingest_inputs(output)
    assert len(ingested) == 8  # 40 files hashed into 8 parts: P(some part empty) = 8 (7/8)^40 = 0.04; fixed names
    assert sorted(path for paths in ingested for path in paths) == [f"raw/run{index:03d}.root" for index in range(40)]


def test_read_threads_are_the_ingest_jobs_threads(tmp_path):
    """An ingest job decompresses on the cores Snakemake grants it: the dataset's read_threads (default 1)."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.root").write_bytes(b"")
    for threads, expected in ((None, []), (3, ["3"])):
        override = {"datasets": {"ship": {"files": ["raw/a.root"], **({"read_threads": threads} if threads else {})}}}
        result = _dry_run(tmp_path, override, "--cores", "4")
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        job = (result.stdout + result.stderr).split("rule ingest_table:")[1].split("\n\n")[0]
        assert [line.split(": ")[1] for line in job.splitlines() if line.strip().startswith("threads:")] == expected


def _ingest_inputs(output: str) -> list[list[str]]:
    """The raw-file inputs of each ingest_table job of a dry run (``input: a, b`` lines)."""
    jobs = output.split("rule ingest_table:")[1:]
    return [job.split("input: ", 1)[1].split("\n", 1)[0].split(", ") for job in jobs]


def _dry_run(workdir: Path, override: dict, *options: str) -> subprocess.CompletedProcess:
    """`snakemake -n` of one dataset's ingest summary, the default config with ``override`` merged over it."""
    (workdir / "override.yaml").write_text(yaml.safe_dump(override))
    return subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "-n", *options, "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(REPO / "config/config.yaml"), str(workdir / "override.yaml"),
         "--", "results/ingest/ship/summary.json"],
        capture_output=True, text=True, timeout=240, cwd=workdir,
    )
