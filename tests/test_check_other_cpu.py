"""`make test-other-cpu` runs the suite only once numpy, OpenBLAS and ATen took the kernels it asks for."""

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "check_other_cpu.py"

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the settings are x86-64's")


def makefile_settings() -> dict[str, str]:
    """The ``OTHER_CPU`` variable of the Makefile as {name: value}: the test checks what the target sets."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    line = re.search(r"^OTHER_CPU\s*:=(.*)$", text, re.MULTILINE).group(1)
    return dict(word.split("=", 1) for word in shlex.split(line))


def check(settings: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL)], env={**os.environ, **settings},
                          capture_output=True, text=True, timeout=300)


def test_the_targets_settings_take_effect():
    settings = makefile_settings()
    assert {"ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE"} <= set(settings)
    result = check(settings)
    assert result.returncode == 0, result.stderr


def test_numpys_old_feature_names_are_refused_not_ignored():
    """numpy 2.4 only warns (an ImportWarning, hidden by default) and keeps every path for these names."""
    result = check({**makefile_settings(), "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX"})
    assert result.returncode == 1
    assert "['AVX512F', 'AVX512_SKX'] change nothing" in result.stderr


def test_an_openblas_core_it_does_not_know_is_refused():
    result = check({**makefile_settings(), "OPENBLAS_CORETYPE": "Haswel"})
    assert result.returncode == 1 and "OPENBLAS_CORETYPE=haswel" in result.stderr
