"""zuko's monotonic rational-quadratic spline, the same floats forward, cheaper to train on a CPU.

The flows' training step is mostly the 17 (jets) spline couplings' small element-wise operations and their
gradients. Two costs of zuko's :class:`~zuko.transforms.MonotonicRQSTransform` went, neither changing a
forward value:

- **the bin softmax under ATen's AVX-512 kernels.** ATen's CPU softmax along the last dimension vectorises
  over that dimension, and a row shorter than one vector takes a slow path: on a CPU where ATen runs its
  AVX-512 kernels (16 floats a vector), a softmax over the default flows' 8 bins cost ~28 ns an element
  against ~3 ns under its AVX2 kernels (8 floats a vector), forward and backward alike (2026-12-04, AMD
  EPYC, 1 thread, [1024 x 9 x 8]: 2,190 us against 310 us): a quarter of a jets step. :func:`bin_softmax`
  pads a row of fewer bins than one AVX-512 vector with ``-inf`` to 16 (``exp(-inf) = 0`` adds nothing to
  the sum) and drops the padded columns: the vectorised kernel, 543 us. Under the AVX2 and baseline
  kernels the padded softmax is bit-identical to the plain one (8 bins, values and gradients;
  tests/test_rqs_spline.py), so it is used only where it pays: under the AVX-512 kernels, on CPU tensors,
  with fewer than 16 bins. There its values and gradients are bit-identical to the AVX2 kernels' plain
  softmax, and a flow trains to the same weights under ATen's AVX-512 and AVX2 kernels (a test trains one
  under each).
- **autograd through the spline.** :class:`_Knots` builds the knots from the conditioner's outputs and
  :class:`_SplineAtKnots` takes the value and log slope at the points, each with zuko's expressions in
  zuko's order (the same floats) and each with its gradient in closed form, instead of autograd recording
  ~70 operations per coupling and replaying ~130, each a pass over the batch. Interleaved, 1 thread: the
  formula's backward took the jets step from 212 to 195 ms, SHiP's from 63 to 55, NanoAOD muons' from 86 to
  74; the knots' then from 193 to 170, 56 to 44 and 76 to 65 ms. A gradient is the same derivative summed in
  another order, so it differs from autograd's by rounding (equal to 1e-10 in float64, as exact as autograd's
  in float32, and central differences agree; tests/test_rqs_spline.py).

The minimum slope is this module's :data:`MIN_SLOPE`, not zuko's default: zuko's default was 1e-4 up to
1.4 and 1e-3 since 1.5, so a flow built on the default would be another function (and a checkpoint
another model) with another zuko installed, e.g. in a cluster's conda env.

The inverse (sampling) is zuko's. The ONNX export does not go through this class: it rebuilds the inverse
spline feature-major (``export/torch_export.py``) and is verified against this class's inverse.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from zuko.transforms import MonotonicRQSTransform

__all__ = ["RQSTransform", "bin_softmax", "PADDED_SOFTMAX_WIDTH", "MIN_SLOPE"]

PADDED_SOFTMAX_WIDTH = 16  # floats in one AVX-512 vector: rows this long take ATen's vectorised softmax
# The spline's slopes lie in [MIN_SLOPE, 1 / MIN_SLOPE]: part of what a checkpoint means (the export's inverse
# spline uses it too), so fixed here; 1e-3 is zuko's default since 1.5, what every flow so far trained with.
MIN_SLOPE = 1e-3
_ATEN_CAPABILITY = torch.backends.cpu.get_cpu_capability()  # decided per process


def bin_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``F.softmax(logits, dim=-1)``, padded to :data:`PADDED_SOFTMAX_WIDTH` where ATen's kernel needs it."""
    bins = logits.shape[-1]
    if bins >= PADDED_SOFTMAX_WIDTH or not _pads(logits):
        return F.softmax(logits, dim=-1)
    padded = F.pad(logits, (0, PADDED_SOFTMAX_WIDTH - bins), value=float("-inf"))
    return F.softmax(padded, dim=-1)[..., :bins]


