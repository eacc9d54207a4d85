"""source_hash follows imports: an edit in a shared helper reruns its users, and only them."""

from pipeline_steps.common.source_hash import PACKAGE_ROOT, _module_files, _with_imports, source_hash


def _closure(module: str) -> set[str]:
    return {str(p.relative_to(PACKAGE_ROOT)) for p in _with_imports(set(_module_files(module)))}


def test_imports_are_followed_transitively():
    flow_training = _closure("train/flow")
    assert {"train/schedule.py", "models/flow.py", "common/atomic.py"} <= flow_training
    assert "models/covariance_gan.py" not in flow_training


def test_unimported_module_does_not_enter_the_hash():
    assert "scan/ranking.py" not in _closure("validate/step")
    assert "validate/figure_of_merit.py" in _closure("validate/step")


def test_a_job_hashes_the_common_helpers_it_runs_and_no_others():
    """Rules had named the whole common/ folder: a docstring edit in common/figures reran every job, the
    toy files and ingestion included. Now what the job's modules import is in, including helpers imported
    inside a function (common/logs imports common/reproducible late) and the packages' __init__ files."""
    for stage in ("ingest", "toy"):
        closure = {str(p.relative_to(PACKAGE_ROOT)) for p in _with_imports({*_module_files(stage), *_module_files("common/logs")})}
        assert {"common/logs.py", "common/reproducible.py", "common/errors.py", "__init__.py", "common/__init__.py",
                "common/triton_before_tensorflow.py", f"{stage}/__init__.py"} <= closure, stage
        assert "common/figures.py" not in closure and "common/covariance.py" not in closure, stage
    assert "common/figures.py" in _closure("validate/step")


def test_hash_is_stable_and_order_independent():
    assert source_hash("train/flow", "common/logs") == source_hash("common/logs", "train/flow")
    assert source_hash("train/flow") != source_hash("train/covariance_gan")


def test_package_versions_name_every_package_asked_for_and_none_for_an_absent_one():
    import numpy

    from pipeline_steps.common.versions import package_versions

    versions = package_versions(["numpy", "no-such-package-in-this-environment"])
    assert versions == {"numpy": numpy.__version__, "no-such-package-in-this-environment": None}


def test_the_package_of_a_named_module_is_in_its_hash(tmp_path, monkeypatch):
    """models/__init__.py runs with models/covariance_gan but was hashed only when an import reached it."""
    from pipeline_steps.common import source_hash as hashing

    package = tmp_path / "pipeline_steps"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("A = 1\n")
    (package / "models" / "gan.py").write_text("B = 2\n")
    monkeypatch.setattr(hashing, "PACKAGE_ROOT", package)
    hashing._imported_package_files.cache_clear()
    before = hashing.source_hash("models/gan")
    (package / "models" / "__init__.py").write_text("A = 3\n")
    hashing._imported_package_files.cache_clear()
    assert hashing.source_hash("models/gan") != before
