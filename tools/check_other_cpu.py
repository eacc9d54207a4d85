"""Check that the settings of ``make test-other-cpu`` took effect before the suite runs under them.

The settings make this machine compute as an older x86-64 CPU would (other SIMD kernels: other float sums,
other trained weights). A setting a library does not understand is dropped without a word: numpy 2.4
renamed its dispatch targets to groups (``X86_V3`` = AVX2, ``X86_V4`` = AVX-512, ...), and the old names
(``AVX512F``, ``AVX512_SKX``) only raise an ``ImportWarning``, which Python hides; two full runs of the suite
were called "numpy without AVX-512" while numpy kept every path (benchmarks/PERFORMANCE_LOG.md, 2026-12-06).
So each library that can say which kernels it took is asked here, and a mismatch stops the target.
Not checked, because the library does not say: MKL (``MKL_ENABLE_INSTRUCTIONS``) and oneDNN
(``ONEDNN_MAX_CPU_ISA``); ONNX Runtime has no such switch at all and keeps this CPU's kernels.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys


def numpy_problem() -> str | None:
    """numpy must know every name in NPY_DISABLE_CPU_FEATURES as a dispatch target, and use none of them."""
    import numpy as np

    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split()
    umath = np._core._multiarray_umath
    unknown = [name for name in disabled if name not in umath.__cpu_dispatch__]
    if unknown:
        return (f"numpy {np.__version__} dispatches to {umath.__cpu_dispatch__} only, so NPY_DISABLE_CPU_FEATURES "
                f"names {unknown} change nothing")
    kept = [name for name in disabled if umath.__cpu_features__.get(name)]
    return f"numpy {np.__version__} still uses {kept} despite NPY_DISABLE_CPU_FEATURES" if kept else None


def openblas_problem() -> str | None:
    """Every OpenBLAS loaded by numpy and scipy must run the kernels of OPENBLAS_CORETYPE."""
    from threadpoolctl import threadpool_info

    for module in ("numpy", "scipy.linalg"):  # each loads its own OpenBLAS, which threadpoolctl then finds
        importlib.import_module(module)

    wanted = os.environ.get("OPENBLAS_CORETYPE", "").lower()
    if not wanted:
        return None
    others = {info["filepath"]: info.get("architecture") for info in threadpool_info()
              if info.get("internal_api") == "openblas" and str(info.get("architecture", "")).lower() != wanted}
    return f"OpenBLAS runs other kernels than OPENBLAS_CORETYPE={wanted}: {others}" if others else None


def torch_problem() -> str | None:
    """ATen must run the kernels of ATEN_CPU_CAPABILITY."""
    import torch

    wanted = os.environ.get("ATEN_CPU_CAPABILITY", "").upper()
    taken = torch.backends.cpu.get_cpu_capability().upper()
    if wanted and taken != wanted:
        return f"torch {torch.__version__} runs {taken} kernels despite ATEN_CPU_CAPABILITY={wanted}"
    return None


def main() -> int:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print(f"check_other_cpu: these settings are x86-64's; this machine is {platform.machine()}", file=sys.stderr)
        return 1
    problems = [problem for check in (numpy_problem, openblas_problem, torch_problem) if (problem := check())]
    for problem in problems:
        print(f"check_other_cpu: {problem}", file=sys.stderr)
    if not problems:
        print("check_other_cpu: numpy, OpenBLAS and ATen run the kernels asked for")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