class RQSTransform(MonotonicRQSTransform):
    """:class:`zuko.transforms.MonotonicRQSTransform` whose knots come from :class:`_Knots` (softmaxes by
    :func:`bin_softmax`) and whose ``call_and_ladj`` (what a flow's ``log_prob`` calls) is
    :class:`_SplineAtKnots`; the inverse is zuko's."""

    def __init__(self, widths: torch.Tensor, heights: torch.Tensor, derivatives: torch.Tensor,
                 bound: float, slope: float = MIN_SLOPE, **kwargs) -> None:
        super(MonotonicRQSTransform, self).__init__(**kwargs)  # zuko's Transform base, not zuko's knots
        self.horizontal, self.vertical, self.derivatives = _Knots.apply(widths, heights, derivatives, bound, slope)

    def call_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """zuko's ``y`` and ``log |dy/dx|``, same floats, differentiated by :class:`_SplineAtKnots`."""
        return _SplineAtKnots.apply(x, self.horizontal, self.vertical, self.derivatives)


class _Knots(torch.autograd.Function):
    """The spline's knots from the conditioner's unconstrained outputs, with a hand-written backward.

    The forward is zuko 1.6's constructor, expression for expression (the same floats): each output is
    softly clamped, ``v / (1 + |v / c|)`` (``c = log(slope) / 2`` for widths and heights, ``log(slope)``
    for the slopes); widths and heights go through a softmax, a leading 0 and a cumulative sum onto
    ``[-bound, bound]``; the inner slopes are exponentiated between two end slopes of 1. Autograd recorded
    ~30 operations on [rows, features, bins] tensors and replayed ~50; their closed forms are short:
    the clamp's derivative is ``1 / (1 + |v / c|)^2``, the softmax's ``p (g - sum(g p))``, a cumulative
    sum's a reversed cumulative sum, and ``exp``'s its value.
    """

    @staticmethod
    def forward(ctx, widths, heights, derivatives, bound: float, slope: float):
        log_slope = math.log(slope)
        width_scale = 1 + abs(2 * widths / log_slope)
        height_scale = 1 + abs(2 * heights / log_slope)
        slope_scale = 1 + abs(derivatives / log_slope)
        bin_widths = bin_softmax(widths / width_scale)
        bin_heights = bin_softmax(heights / height_scale)
        knot_slopes = torch.exp(F.pad(derivatives / slope_scale, (1, 1), value=0))
        horizontal = bound * (2 * torch.cumsum(F.pad(bin_widths, (1, 0), value=0), dim=-1) - 1)
        vertical = bound * (2 * torch.cumsum(F.pad(bin_heights, (1, 0), value=0), dim=-1) - 1)
        ctx.save_for_backward(width_scale, height_scale, slope_scale, bin_widths, bin_heights, knot_slopes)
        ctx.bound = bound
        return horizontal, vertical, knot_slopes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_horizontal, grad_vertical, grad_slopes):
        width_scale, height_scale, slope_scale, bin_widths, bin_heights, knot_slopes = ctx.saved_tensors

        def through_bins(grad_knots, probabilities, scale):
            # knot j = bound (2 sum_{i<=j} p_i - 1) with p_0 = 0: dL/dp_i = 2 bound sum_{j>=i} dL/dknot_j
            grad_p = (2 * ctx.bound) * grad_knots[..., 1:].flip(-1).cumsum(-1).flip(-1)
            grad_logits = probabilities * (grad_p - (grad_p * probabilities).sum(-1, keepdim=True))
            return grad_logits / (scale * scale)

        grad_derivatives = (grad_slopes * knot_slopes)[..., 1:-1] / (slope_scale * slope_scale)
        return (through_bins(grad_horizontal, bin_widths, width_scale),
                through_bins(grad_vertical, bin_heights, height_scale), grad_derivatives, None, None)


