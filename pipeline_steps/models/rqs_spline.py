"""zuko's monotonic rational-quadratic spline with its bin softmax taken where ATen's kernel is fast.

ATen's CPU softmax along the last dimension vectorises over that dimension, and a row shorter than one
vector takes a slow path: on a CPU where ATen runs its AVX-512 kernels (16 floats a vector), a softmax
over the 8 bins of the default flows costs ~28 ns an element against ~3 ns under its AVX2 kernels
(8 floats a vector), forward and backward alike (2026-12-04, AMD EPYC, 1 thread, [1024 x 9 x 8]:
2,190 us against 310 us). The flows take two such softmaxes per coupling and row, 34 per jets training
step: a quarter of the step on that CPU.

:class:`RQSTransform` is :class:`zuko.transforms.MonotonicRQSTransform` computed with the same expressions
in the same order (zuko 1.6), except that the softmax over fewer bins than one AVX-512 vector is taken over
the bins padded with ``-inf`` to 16: ``exp(-inf) = 0`` adds nothing to the sum, and the padded columns are
dropped. The padded row runs the vectorised kernel. On AVX2 and baseline kernels the padded softmax is
bit-identical to the plain one (checked for 8 bins, forward and gradient; tests/test_rqs_spline.py), so
it is used only where it pays: under ATen's AVX-512 kernels, on CPU tensors, with fewer than 16 bins. There
its values and gradients are bit-identical to the AVX2 kernels' plain softmax, so a model trained on an
AVX-512 CPU takes the same float sums in its softmax as on an AVX2 one.

The ONNX export does not go through this class: it rebuilds the inverse spline feature-major
(``export/torch_export.py``) and is verified against this class's inverse, which is zuko's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from zuko.transforms import MonotonicRQSTransform

__all__ = ["RQSTransform", "bin_softmax", "PADDED_SOFTMAX_WIDTH"]

PADDED_SOFTMAX_WIDTH = 16  # floats in one AVX-512 vector: rows this long take ATen's vectorised softmax


def bin_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``F.softmax(logits, dim=-1)``, padded to :data:`PADDED_SOFTMAX_WIDTH` where ATen's kernel needs it."""
    bins = logits.shape[-1]
    if bins >= PADDED_SOFTMAX_WIDTH or not _pads(logits):
        return F.softmax(logits, dim=-1)
    padded = F.pad(logits, (0, PADDED_SOFTMAX_WIDTH - bins), value=float("-inf"))
    return F.softmax(padded, dim=-1)[..., :bins]


class RQSTransform(MonotonicRQSTransform):
    """:class:`zuko.transforms.MonotonicRQSTransform` whose two softmaxes are :func:`bin_softmax`.

    Only the constructor differs (it is where zuko takes the softmax); the forward, inverse and log
    Jacobian are zuko's, on the knots built here.
    """

    def __init__(self, widths: torch.Tensor, heights: torch.Tensor, derivatives: torch.Tensor,
                 bound: float = 5.0, slope: float = 1e-3, **kwargs) -> None:
        super(MonotonicRQSTransform, self).__init__(**kwargs)  # zuko's Transform base, not zuko's knots

        widths = widths / (1 + abs(2 * widths / math.log(slope)))
        heights = heights / (1 + abs(2 * heights / math.log(slope)))
        derivatives = derivatives / (1 + abs(derivatives / math.log(slope)))

        widths = F.pad(bin_softmax(widths), (1, 0), value=0)
        heights = F.pad(bin_softmax(heights), (1, 0), value=0)
        derivatives = F.pad(derivatives, (1, 1), value=0)

        self.horizontal = bound * (2 * torch.cumsum(widths, dim=-1) - 1)
        self.vertical = bound * (2 * torch.cumsum(heights, dim=-1) - 1)
        self.derivatives = torch.exp(derivatives)


def _pads(logits: torch.Tensor) -> bool:
    """Whether this tensor's softmax runs on ATen's AVX-512 CPU kernels (decided per process)."""
    return logits.device.type == "cpu" and _ATEN_CAPABILITY.startswith("AVX512")


_ATEN_CAPABILITY = torch.backends.cpu.get_cpu_capability()
