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
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.errors import InputError
from zuko.transforms import PermutationTransform

from pipeline_steps.models.flow import FlowModel, FlowSpec, SplineCoupling, _part_name, build_flow

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

    def forward(self, conditions: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        spec = self.model.spec
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
            y = flow_inverse(self.model.flows[name], context, noise[:, index])
            for position, target_index in enumerate(index):
                columns[target_index] = y[:, position]
        return torch.stack(columns, dim=1)


def flow_inverse(flow, context: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    """zuko's ``flow(c).transform.inv(z)`` with constant integer indices instead of boolean masks.

    zuko's coupling splits with ``mask.nonzero()`` tensors; the TorchScript ONNX exporter turns
    indexing by such a tensor into an invalid graph (an index-normalising ``Add`` with a missing
    input). Here the split, merge and permutation indices are Python lists fixed at export time, so
    the graph holds constant ``Gather`` indices; the spline itself is zuko's own inverse.
    """
    y = z
    for lazy in reversed(list(flow.transform.transforms)):
        if isinstance(lazy, SplineCoupling):
            mask = lazy.mask.tolist()
            kept = [i for i, m in enumerate(mask) if m]
            moved = [i for i, m in enumerate(mask) if not m]
            y_kept = y[:, kept]
            x_moved = lazy.meta(context, y_kept).inv(y[:, moved])
            order = [(kept + moved).index(i) for i in range(len(mask))]
            y = torch.cat([y_kept, x_moved], dim=1)[:, order]
        else:
            permutation = lazy(context)
            if not isinstance(permutation, PermutationTransform):
                raise InputError(f"flow export: unexpected transform {type(permutation).__name__}; "
                                 f"expected the permutations and spline couplings of pipeline_steps.models.flow")
            y = y[:, torch.argsort(permutation.order).tolist()]
    return y


@torch.no_grad()
def reference_targets(model: FlowModel, conditions: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The framework's answer for given noise: :meth:`FlowModel.sample`'s routing with boolean masks
    (not the exported ``torch.where`` graph), so verification compares two independent code paths.
    Runs in the model's own dtype (float32 as trained; float64 for :func:`float64_targets`)."""
    dtype = next(model.parameters()).dtype
    c = torch.from_numpy(np.ascontiguousarray(conditions, dtype=np.float32)).to(dtype)
    z = torch.from_numpy(np.ascontiguousarray(noise, dtype=np.float32)).to(dtype)
    out = torch.zeros(len(c), len(model.spec.targets), dtype=dtype)
    context = c[:, model.context_index] if model.context_index else None
    for part, mask in model.part_masks(c):
        rows = mask.nonzero().squeeze(-1)
        for name, value in part.fill.items():
            out[rows, model.spec.targets.index(name)] = value
        flow_name = _part_name(part)
        if flow_name not in model.flows or len(rows) == 0:
            continue
        index = model.modelled_index[flow_name]
        part_context = context.index_select(0, rows) if context is not None else None
        y = model.flows[flow_name](part_context).transform.inv(z.index_select(0, rows)[:, index])
        out[rows.unsqueeze(-1), torch.as_tensor(index)] = y
    return out.numpy()


def float64_targets(model: FlowModel, conditions: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """:func:`reference_targets` with the same weights in float64: the verification's reference
    (``pipeline_steps.export.verify``: the float32 rounding error of this model is measured against it)."""
    return reference_targets(copy.deepcopy(model).double(), conditions, noise)


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
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(module, (c, z), str(tmp), dynamo=False, opset_version=int(opset),
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={"conditions": {0: "n"}, "noise": {0: "n"}, "targets": {0: "n"}})


def copy_native(train_dir: str | Path, bundle: str | Path) -> list[str]:
    """``model.pt`` + ``model.json`` copied byte for byte (the manifest hashes these copies)."""
    names = ["model.pt", "model.json"]
    for name in names:
        with atomic_path(Path(bundle) / name) as tmp:
            shutil.copyfile(Path(train_dir) / name, tmp)
    return names
