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


def test_hash_is_stable_and_order_independent():
    assert source_hash("train/flow", "common") == source_hash("common", "train/flow")
    assert source_hash("train/flow") != source_hash("train/covariance_gan")


def test_package_versions_name_every_package_asked_for_and_none_for_an_absent_one():
    import numpy

    from pipeline_steps.common.versions import package_versions

    versions = package_versions(["numpy", "no-such-package-in-this-environment"])
    assert versions == {"numpy": numpy.__version__, "no-such-package-in-this-environment": None}
