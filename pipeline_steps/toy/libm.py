"""Float64 elementary functions that give the same bits whichever SIMD code numpy picks: the C library's.

Why: on a CPU with AVX-512, numpy computes float64 ``exp``, ``log``, ``tan``, ``arctan``, ``power`` and
others with its own AVX-512 code or Intel's SVML; elsewhere it calls the C library (glibc). The two differ in
the last bit for some inputs (2026-12-07, Intel Xeon, numpy 2.4.6, 1M normal values: the hashes of ``exp``,
``log``, ``tan``, ``arctan`` and ``10.0 ** x`` change under ``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL
AVX512_SPR"``; ``sin`` and ``cos`` do not). The LHCb toy writes float64 values made with them, so its files,
and the ``tracks_cov`` model trained on them, differed between an AVX-512 machine and an AVX2-only one, where
the other toys (written in float32, where a last-bit difference almost never survives the rounding) did not.

Python's ``math`` functions are glibc's, one value at a time, whatever numpy dispatches. glibc has its own
choice, between code built for FMA and for plain SSE2 (``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA`` moved
``exp``, ``log``, ``tan``, ``atan``, ``pow``, ``sin`` and ``cos``): every x86-64 CPU with AVX2 has FMA, so the
values are the same on those CPUs, not on older ones. numpy's random generators call the same glibc
functions (``lognormal``'s ``exp``).

Cost: one Python call per value, ~65 ns (numpy's ~1 ns): ~4 ms for a 10,000-track toy file. Meant for data
generation, not for per-row work on real inputs.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["exp", "tan", "arctan", "cos", "sin", "power"]


def exp(x: np.ndarray) -> np.ndarray:
    """``np.exp(x)`` with glibc's bits (an overflow raises OverflowError)."""
    return _each(math.exp, x)


def tan(x: np.ndarray) -> np.ndarray:
    """``np.tan(x)`` with glibc's bits."""
    return _each(math.tan, x)


def arctan(x: np.ndarray) -> np.ndarray:
    """``np.arctan(x)`` with glibc's bits."""
    return _each(math.atan, x)


def cos(x: np.ndarray) -> np.ndarray:
    """``np.cos(x)`` with glibc's bits (numpy's float64 ``cos`` is glibc's today; this keeps it so)."""
    return _each(math.cos, x)


def sin(x: np.ndarray) -> np.ndarray:
    """``np.sin(x)`` with glibc's bits (as ``cos``)."""
    return _each(math.sin, x)


def power(base: float, exponent: np.ndarray) -> np.ndarray:
    """``base ** exponent`` with glibc's ``pow`` bits."""
    return _each(lambda value: math.pow(base, value), exponent)


def _each(function: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """``function`` of every element of ``x`` (any shape), as a float64 array of the same shape."""
    return np.asarray(np.frompyfunc(function, 1, 1)(np.asarray(x, dtype=np.float64)), dtype=np.float64)
