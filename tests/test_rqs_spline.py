"""The flows' spline is zuko's: the same knots and values, its softmax padded only where ATen's kernel is slow,
and padding changes no float under the kernels where it is claimed not to (models/rqs_spline.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from zuko.transforms import MonotonicRQSTransform

from pipeline_steps.models import rqs_spline
from pipeline_steps.models.rqs_spline import RQSTransform
from tests.test_export_kernels import runnable

PROJECT = Path(__file__).resolve().parents[1]
N_BINS = 8


def spline_inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Unconstrained spline parameters and points, ~20 % of them beyond the bound of 5."""
    generator = torch.Generator().manual_seed(seed)
    parameters = 2.0 * torch.randn(400, 9, 3 * N_BINS - 1, generator=generator)
    x = 4.0 * torch.randn(400, 9, generator=generator)
    return (*parameters.split([N_BINS, N_BINS, N_BINS - 1], dim=-1), x)


def both_directions(transform: MonotonicRQSTransform, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    y, ladj = transform.call_and_ladj(x)
    return y, ladj, transform.inv(x)


@pytest.mark.parametrize("capability", ["AVX2", "AVX512"])
def test_spline_is_zukos_with_the_softmax_plain_or_padded(monkeypatch, capability):
    """Plain (as on AVX2): every value is zuko's bit for bit, so the constructor computes zuko's knots.

    Padded (as on AVX-512): the softmax's 8-term sum may be taken in another order, so the float32 results
    differ from zuko's by rounding, which the spline's slopes (up to 1e3 either way, zuko's minimum slope
    1e-3) amplify: 7e-5 on a log-slope here. Both are then compared with zuko's spline in float64: ours must
    be as exact as zuko's float32 one, its worst element within twice zuko's worst (the same expressions
    rounded alike, the worst case free to fall on another element).
    """
    monkeypatch.setattr(rqs_spline, "_ATEN_CAPABILITY", capability)
    widths, heights, derivatives, x = spline_inputs()
    ours = both_directions(RQSTransform(widths, heights, derivatives, bound=5.0), x)
    zukos = both_directions(MonotonicRQSTransform(widths, heights, derivatives, bound=5.0), x)
    if capability == "AVX2":
        assert all(torch.equal(found, expected) for found, expected in zip(ours, zukos))
        return
    exact = both_directions(MonotonicRQSTransform(widths.double(), heights.double(), derivatives.double(),
                                                  bound=5.0), x.double())
    for found, expected, reference in zip(ours, zukos, exact):
        zukos_error = (expected.double() - reference).abs().max()
        assert 0 < (found.double() - reference).abs().max() <= 2 * zukos_error


SOFTMAX_SCRIPT = """
import json, sys, torch
import torch.nn.functional as F
from pipeline_steps.models import rqs_spline
torch.manual_seed(0)
logits = 3.0 * torch.randn(2048, 9, 8)
upstream = torch.randn(2048, 9, 8)
found = {}
for name, capability in (("plain", "none"), ("padded", "AVX512")):
    rqs_spline._ATEN_CAPABILITY = capability   # which path bin_softmax takes, whatever this CPU runs
    x = logits.clone().requires_grad_()
    y = rqs_spline.bin_softmax(x)
    y.backward(upstream)
    found[name] = [y.detach().flatten().tolist(), x.grad.flatten().tolist()]
print(json.dumps(found))
"""


def softmax_under(kernel: str) -> dict[str, list]:
    """Plain and padded bin softmax (values, gradients) under one forced ATen kernel, in a subprocess."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": kernel, "PYTHONPATH": str(PROJECT)}
    result = subprocess.run([sys.executable, "-c", SOFTMAX_SCRIPT], env=env, capture_output=True, text=True,
                            check=True, cwd=PROJECT)
    return json.loads(result.stdout)


def test_padding_changes_no_float_where_it_is_not_needed_and_matches_avx2_where_it_is():
    """The docstring's claims: under the baseline and AVX2 kernels the padded softmax is the plain one bit
    for bit (so padding never changes a model there); under AVX-512 the padded one is AVX2's plain one."""
    kernels = [c["ATEN_CPU_CAPABILITY"] for c in runnable([{"ATEN_CPU_CAPABILITY": k} for k in
                                                            ("default", "avx2", "avx512")])]
    results = {kernel: softmax_under(kernel) for kernel in kernels}
    for kernel in ("default", "avx2"):
        if kernel in results:
            assert results[kernel]["padded"] == results[kernel]["plain"], kernel
    if "avx512" in results and "avx2" in results:
        assert results["avx512"]["padded"] == results["avx2"]["plain"]
