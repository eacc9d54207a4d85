"""The workflow's promises about reruns (issue 12), proven on the tiny config.

One complete tiny run is shared with test_end_to_end (``complete_run``, tests/conftest.py); every other check is either a
second, partial run (byte identity) or a dry run (``-n``) against that finished working directory,
so the whole module costs about two pipeline runs. Dry runs never change the shared directory.
Everything runs from a snapshot of the repository (``snapshot``, mtimes kept) taken when the first
workflow test starts, so an edit made meanwhile in the checkout cannot look like a code change to the dry runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import uuid
import zipfile
from pathlib import Path

import pytest

from pipeline_steps.common.atomic import atomic_path, atomic_dir
from pipeline_steps.common.reproducible import normalise_keras_archive, save_torch, stable_uuid
from pipeline_steps.ingest.parts import DEFAULT_INGEST_PARTS, part_index, part_name
from pipeline_steps.provenance.document import find_drift, git_state, verify
from tests.conftest import REPO, TINY_CONFIG, copy_repository, snakemake_in

#: Everything a rule writes that must come out byte-identical from the same raw files and config.
REPRODUCIBLE_GLOBS = (
    "results/ingest/*/*/*.parquet",
    "results/categorise/*/cat*.parquet",
    "results/preprocess/*/*.parquet",
    "results/preprocess/*/*.npz",
    "results/preprocess/*/transforms.json",
    "results/train/*/model.pt",
    "results/train/*/*.keras",
    "results/generate/*/generated.root",
)
#: A fresh run from nothing also regenerates the toy raw files and makes the exports and metrics.
FRESH_RUN_GLOBS = REPRODUCIBLE_GLOBS + (
    "data/raw/*/*.root",
    "results/export/*/model.onnx",
    "results/export/*/bundle.json",
    "results/export/*/transforms.json",
    "results/validate/*/metrics.json",
)

# --- helpers -------------------------------------------------------------------------------------

def ingested(dataset: str, table: str, stem: str) -> str:
    """The ingest output holding the raw file ``<stem>.root`` (its part, pipeline_steps/ingest/parts.py)."""
    return f"results/ingest/{dataset}/{table}/{part_name(part_index(stem, DEFAULT_INGEST_PARTS), DEFAULT_INGEST_PARTS)}.parquet"


def dry_run(workdir: Path, *extra_configs: str, snakefile: Path, targets: tuple[str, ...] = ()) -> str:
    """What ``snakemake -n`` prints (jobs with their outputs, reasons and resources)."""
    result = snakemake_in(workdir, *targets, "-n", "--configfile", str(TINY_CONFIG), *extra_configs,
                          snakefile=snakefile)
    return result.stdout + result.stderr


def planned_outputs(workdir: Path, *extra_configs: str, snakefile: Path,
                    targets: tuple[str, ...] = ()) -> set[str]:
    """Output paths of every job a dry run would execute (``rule all`` excluded).

    Targets go before ``--configfile``: it takes every following word as a config file.
    """
    text = dry_run(workdir, *extra_configs, targets=targets, snakefile=snakefile)
    outputs: set[str] = set()
    for match in re.finditer(r"^\s+output: (.+)$", text, flags=re.MULTILINE):
        outputs.update(path.strip() for path in match.group(1).split(","))
    if not outputs:
        assert "Nothing to be done" in text, text[-3000:]
    return outputs


def file_hashes(workdir: Path, globs: tuple[str, ...] = REPRODUCIBLE_GLOBS) -> dict[str, str]:
    return {
        str(path.relative_to(workdir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for pattern in globs
        for path in sorted(workdir.glob(pattern))
    }


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


AGGREGATES = {"results/summary.csv", "results/provenance.json"}


# --- fixtures ------------------------------------------------------------------------------------

# ``snapshot`` and ``complete_run`` are session fixtures of tests/conftest.py (shared with test_end_to_end).


# --- unit checks (fast) --------------------------------------------------------------------------

def test_atomic_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_keras_archive_normalisation_removes_save_time(tmp_path):
    def archive(path: Path, saved: str, when: tuple, address: int) -> Path:
        shared = {"class_name": "GlorotUniform", "shared_object_id": address}
        layers = [{"kernel_initializer": shared}, {"kernel_initializer": shared},
                  {"kernel_initializer": {"class_name": "Zeros", "shared_object_id": address + 8}}]
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(zipfile.ZipInfo("metadata.json", (1980, 1, 1, 0, 0, 0)),
                        json.dumps({"keras_version": "3", "date_saved": saved}))
            zf.writestr(zipfile.ZipInfo("config.json", (1980, 1, 1, 0, 0, 0)), json.dumps({"layers": layers}))
            zf.writestr(zipfile.ZipInfo("model.weights.h5", when), b"weights")
        return path

    first = archive(tmp_path / "a.keras", "2026-01-01@10:00:00", (2026, 1, 1, 10, 0, 0), 140493793320400)
    second = archive(tmp_path / "b.keras", "2026-05-05@11:11:11", (2026, 5, 5, 11, 11, 10), 139785153126032)
    assert first.read_bytes() != second.read_bytes()
    normalise_keras_archive(first), normalise_keras_archive(second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert zf.read("model.weights.h5") == b"weights"
        assert json.loads(zf.read("metadata.json"))["keras_version"] == "3"
        ids = [layer["kernel_initializer"]["shared_object_id"] for layer in json.loads(zf.read("config.json"))["layers"]]
    assert ids[0] == ids[1] != ids[2]  # sharing kept, addresses gone


def test_torch_files_do_not_depend_on_the_temporary_name(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"w": torch.arange(4.0)}
    save_torch(state, tmp_path / ".model.abc.tmp.pt")
    save_torch(state, tmp_path / ".model.xyz.tmp.pt")
    assert (tmp_path / ".model.abc.tmp.pt").read_bytes() == (tmp_path / ".model.xyz.tmp.pt").read_bytes()
    assert torch.load(tmp_path / ".model.abc.tmp.pt", weights_only=True)["w"].tolist() == [0, 1, 2, 3]


def test_stable_uuid_is_a_function_of_its_text():
    assert stable_uuid("results/generate/jets/generated.root")() == stable_uuid("results/generate/jets/generated.root")()
    assert stable_uuid("a")() != stable_uuid("b")()
    assert isinstance(stable_uuid("a")(), uuid.UUID)


def test_every_rule_carries_a_code_hash_of_its_modules():
    """Snakemake does not see imported modules change; every rule must carry ``code=``."""
    missing = []
    for rule_file in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^(?=rule \w+:)", rule_file.read_text(), flags=re.MULTILINE)
        for block in blocks:
            name = re.match(r"rule (\w+):", block)
            if name and not re.search(r"^\s+code=", block, flags=re.MULTILINE):
                missing.append(f"{rule_file.name}:{name.group(1)}")
    assert not missing, f"rules without params code=source_hash(...): {missing}"


# --- promises that need a complete run (slow) ----------------------------------------------------

@pytest.mark.slow
def test_a_fresh_run_with_another_hash_seed_and_core_count_is_byte_identical(complete_run, fresh_run):
    """What ``make run`` promises without help: no PYTHONHASHSEED pin, any core count, toy files regenerated.

    ``complete_run`` ran with PYTHONHASHSEED=0 on 2 cores; ``fresh_run`` (tests/conftest.py) started from an
    empty directory with another hash seed on 1 core, so the toy raw files, every table, model, export bundle
    and metrics file were made again, in another job order, and must come out byte for byte the same.
    """
    first, second = file_hashes(complete_run, FRESH_RUN_GLOBS), file_hashes(fresh_run, FRESH_RUN_GLOBS)
    expected = {"data/raw/nanoaod/0.root", "results/train/jets/model.pt", "results/train/tracks_cov/generator.keras",
                "results/generate/jets/generated.root", ingested("nanoaod", "jets", "0"),
                "results/preprocess/jets/transforms.json", "results/train/calratio/chosen.keras",
                "results/export/jets/model.onnx", "results/export/tracks_cov/bundle.json",
                "results/validate/jets/metrics.json"}
    assert expected <= set(second), sorted(expected - set(second))
    assert set(first) == set(second)
    differing = sorted(path for path in second if first[path] != second[path])
    assert not differing, f"not byte-identical with another hash seed and core count: {differing}"


@pytest.mark.slow
def test_second_dry_run_after_a_complete_run_has_nothing_to_do(complete_run, snapshot):
    assert planned_outputs(complete_run, snakefile=snapshot) == set()


@pytest.mark.slow
def test_touching_an_unrelated_file_reruns_nothing(complete_run, snapshot):
    (complete_run / "notes.txt").write_text("unrelated")
    (complete_run / "data" / "raw" / "README.txt").write_text("where the files came from")
    assert planned_outputs(complete_run, snakefile=snapshot) == set()


@pytest.mark.slow
def test_provenance_ties_every_model_to_raw_inputs_config_packages_and_commit(complete_run):
    document = json.loads((complete_run / "results" / "provenance.json").read_text())
    assert set(document["models"]) == {"tracks_cov", "jets", "nano_muons", "ship_muons", "calratio"}
    jets = document["models"]["jets"]
    assert set(jets["raw_inputs"]) == {"data/raw/nanoaod/0.root", "data/raw/nanoaod/1.root"}
    raw = complete_run / "data" / "raw" / "nanoaod" / "0.root"
    assert jets["raw_inputs"]["data/raw/nanoaod/0.root"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert "data/raw/ship/1.root" not in document["models"]["ship_muons"]["raw_inputs"]  # blacklisted
    assert set(document["models"]["calratio"]["raw_inputs"]) == {
        f"data/raw/{ds}/{i}.root" for ds in ("calratio_main", "calratio_cr") for i in (0, 1)}
    assert jets["config"]["model"]["training"]["epochs"] == 2
    assert "results/train/jets/model.pt" in jets["outputs"]
    assert document["packages"]["torch"] and document["packages"]["uproot"]
    assert set(document["git"]) == {"commit", "dirty"}  # None here: the snapshot is not a git checkout
    assert re.fullmatch(r"[0-9a-f]{40}", git_state(REPO)["commit"])
    assert "results/export/jets/bundle.json" in jets["outputs"]
    assert {"results/generate/jets/generated.root", "results/validate/jets/metrics.json"} <= set(jets["outputs"])
    assert "results/validate/calratio/metrics.json" in document["models"]["calratio"]["outputs"]
    assert not any("generate" in path for path in document["models"]["calratio"]["outputs"])  # a classifier
    assert jets["config"]["validation"]["generated_events"]
    assert "validation" not in document["models"]["calratio"]["config"]  # its metrics do not read it
    assert find_drift(document, complete_run) == []


@pytest.mark.slow
def test_verify_reports_drift_after_a_raw_file_changes(complete_run, tmp_path, capsys):
    for folder in ("data", "results"):
        shutil.copytree(complete_run / folder, tmp_path / folder)
    provenance = tmp_path / "results" / "provenance.json"
    assert verify(provenance, tmp_path) == 0
    with open(tmp_path / "data" / "raw" / "nanoaod" / "1.root", "ab") as raw:
        raw.write(b"\0")
    assert verify(provenance, tmp_path) == 1
    report = capsys.readouterr().out
    assert "DRIFT jets: raw input data/raw/nanoaod/1.root changed" in report
    assert "DRIFT nano_muons: raw input data/raw/nanoaod/1.root changed" in report
    assert "tracks_cov" not in report


@pytest.mark.slow
def test_a_model_hyperparameter_reruns_only_that_models_jobs(complete_run, snapshot, tmp_path):
    extra = write_config(tmp_path / "hidden.yaml", "models: {jets: {hyperparameters: {hidden_dim: 32}}}\n")
    planned = planned_outputs(complete_run, extra, snakefile=snapshot)
    assert "results/train/jets/model.pt" in planned
    assert "results/generate/jets/generated.root" in planned
    assert "results/validate/jets/metrics.json" in planned
    assert all("/jets/" in path for path in planned - AGGREGATES), sorted(planned)


@pytest.mark.slow
def test_a_shared_validation_setting_reruns_exactly_the_validation_jobs(complete_run, snapshot, tmp_path):
    extra = write_config(tmp_path / "bins.yaml", "validation: {bins: 10}\n")
    planned = planned_outputs(complete_run, extra, snakefile=snapshot)
    metrics = {f"results/validate/{m}/metrics.json" for m in ("tracks_cov", "jets", "nano_muons", "ship_muons")}
    assert metrics <= planned
    assert all(p.startswith("results/validate/") or p in AGGREGATES for p in planned), sorted(planned)
    assert "results/validate/calratio/metrics.json" not in planned  # the CalRatio plots have no `validation` slice


@pytest.mark.slow
def test_the_c_export_switch_reruns_only_the_covariance_gan_export(complete_run, snapshot, tmp_path):
    """``export.c`` applies to the covariance GAN alone; with the whole ``export`` slice in every export
    rule's params, switching it had rerun all five exports."""
    extra = write_config(tmp_path / "c.yaml", "export: {c: true}\n")
    planned = planned_outputs(complete_run, extra, snakefile=snapshot)
    assert "results/export/tracks_cov/bundle.json" in planned
    assert all(p.startswith("results/export/tracks_cov/") or p in AGGREGATES for p in planned), sorted(planned)


