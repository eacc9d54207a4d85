"""Faults (issue 12): a killed training resumes from its checkpoint; a corrupt raw file fails only its branch.

Each test runs a small part of the tiny workflow in its own working directory (no complete run).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline_steps.ingest.parts import DEFAULT_INGEST_PARTS, part_index, part_name
from tests.conftest import REPO, SNAKEMAKE, TINY_CONFIG, run_snakemake

pytestmark = pytest.mark.slow

#: The flow of `jets` trained long enough to be killed mid-run (checkpoint after every epoch).
LONG_JETS = """models:
  jets: {training: {epochs: 6, batch_size: 128, checkpoint_every: 1}}
"""


def _checkpointed_epoch(log: Path) -> int:
    """Last epoch the training log says it checkpointed (0 before the first)."""
    if not log.exists():
        return 0
    epochs = re.findall(r"checkpoint: epoch (\d+)", log.read_text())
    return int(epochs[-1]) if epochs else 0


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    config = tmp_path / "long.yaml"
    config.write_text(LONG_JETS)
    target = "results/train/jets/model.pt"
    arguments = [target, "--configfile", str(TINY_CONFIG), str(config)]  # targets first: see --configfile
    run_snakemake("results/preprocess/jets/train.parquet", *arguments[1:], workdir=tmp_path)  # inputs first
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles" / "ci"),
               "--directory", str(tmp_path), *arguments]
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True, env=dict(os.environ))
    log = tmp_path / "logs" / "train" / "jets.log"
    deadline = time.monotonic() + 240
    while _checkpointed_epoch(log) < 2 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.poll() is None, "training finished (or failed) before it could be killed; raise the epochs of LONG_JETS"
    os.killpg(job.pid, signal.SIGKILL)  # snakemake and its job, as an OOM killer or a dead node would
    job.wait()
    killed_after = _checkpointed_epoch(log)
    assert killed_after >= 2 and not (tmp_path / target).exists()

    run_snakemake("--unlock", *arguments, workdir=tmp_path)
    run_snakemake("--rerun-incomplete", *arguments, workdir=tmp_path)
    resumed = [int(e) for e in re.findall(r"resumed from .* after epoch (\d+)", log.read_text())]
    assert resumed and resumed[-1] >= killed_after, log.read_text()[-2000:]
    assert (tmp_path / target).exists()
    history = (tmp_path / "results" / "train" / "jets" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 6  # header + every epoch once, the resumed ones included


def test_a_corrupt_raw_file_fails_its_job_without_partial_output_and_keep_going_finishes_the_rest(tmp_path):
    # The toy job writes the dataset's files first (it would rewrite all of them if one were missing);
    # then one goes bad on disk, as a truncated transfer would leave it.
    run_snakemake("data/raw/nanoaod/0.root", "--configfile", str(TINY_CONFIG), workdir=tmp_path)
    corrupt = tmp_path / "data" / "raw" / "nanoaod" / "0.root"
    corrupt.write_bytes(b"root" + b"\x00" * 64 + b"not a ROOT file")
    result = run_snakemake("results/preprocess/jets/transforms.json", "results/preprocess/tracks_cov/transforms.json",
                           "--keep-going", "--configfile", str(TINY_CONFIG), workdir=tmp_path, check=False)
    assert result.returncode != 0
    part = part_name(part_index("0", DEFAULT_INGEST_PARTS), DEFAULT_INGEST_PARTS)
    ingest = tmp_path / "results" / "ingest" / "nanoaod" / "jets"
    assert not (ingest / f"{part}.parquet").exists() and not (ingest / f"{part}.json").exists()
    leftovers = [p.name for p in (tmp_path / "results").rglob(".*") if ".tmp" in p.name]
    assert not leftovers, f"partial files left behind: {leftovers}"
    assert (tmp_path / "results" / "preprocess" / "tracks_cov" / "transforms.json").exists()
    assert not (tmp_path / "results" / "preprocess" / "jets" / "transforms.json").exists()
    assert "0.root" in (tmp_path / "logs" / "ingest" / "nanoaod" / "jets" / f"{part}.log").read_text()


def test_a_rerun_removes_what_an_attempt_killed_on_another_node_left_beside_its_outputs(tmp_path):
    """An OOM kill or a lost node skips every ``finally``; the SLURM profile retries the job with more memory, on
    another node, where the killed attempt's pid means nothing: its hidden partial file had stayed on the shared
    filesystem for good. A workflow job is its outputs' only live writer (``atomic.claim_sole_writer``)."""
    folder = tmp_path / "data" / "raw" / "lhcb_tracks"
    folder.mkdir(parents=True)
    killed = [".0.root.node17_4026531836_31337.k2x_9q0a.tmp.root", ".1.root.node03_4026531836_8.abcd1234.tmp.root"]
    for name in killed:
        (folder / name).write_bytes(b"root" + b"\x00" * 64)  # a partial file: header written, killed after
    run_snakemake("data/raw/lhcb_tracks/0.root", "--configfile", str(TINY_CONFIG), workdir=tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == ["0.root", "1.root"]
