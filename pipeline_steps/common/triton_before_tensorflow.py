"""Where triton is installed, it is loaded before TensorFlow: the other order crashes the process.

TensorFlow's wheels since 2.20 load their library with ``RTLD_GLOBAL``, which puts TensorFlow's
statically linked LLVM in the global symbol table; triton (3.7) loaded after it binds its own LLVM
calls to that copy and segfaults inside ``dlopen`` (tensorflow/tensorflow#124205: ``import tensorflow;
import triton`` crashes with TensorFlow 2.21 and triton 3.7.1, the other order does not). torch's
CUDA builds, the ones GPU users install, bring triton and import it lazily (at the first
``torch.optim`` step, for one), so a process that had imported TensorFlow and then trained or
exported a flow died with SIGSEGV: the test suite (``tests/test_export_kernels.py``) and
``make bench`` (``bench_export.py``) did. The pipeline's jobs import one framework each.

:func:`install` puts an import hook first on ``sys.meta_path`` that imports triton the first time
``tensorflow`` is imported, just before it, and then removes itself. ``pipeline_steps/__init__.py``
calls it, and every job script, benchmark and the tests' conftest import ``pipeline_steps`` before
anything else, so the hook is in place before any TensorFlow import. Without triton (torch's CPU build)
nothing is installed; a process that imported TensorFlow before ``pipeline_steps`` is left as it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["install"]


class _TritonFirst(importlib.abc.MetaPathFinder):
    """Imports triton when ``tensorflow`` is about to be found, then steps aside; finds nothing itself."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            sys.meta_path.remove(self)
            try:
                importlib.import_module("triton")
            except Exception:  # a triton that cannot be imported cannot crash a later import either
                pass
        return None


def install() -> None:
    """Load triton before TensorFlow in this process, where triton is installed (see the module)."""
    if "tensorflow" in sys.modules or any(isinstance(finder, _TritonFirst) for finder in sys.meta_path):
        return
    if importlib.util.find_spec("triton") is not None:
        sys.meta_path.insert(0, _TritonFirst())