@pytest.mark.slow
def test_editing_one_models_module_reruns_its_jobs_and_not_the_others(complete_run, snapshot, tmp_path):
    snakefile = copy_repository(tmp_path / "repo", source_root=snapshot.parent)
    assert planned_outputs(complete_run, snakefile=snakefile) == set()  # the copy itself changes nothing
    with open(tmp_path / "repo" / "pipeline_steps" / "models" / "flow.py", "a") as module:
        module.write("\n# an edit\n")
    planned = planned_outputs(complete_run, snakefile=snakefile)
    for model in ("jets", "nano_muons", "ship_muons"):
        assert f"results/train/{model}/model.pt" in planned
        assert f"results/generate/{model}/generated.root" in planned
    assert not any("tracks_cov" in path or "calratio" in path for path in planned), sorted(planned)
    assert not any(path.startswith(("results/ingest/", "results/preprocess/")) for path in planned)


@pytest.mark.slow
def test_adding_a_raw_file_reingests_its_part_only(complete_run, snapshot, tmp_path):
    extra = write_config(tmp_path / "unblock.yaml", "blacklist: []\n")
    planned = planned_outputs(complete_run, extra, snakefile=snapshot)
    assert {p for p in planned if p.startswith("results/ingest/") and p.endswith(".parquet")} == {
        ingested("ship", "muons", "1")}
    assert not any(p.startswith("data/raw/") for p in planned)  # the blacklisted toy file was written with its dataset
    assert "results/train/ship_muons/model.pt" in planned
    assert not any(name in path for path in planned for name in ("nanoaod", "jets", "tracks", "calratio"))


