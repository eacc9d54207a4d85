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


def spline_inputs(seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Unconstrained spline parameters [400, 9, 3K - 1] and points [400, 9], ~20 % beyond the bound of 5."""
    generator = torch.Generator().manual_seed(seed)
    parameters = 2.0 * torch.randn(400, 9, 3 * N_BINS - 1, generator=generator, dtype=torch.float64)
    x = 4.0 * torch.randn(400, 9, generator=generator, dtype=torch.float64)
    return parameters.to(dtype), x.to(dtype)


def evaluate(spline: type, parameters: torch.Tensor, x: torch.Tensor, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """The spline's value, log slope and inverse at ``x``, and the gradients of a random weighting of the
    value and log slope with respect to the parameters and ``x`` (what a flow's training step takes)."""
    parameters, x = parameters.clone().requires_grad_(), x.clone().requires_grad_()
    transform = spline(*parameters.split([N_BINS, N_BINS, N_BINS - 1], dim=-1), bound=5.0,
                       slope=rqs_spline.MIN_SLOPE)
    y, ladj = transform.call_and_ladj(x)
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(2, *x.shape, generator=generator, dtype=torch.float64).to(x.dtype)
    (weights[0] * y + weights[1] * ladj).sum().backward()
    return y.detach(), ladj.detach(), transform.inv(x.detach()), parameters.grad, x.grad


@pytest.mark.parametrize("capability", ["AVX2", "AVX512"])
def test_spline_is_zukos_with_the_softmax_plain_or_padded(monkeypatch, capability):
    """Plain softmax (as on AVX2): every value is zuko's bit for bit, so the constructor computes zuko's
    knots and the forward zuko's expressions. The gradients are the hand-written backward's.

    Every result is then compared with zuko's spline in float64: ours must be as exact as zuko's float32
    one, its worst element within twice zuko's worst (the same kind of rounding, the worst case free to
    fall on another element). Padded (as on AVX-512), the softmax's 8-term sum may be taken in another
    order, which the spline's slopes (up to 1e3 either way, zuko's minimum slope 1e-3) amplify: 7e-5 on
    a log slope here, within the same bound.
    """
    monkeypatch.setattr(rqs_spline, "_ATEN_CAPABILITY", capability)
    parameters, x = spline_inputs()
    ours = evaluate(RQSTransform, parameters, x)
    zukos = evaluate(MonotonicRQSTransform, parameters, x)
    if capability == "AVX2":
        assert all(torch.equal(found, expected) for found, expected in zip(ours[:3], zukos[:3]))
    exact = evaluate(MonotonicRQSTransform, *spline_inputs(dtype=torch.float64))
    for found, expected, reference in zip(ours, zukos, exact):
        zukos_error = (expected.double() - reference).abs().max()
        assert 0 < (found.double() - reference).abs().max() <= 2 * zukos_error


def test_hand_written_gradient_is_autograds_through_zukos_spline():
    """In float64 the closed-form backward equals autograd through zuko's expressions to rounding: the
    gradients reach ~3e2 (slopes up to 1e3), so 1e-10 relative leaves ~1e5 ulp of room for the two
    evaluation orders yet fails any wrong term. Points inside and outside the knots, every parameter."""
    parameters, x = spline_inputs(dtype=torch.float64)
    ours = evaluate(RQSTransform, parameters, x)
    zukos = evaluate(MonotonicRQSTransform, parameters, x)
    outside = x.abs() > 5.0
    assert outside.any() and (~outside).any()
    for found, expected in zip(ours, zukos):
        torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-10)


def test_hand_written_gradient_passes_finite_differences():
    """The backward checked against central differences, independently of zuko's code."""
    parameters, x = spline_inputs(seed=3, dtype=torch.float64)
    parameters, x = parameters[:12, :3].clone().requires_grad_(), x[:12, :3].clone().requires_grad_()

    def value_and_log_slope(parameters, x):
        return RQSTransform(*parameters.split([N_BINS, N_BINS, N_BINS - 1], dim=-1), bound=5.0,
                            slope=rqs_spline.MIN_SLOPE).call_and_ladj(x)

    assert torch.autograd.gradcheck(value_and_log_slope, (parameters, x))


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


TRAINING_SCRIPT = """
import hashlib, torch
from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow
torch.set_num_threads(1)
targets = [f"t{i}" for i in range(7)]
spec = FlowSpec(["c0", "c1", "c2"], targets, FlowHyperparameters(n_bins=8, hidden_dim=32, n_blocks=1),
                [FlowPart(None, None, targets)])
torch.manual_seed(0)
flow = build_flow(spec)
optimizer = torch.optim.AdamW(flow.parameters(), lr=1e-2, fused=True)
for step in range(4):
    conditions, values = torch.randn(512, 3), 1.5 * torch.randn(512, 7)
    loss = -flow.log_prob(values, conditions).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(hashlib.sha256(b"".join(v.numpy().tobytes() for v in flow.state_dict().values())).hexdigest())
"""


def test_a_flow_trains_to_the_same_bytes_under_avx2_and_avx512_kernels():
    """What the padding buys beyond speed: with the plain softmax the AVX-512 kernels summed the bins in
    another order and trained other weights than the AVX2 ones; padded, four steps of an 8-bin flow give
    the same bytes. Needs a CPU that runs both.

    ATen's kernels are what differs between the two runs; MKL's matrix products are held to AVX2 in both.
    MKL chooses kernels of its own by CPU: on an Intel Xeon (AVX-512) a run with MKL free trained other
    weights than the same ATen kernels with MKL held to AVX2; on an AMD EPYC (AVX-512) the two agreed, so
    the test passed there while it held MKL in one run only. Which bytes a machine trains is the README's
    "Same bytes without help"."""
    if len(runnable([{"ATEN_CPU_CAPABILITY": "avx512"}])) == 0:
        pytest.skip("this CPU cannot run ATen's AVX-512 kernels")
    digests = set()
    for kernels in ({"ATEN_CPU_CAPABILITY": "avx512"}, {"ATEN_CPU_CAPABILITY": "avx2"}):
        env = {**os.environ, **kernels, "MKL_ENABLE_INSTRUCTIONS": "AVX2", "PYTHONPATH": str(PROJECT)}
        result = subprocess.run([sys.executable, "-c", TRAINING_SCRIPT], env=env, capture_output=True, text=True,
                                check=True, cwd=PROJECT)
        digests.add(result.stdout.strip())
    assert len(digests) == 1
