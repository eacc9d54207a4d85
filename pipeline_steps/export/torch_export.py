"""Flow models (PyTorch + zuko) -> ONNX ``(conditions, noise) -> targets`` and the native state dict.

The training-side sampler draws its noise internally; a deployable graph must not (ONNX random ops
are not reproducible across runtimes), so the exported module takes the standard-normal noise as an
input ``noise [n, n_targets]`` (one column per target, in target order; a part of a categorised model
reads the columns of the targets it models and ignores the others) and runs the flows' inverse
transform. Categorised models (SHiP) evaluate every category's flow on every row and pick the row's
own result with ``torch.where``: no data-dependent shapes, so the graph exports with a dynamic batch.
"""

from __future__ import annotations

import copy
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.errors import InputError
from pipeline_steps.export.rounding_draws import one_ulp_away
from zuko.transforms import PermutationTransform

from pipeline_steps.models.flow import (SPLINE_BOUND, FlowModel, FlowSpec, ResidualNet, SplineCoupling, _part_name,
                                         build_flow)
from pipeline_steps.models.rqs_spline import MIN_SLOPE as RQS_MIN_SLOPE

INPUT_NAMES = ("conditions", "noise")
OUTPUT_NAMES = ("targets",)


class FlowInverse(nn.Module):
    """``(conditions [n, n_cond], noise [n, n_targets]) -> targets [n, n_targets]`` (transformed units)."""

    def __init__(self, model: FlowModel) -> None:
        super().__init__()
        self.model = model
        spec = model.spec
        self.n_targets = len(spec.targets)
        self.parts = list(spec.parts)
        self.steps = {name: inverse_steps(flow) for name, flow in model.flows.items()}

    def forward(self, conditions: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        context = conditions[:, self.model.context_index] if self.model.context_index else None
        out = torch.zeros_like(noise)
        for part in self.parts:
            part_out = self._part_targets(part, context, noise)
            if self.model.split_index is None:
                return part_out
            column = conditions[:, self.model.split_index:self.model.split_index + 1]
            mask = torch.abs(column - float(part.condition_value)) <= 1e-4
            out = torch.where(mask, part_out, out)
        return out

    def _part_targets(self, part, context: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        """All targets of one part for every row: filled constants, modelled ones from the inverse flow."""
        name = _part_name(part)
        columns = [noise.new_zeros(noise.shape[0]) for _ in range(self.n_targets)]
        for target, value in part.fill.items():
            columns[self.model.spec.targets.index(target)] = noise.new_full((noise.shape[0],), float(value))
        if name in self.model.flows:
            index = self.model.modelled_index[name]
            y = flow_inverse(self.steps[name], context, noise[:, index])
            for position, target_index in enumerate(index):
                columns[target_index] = y[:, position]
        return torch.stack(columns, dim=1)


def inverse_steps(flow) -> list[tuple[SplineCoupling, list[bool]] | list[int]]:
    """The flow's transforms in the order its inverse runs them, with their structure as Python values: a coupling
    with its mask, a permutation as the inverse order of its variables. Taken from the model before tracing, so the
    graph holds them as constants and no exporter meets a tensor turned into a Python value (``torch.export``
    refuses ``mask.tolist()`` on a traced buffer: a data-dependent value; the TorchScript tracer warned)."""
    steps = []
    for lazy in reversed(list(flow.transform.transforms)):
        if isinstance(lazy, SplineCoupling):
            steps.append((lazy, lazy.mask.tolist()))
            continue
        permutation = lazy(None)  # unconditional: the order is a buffer of the model
        if not isinstance(permutation, PermutationTransform):
            raise InputError(f"flow export: unexpected transform {type(permutation).__name__}; "
                             f"expected the permutations and spline couplings of pipeline_steps.models.flow")
        steps.append(torch.argsort(permutation.order).tolist())
    return steps


def flow_inverse(steps: list, context: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    """zuko's ``flow(c).transform.inv(z)`` for export (``steps``: :func:`inverse_steps` of the flow), in a layout
    ONNX Runtime runs fast.

    The flow state is kept feature-major, ``[features, n]``: the splines' per-bin steps (softmax,
    cumulative sum, padding, bin search, gathers) then run along a long contiguous axis instead of
    per row over 8-9 bins, where ONNX Runtime's Softmax, Pad and CumSum kernels loop row by row
    (jets-sized flow: 2x the rows/s, see benchmarks/bench_export.py). The conditioners run
    feature-major too (:func:`_conditioner`: ``W @ h + b``, the same values as the row-major
    layers, bit for bit in ONNX Runtime on calls of 8 rows or more, without two transposes per
    coupling: +4-19%). Coupling split, merge and permutation indices are Python lists fixed at
    export time (constant ``Slice``/``Gather``; zuko's ``mask.nonzero()`` indexing exports as an
    invalid graph), and a permutation is never materialised: it is folded into the next coupling's
    row selection.
    """
    state = z.T
    context_t = context.T if context is not None else None
    rows = list(range(z.shape[1]))  # rows[j]: the row of ``state`` holding the flow's variable j
    for step in steps:
        if isinstance(step, list):  # a permutation's inverse order
            rows = [rows[j] for j in step]
            continue
        coupling, mask = step
        kept = [i for i, m in enumerate(mask) if m]
        moved = [i for i, m in enumerate(mask) if not m]
        y_kept = _take_rows(state, [rows[i] for i in kept])
        y_moved = _take_rows(state, [rows[i] for i in moved])
        parameters = _conditioner(coupling.hyper, y_kept, context_t).unflatten(0, (len(moved), -1))
        x_moved = spline_inverse(parameters, y_moved, coupling.shapes[0][0])
        state = torch.cat([y_kept, x_moved], dim=0)
        rows = [(kept + moved).index(i) for i in range(len(mask))]
    return _take_rows(state, rows).T


def spline_inverse(parameters: torch.Tensor, y: torch.Tensor, n_bins: int, bound: float = SPLINE_BOUND,
                   slope: float = RQS_MIN_SLOPE) -> torch.Tensor:
    """zuko's ``MonotonicRQSTransform(widths, heights, derivatives, bound, slope).inv(y)``, feature-major.

    ``parameters [d, 3 * n_bins - 1, n]`` (widths, heights, knot derivatives, unconstrained, as the
    conditioner emits them), ``y [d, n]``. The same expressions as zuko 1.6 in the same order, except
    the softmax: ``exp(w - max w) / sum`` along the bins instead of ONNX Runtime's row-wise Softmax
    kernel (a float32 rounding difference, within the export verification's bound).

    The knot slopes are taken only at the two knots of each point's bin: the bounding of the raw
    derivatives and their ``exp`` are elementwise, so gathering the raw values first gives the same
    floats (the bounds' padded 0 becomes ``exp(0) = 1`` either way) for 2 instead of ``n_bins + 1``
    values a point, and no ``[d, 3, n_bins + 1, n]`` copy of all knots. ONNX Runtime spends most of
    this graph's time outside its matrix products, on such passes over memory. Two more passes go by
    moving factors of 2, which commute with float rounding: ``2 * w / L`` is ``w / (L / 2)`` and
    ``B * (2 * c - 1)`` is ``(2 * B) * (c - 0.5)``, each the same correctly rounded value. The knots below
    a point are counted in float32 (exact up to 2^24) instead of torch's int64 sum: half the bytes.
    """
    widths_heights = parameters[:, :2 * n_bins].unflatten(1, (2, n_bins))
    derivatives = F.pad(parameters[:, 2 * n_bins:], (0, 0, 1, 1), value=0)     # [d, bins + 1, n], raw
    widths_heights = widths_heights / (1 + abs(widths_heights / (math.log(slope) / 2)))  # zuko: 2 * w / log
    shifted = torch.exp(widths_heights - widths_heights.amax(dim=2, keepdim=True))
    widths_heights = F.pad(shifted / shifted.sum(dim=2, keepdim=True), (0, 0, 1, 0), value=0)
    knots_xy = (2 * bound) * (torch.cumsum(widths_heights, dim=2) - 0.5)        # [d, 2, bins + 1, n]
    k = (knots_xy[:, 1] < y.unsqueeze(1)).float().sum(dim=1).long() - 1         # counted in float32: exact
    inside = torch.logical_and(0 <= k, k < n_bins)
    k = k % n_bins
    edges = torch.stack((k, k + 1), dim=1)                                        # [d, 2, n]: the bin's knots
    at_xy = knots_xy.gather(2, edges.unsqueeze(1).expand(-1, 2, -1, -1))
    at_d = derivatives.gather(1, edges)
    at_d = torch.exp(at_d / (1 + abs(at_d / math.log(slope))))
    x0, x1 = at_xy[:, 0, 0], at_xy[:, 0, 1]
    y0, y1 = at_xy[:, 1, 0], at_xy[:, 1, 1]
    d0, d1 = at_d[:, 0], at_d[:, 1]
    s = (y1 - y0) / (x1 - x0)
    y_ = inside * (y - y0)
    a = (y1 - y0) * (s - d0) + y_ * (d0 + d1 - 2 * s)
    b = (y1 - y0) * d0 - y_ * (d0 + d1 - 2 * s)
    c = -s * y_
    z = 2 * c / (-b - (b**2 - 4 * a * c).sqrt())
    return torch.where(inside, x0 + z * (x1 - x0), y)


def _conditioner(net: ResidualNet, kept: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """:class:`ResidualNet`'s forward on feature-major ``kept [k, n]``, ``context [c, n]`` -> ``[out, n]``."""
    pieces = [t for t in (kept, context) if t is not None and t.shape[0] > 0]
    x = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0] if pieces else kept.new_ones(1, kept.shape[1])
    h = _dense(net.inputs, x)
    for index, block in enumerate(net.blocks):
        update = h
        for layer in block.layers:
            if isinstance(layer, nn.Linear):
                update = _dense(layer, update)
            elif isinstance(layer, nn.BatchNorm1d):
                update = layer(update.unsqueeze(0)).squeeze(0)  # [1, features, n]: per feature, as on rows
            else:
                update = layer(update)  # the activations are elementwise
        h = h + update
        if net.gates is not None:
            h = h * torch.sigmoid(_dense(net.gates[index], context))
    return _dense(net.outputs, h)


def _dense(layer: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """``layer`` on feature-major ``h [in, n]``: one ONNX ``Gemm(W, h, b[:, None])``."""
    return torch.addmm(layer.bias.unsqueeze(1), layer.weight, h)


def _take_rows(state: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """``state[rows]`` with a constant index: a ``Slice`` when the rows are consecutive."""
    if rows == list(range(rows[0] if rows else 0, (rows[0] if rows else 0) + len(rows))):
        start = rows[0] if rows else 0
        return state[start:start + len(rows)]
    return state[rows]


@torch.no_grad()
def reference_targets(model: FlowModel, conditions: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The framework's answer for given noise: :meth:`FlowModel.sample`'s routing with boolean masks
    (not the exported ``torch.where`` graph), so verification compares two independent code paths.
    Runs in the model's own dtype (float32 as trained; float64 for :func:`float64_targets`)."""
    dtype = next(model.parameters()).dtype
    # Copies (``torch.tensor``), not views: the verification rows may be read-only (pandas' copy-on-write
    # columns), which ``torch.from_numpy`` accepts only with a warning. A few thousand rows: no cost.
    c = torch.tensor(np.asarray(conditions, dtype=np.float32)).to(dtype)
    z = torch.tensor(np.asarray(noise, dtype=np.float32)).to(dtype)
    return model.invert_noise(c, lambda rows, index: z.index_select(0, rows)[:, index]).numpy()


def float64_targets(model: FlowModel, conditions: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """:func:`reference_targets` with the same weights in float64: the verification's reference
    (``pipeline_steps.export.verify``: the float32 rounding error of this model is measured against it)."""
    return reference_targets(copy.deepcopy(model).double(), conditions, noise)


def perturbed_targets(model: FlowModel, conditions: np.ndarray, noise: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """:func:`reference_targets` of a copy whose every weight is one ulp away (a float32 rounding draw,
    ``pipeline_steps.export.rounding_draws``)."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in twin.parameters():
            parameter.copy_(torch.from_numpy(one_ulp_away(parameter.detach().cpu().numpy(), rng)))
    return reference_targets(twin, conditions, noise)


def load_flow(train_dir: str | Path) -> FlowModel:
    """FlowModel on the CPU from ``model.json`` + ``model.pt`` (state dict, ``weights_only=True``).

    Export always runs on the CPU: the ONNX graph and the verification batch must not depend on the
    machine's GPU.
    """
    train_dir = Path(train_dir)
    for name in ("model.json", "model.pt"):
        if not (train_dir / name).exists():
            raise InputError(f"export: {train_dir / name} is missing; expected the outputs of the train_flow rule")
    spec = FlowSpec.from_json((train_dir / "model.json").read_text(), where=str(train_dir / "model.json"))
    model = build_flow(spec)
    model.load_state_dict(torch.load(train_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def export_flow_onnx(model: FlowModel, path: str | Path, opset: int, example_rows: int = 8) -> None:
    """Trace :class:`FlowInverse` into ``path`` (atomic), batch axis dynamic."""
    module = FlowInverse(model).eval()
    c = torch.zeros(example_rows, len(model.spec.conditions))
    if model.split_index is not None:
        c[:, model.split_index] = float(model.spec.parts[0].condition_value)
    z = torch.zeros(example_rows, len(model.spec.targets))
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        _ignore_intended_trace_warnings()
        torch.onnx.export(module, (c, z), str(tmp), dynamo=False, opset_version=int(opset),
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={"conditions": {0: "n"}, "noise": {0: "n"}, "targets": {0: "n"}})


def _ignore_intended_trace_warnings() -> None:
    """Silence the tracer's warnings about what this module fixes at export time on purpose.

    The tracer warns wherever a tensor becomes a Python value (a feature axis's length in the conditioner): that is
    the model's structure, constant for a given model (the couplings' masks and the permutations' orders are taken
    before tracing: :func:`inverse_steps`). Its constant-folding warning about ``Slice`` with a step other than 1
    only says that folding was skipped. Every export log repeated these warnings; a wrong trace would still fail
    the bundle's verification, which compares the ONNX graph against the framework on every row it checks.
    """
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=__name__)
    warnings.filterwarnings("ignore", message="Constant folding - Only steps=1 can be constant folded",
                            category=UserWarning)


def copy_native(train_dir: str | Path, bundle: str | Path) -> list[str]:
    """``model.pt`` + ``model.json`` copied byte for byte (the manifest hashes these copies)."""
    names = ["model.pt", "model.json"]
    for name in names:
        with atomic_path(Path(bundle) / name) as tmp:
            shutil.copyfile(Path(train_dir) / name, tmp)
    return names
