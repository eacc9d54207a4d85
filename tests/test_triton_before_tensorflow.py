"""triton is loaded before TensorFlow where it is installed (pipeline_steps/common/triton_before_tensorflow.py).

The real pair segfaults in the other order (torch's CUDA builds bring triton). These checks put stand-in
packages that record their import first on the path, so they run, and can fail, on a machine with neither.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# prints: the order of the stand-ins' imports, the finders that `import pipeline_steps` added, and those
# left once TensorFlow is imported
CODE = ("import sys; n = len(sys.meta_path); import pipeline_steps, builtins; hooked = len(sys.meta_path) - n; "
        "import tensorflow; print(builtins.imported, hooked, len(sys.meta_path) - n)")


def _run_with_stand_ins(folder, *packages: str) -> str:
    for package in packages:
        (folder / package).mkdir()
        (folder / package / "__init__.py").write_text(
            "import builtins; builtins.imported = getattr(builtins, 'imported', []) + [__name__]\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", CODE], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_triton_is_imported_just_before_tensorflow(tmp_path):
    assert _run_with_stand_ins(tmp_path, "triton", "tensorflow") == "['triton', 'tensorflow'] 1 0"


@pytest.mark.skipif(importlib.util.find_spec("triton") is not None, reason="a real triton is installed here")
def test_nothing_is_hooked_without_triton(tmp_path):
    assert _run_with_stand_ins(tmp_path, "tensorflow") == "['tensorflow'] 0 0"
