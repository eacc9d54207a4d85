"""The raw files' sha256 are taken once per ingest part (rule checksum_raw), and export and provenance record
those instead of reading every raw file again (pipeline_steps/provenance/raw_checksums.py)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from pipeline_steps.common.errors import InputError
from pipeline_steps.provenance.document import ModelRecord, build_provenance
from pipeline_steps.provenance.raw_checksums import checksums_of, read_checksums, write_part_checksums
from pipeline_steps.workflow_plan import WorkflowPlan

REPO = Path(__file__).resolve().parents[1]


def raw_files(folder: Path, contents: dict[str, bytes]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [str(folder / name) for name in contents]


def test_a_parts_checksums_are_each_files_sha256_and_a_missing_file_is_named_with_nothing_written(tmp_path):
    files = raw_files(tmp_path / "raw", {"a.root": b"first", "b.root": b"second" * 300_000})  # b: two 1 MiB chunks
    written = write_part_checksums(files, tmp_path / "part00.json")
    expected = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in files}
    assert written == expected and json.loads((tmp_path / "part00.json").read_text()) == expected
    with pytest.raises(InputError, match=r"raw file .*gone\.root: does not exist"):
        write_part_checksums([*files, str(tmp_path / "raw" / "gone.root")], tmp_path / "part01.json")
    assert not (tmp_path / "part01.json").exists()


def test_parts_are_merged_and_an_unreadable_checksum_file_is_named(tmp_path):
    first = write_part_checksums(raw_files(tmp_path / "raw", {"a.root": b"a"}), tmp_path / "p0.json")
    second = write_part_checksums(raw_files(tmp_path / "raw", {"b.root": b"b"}), tmp_path / "p1.json")
    assert read_checksums([tmp_path / "p1.json", tmp_path / "p0.json"]) == {**first, **second}
    (tmp_path / "cut.json").write_text('{"a.root": "12')
    with pytest.raises(InputError, match=r"raw-file checksums .*cut\.json: cannot be read as JSON"):
        read_checksums([tmp_path / "p0.json", tmp_path / "cut.json"])


def test_provenance_records_the_checksums_taken_at_ingest_without_reading_the_raw_files_again(tmp_path):
    """The raw file is gone by the time provenance runs: its sha256 still comes from the part's JSON, as on a
    cluster where the provenance job never reads the terabytes again. Outputs are still hashed there."""
    raw = raw_files(tmp_path / "raw", {"0.root": b"raw bytes"})
    checksums = write_part_checksums(raw, tmp_path / "part00.json")
    Path(raw[0]).unlink()
    output = tmp_path / "model.pt"
    output.write_bytes(b"weights")
    record = ModelRecord("jets", {"model": {}}, raw, [str(output)])
    document = build_provenance([record], tmp_path, seed=1, raw_checksums=checksums)
    assert document["models"]["jets"]["raw_inputs"] == checksums
    assert document["models"]["jets"]["outputs"] == {str(output): hashlib.sha256(b"weights").hexdigest()}
    unrecorded = ModelRecord("jets", {"model": {}}, [*raw, "data/raw/nanoaod/7.root"], [str(output)])
    with pytest.raises(InputError, match=r"provenance of model jets: no recorded sha256 for raw file "
                                         r"data/raw/nanoaod/7\.root"):
        build_provenance([unrecorded], tmp_path, seed=1, raw_checksums=checksums)


def test_checksums_of_names_how_many_are_missing():
    with pytest.raises(InputError, match=r"export: no recorded sha256 for raw file a\.root \(and 1 more\)"):
        checksums_of(["a.root", "b.root", "c.root"], {"c.root": "00"}, "export")


def test_each_raw_file_is_checksummed_by_one_job_and_export_and_provenance_read_only_those_jsons():
    """The export of a model takes the checksum JSONs of its datasets' parts, which together hold exactly its
    raw files (blacklist removed); no export or provenance input is a raw file."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    plan = WorkflowPlan(copy.deepcopy(config))
    for dataset in config["datasets"]:
        parts = plan.ingest_parts(dataset)
        checksum_files = plan.raw_checksum_files(dataset)
        assert len(checksum_files) == len(parts)
        covered = [path for part in parts for path in plan.part_files(dataset, part)]
        assert sorted(covered) == sorted(plan.raw_files(dataset))  # each raw file in one part, once
    for model in config["models"]:
        inputs = plan.model_raw_checksums(model)
        assert inputs and all(path.startswith("results/checksums/") and path.endswith(".json") for path in inputs)
        datasets = plan.model_datasets(model)
        assert {path.split("/")[2] for path in inputs} == set(datasets)
    assert "data/raw/ship/3.root" not in plan.raw_files("ship")  # the default blacklist's toy rogue file
    provenance_inputs = plan.provenance_raw_checksums()
    assert not any(path.endswith(".root") for path in provenance_inputs)
    assert set(provenance_inputs) == {p for m in config["models"] for p in plan.model_raw_checksums(m)}
