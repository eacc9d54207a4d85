"""Which ingest job reads which raw file (pipeline_steps/ingest/parts.py): stable under additions,
independent of the hash seed and the machine, spread evenly enough that no part is a straggler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_steps.ingest.parts import part_index, part_name, partition

REPO = Path(__file__).resolve().parents[1]
STEMS = [f"run{index:05d}" for index in range(1000)]


def _by_stem(stems):
    return {stem: f"/eos/raw/{stem}.root" for stem in stems}


def test_adding_a_file_changes_the_files_of_its_own_part_only():
    before = partition(_by_stem(STEMS[:-1]), 64)
    after = partition(_by_stem(STEMS), 64)
    changed = {part for part in after if before.get(part) != after[part]}
    assert changed == {part_name(part_index(STEMS[-1], 64), 64)}
    assert after[next(iter(changed))][-1] == "/eos/raw/run00999.root"  # paths keep the given (sorted) order


def test_parts_are_evenly_filled():
    """1000 files in 64 parts: with an ideal hash a part holds Binomial(1000, 1/64) files (mean 15.6, sd 3.9)
    and the largest of the 64 exceeds 2x the mean (31) with probability 1.0%. The names are fixed, so the
    test is deterministic (the largest part holds 27); a hash that clusters sequential run numbers fails it."""
    sizes = [len(paths) for paths in partition(_by_stem(STEMS), 64).values()]
    assert len(sizes) == 64 and sum(sizes) == 1000
    assert max(sizes) <= 2 * 1000 / 64


def test_fewer_files_than_parts_keeps_about_one_file_each():
    parts = partition(_by_stem(STEMS[:4]), 64)
    assert sum(map(len, parts.values())) == 4 and list(parts) == sorted(parts)
    assert all(name.startswith("part") and len(name) == len("part63") for name in parts)


def test_assignment_does_not_depend_on_the_hash_seed():
    script = "from pipeline_steps.ingest.parts import part_index; print([part_index(f'run{i}', 64) for i in range(50)])"
    outputs = {subprocess.run([sys.executable, "-c", script], env={"PYTHONHASHSEED": seed}, capture_output=True,
                              text=True, check=True, cwd=REPO).stdout for seed in ("0", "1", "2718")}
    assert len(outputs) == 1
    assert outputs.pop().strip() == str([part_index(f"run{i}", 64) for i in range(50)])


def test_one_part_is_the_whole_dataset_and_zero_parts_is_refused():
    assert partition(_by_stem(STEMS[:10]), 1) == {"part0": [f"/eos/raw/{s}.root" for s in STEMS[:10]]}
    with pytest.raises(ValueError, match="ingest_parts must be >= 1"):
        partition(_by_stem(STEMS[:10]), 0)
