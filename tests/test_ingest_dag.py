"""The ingest DAG: blacklisted files are absent from a dry run; absent blacklist entries only warn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "-n", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(REPO / "config/config.yaml"), str(tmp_path / "override.yaml"),
         "--", "results/ingest/ship/summary.json"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "results/ingest/ship/muons/a.parquet" in output and "results/ingest/ship/muons/c.parquet" in output
    assert "b.parquet" not in output and "b.root" not in output.replace("'b.root'", "")
    assert output.count("blacklist entry 'never_there_*.root' matches no raw file") == 1