class _SplineAtKnots(torch.autograd.Function):
    """The spline's value and log slope at ``x`` given its knots, with a hand-written backward.

    The forward is zuko 1.6's ``call_and_ladj`` after the knots, expression for expression, so the values
    are zuko's bit for bit. Autograd would record its ~40 element-wise operations and replay ~80 for the
    gradient, each a pass over the batch; the backward below takes the partial derivatives in closed form,
    sharing the common factors (checked against autograd in float64, tests/test_rqs_spline.py).

    With ``w = x1 - x0``, ``h = y1 - y0``, ``s = h / w``, ``z = (x - x0) / w``, ``t = z (1 - z)``:
    ``y = y0 + h A / B`` with ``A = s z^2 + d0 t``, ``B = s + (d0 + d1 - 2 s) t``, and
    ``ladj = log(s^2 C / B^2)`` with ``C = 2 s t + d0 (1 - z)^2 + d1 z^2``. Outside the knots (``mask``
    false) ``y = x`` and ``ladj = 0``: no gradient reaches the knots, ``dy/dx = 1``.
    """

    @staticmethod
    def forward(ctx, x, horizontal, vertical, derivatives):
        bins = horizontal.shape[-1] - 1
        k = MonotonicRQSTransform.searchsorted(horizontal, x) - 1
        mask = torch.logical_and(0 <= k, k < bins)
        k = k % bins
        index = torch.stack((k, k + 1), dim=-1)
        x0, x1 = horizontal.gather(-1, index).unbind(-1)
        y0, y1 = vertical.gather(-1, index).unbind(-1)
        d0, d1 = derivatives.gather(-1, index).unbind(-1)

        s = (y1 - y0) / (x1 - x0)
        z = mask * (x - x0) / (x1 - x0)
        y = y0 + (y1 - y0) * (s * z**2 + d0 * z * (1 - z)) / (s + (d0 + d1 - 2 * s) * z * (1 - z))
        jacobian = (
            s**2
            * (2 * s * z * (1 - z) + d0 * (1 - z) ** 2 + d1 * z**2)
            / (s + (d0 + d1 - 2 * s) * z * (1 - z)) ** 2
        )
        ctx.save_for_backward(index, mask, x0, x1, y0, y1, d0, d1, s, z)
        ctx.n_knots = bins + 1
        return torch.where(mask, y, x), mask * jacobian.log()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_ladj):
        index, mask, x0, x1, y0, y1, d0, d1, s, z = ctx.saved_tensors
        inside = mask.to(grad_y.dtype)
        gy, gl = grad_y * inside, grad_ladj * inside
        w, h = x1 - x0, y1 - y0
        one_z, slope_sum = 1 - z, d0 + d1 - 2 * s
        t, u = z * one_z, 1 - 2 * z
        a = s * z * z + d0 * t
        b = s + slope_sum * t
        c = 2 * s * t + d0 * one_z * one_z + d1 * z * z
        gy_h_b2, gl_b = gy * h / (b * b), gl / b
        gl_c, gl_b_t = gl / c, 2 * gl_b * t
        b_z = slope_sum * u                                     # dB/dz; dB/ds = 1 - 2t, dB/dd0 = dB/dd1 = t
        # each: d/dq (y) * grad_y + d/dq (ladj) * grad_ladj, for q = z, s, d0, d1
        g_z = gy_h_b2 * ((2 * s * z + d0 * u) * b - a * b_z) + 2 * gl_c * (s * u - d0 * one_z + d1 * z) - 2 * gl_b * b_z
        g_s = gy_h_b2 * (z * z * b - a * (1 - 2 * t)) + 2 * gl / s + 2 * gl_c * t - 2 * gl_b * (1 - 2 * t)
        g_d0 = gy_h_b2 * (t * b - a * t) + gl_c * one_z * one_z - gl_b_t
        g_d1 = -gy_h_b2 * a * t + gl_c * z * z - gl_b_t
        # through h (y = y0 + h A/B, s = h / w) and w (z = (x - x0) / w, s = h / w)
        g_h = gy * a / b + g_s / w
        g_w = -(g_z * z + g_s * s) / w
        g_x = g_z / w + grad_y * (1 - inside)
        knots = (*index.shape[:-1], ctx.n_knots)

        def to_knots(g0, g1):
            return grad_y.new_zeros(knots).scatter_add_(-1, index, torch.stack((g0, g1), dim=-1))

        return (g_x, to_knots(-g_z / w - g_w, g_w), to_knots(gy - g_h, g_h), to_knots(g_d0, g_d1))


def _pads(logits: torch.Tensor) -> bool:
    """Whether this tensor's softmax runs on ATen's AVX-512 CPU kernels."""
    return logits.device.type == "cpu" and _ATEN_CAPABILITY.startswith("AVX512")