@pytest.mark.slow
def test_removing_a_raw_file_alone_in_its_part_is_reflected_downstream_without_reingesting(complete_run, snapshot, tmp_path):
    """The tiny datasets have one file per part (toy stems 0 and 1 hash to different parts of 64), so the
    part of a blacklisted file disappears and nothing is read again; a shared part would be re-ingested."""
    assert ingested("nanoaod", "jets", "0") != ingested("nanoaod", "jets", "1")
    extra = write_config(tmp_path / "block.yaml", 'blacklist: ["data/raw/ship/1.root", "data/raw/nanoaod/1.root"]\n')
    planned = planned_outputs(complete_run, extra, snakefile=snapshot)
    assert {"results/preprocess/jets/train.parquet", "results/preprocess/nano_muons/train.parquet",
            "results/ingest/nanoaod/summary.json"} <= planned
    assert not any(p.startswith("results/ingest/") and p.endswith(".parquet") for p in planned)
    assert not any("tracks_cov" in path or "ship" in path for path in planned)


@pytest.mark.slow
def test_one_target_builds_only_its_ancestors(snapshot, tmp_path):
    planned = planned_outputs(tmp_path, snakefile=snapshot, targets=("results/train/jets/model.pt",))
    assert "results/train/jets/model.pt" in planned
    assert "results/preprocess/jets/train.parquet" in planned
    assert {p for p in planned if p.startswith("data/raw/")} == {"data/raw/nanoaod/0.root", "data/raw/nanoaod/1.root"}
    assert {p for p in planned if p.endswith(".parquet") and "ingest" in p} == {
        ingested("nanoaod", "jets", "0"), ingested("nanoaod", "jets", "1")}
    assert not any(p.startswith(("results/generate/", "results/validate/")) for p in planned)
    assert not any(name in p for p in planned for name in ("muons", "tracks", "calratio", "ship"))


@pytest.mark.slow
def test_training_declares_its_memory_and_asks_for_more_on_retry(snapshot, tmp_path):
    text = dry_run(tmp_path, snakefile=snapshot, targets=("results/train/jets/model.pt",))
    train_job = text[text.index("rule train_flow:"):]
    train_job = train_job[:train_job.index("\n\n")]
    assert re.search(r"resources: .*\bmem_mb=4000\b", train_job), train_job  # 4000 * attempt, attempt 1
    assert "mem_mb=lambda wc, attempt: 4000 * attempt" in (REPO / "workflow/rules/train.smk").read_text()


@pytest.mark.slow
def test_trained_models_are_protected(complete_run):
    for path in ("results/train/jets/model.pt", "results/train/tracks_cov/generator.keras",
                 "results/train/calratio/chosen.keras", "results/export/jets/bundle.json"):
        mode = (complete_run / path).stat().st_mode
        assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), f"{path} is writable: {oct(mode)}"
    assert stat.S_IMODE((complete_run / ingested("nanoaod", "jets", "0")).stat().st_mode) & stat.S_IRGRP
