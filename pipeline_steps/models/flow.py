"""FlashSim-style conditional normalizing flows: rational-quadratic spline couplings (zuko) whose
spline parameters come from our residual conditioner network.

Architecture (FlashSim, Vaselli et al.): as many coupling transforms as there are modelled targets;
before each one the variables are rotated by one place (a fixed cyclic permutation), then the first
``D // 2`` are kept and the other ``D - D // 2`` go through a monotonic rational-quadratic spline
(``n_bins`` bins on [-5, 5], identity outside) whose widths, heights and knot slopes are the output
of a :class:`ResidualNet` that sees the kept variables and the conditions. After ``D`` rotations
every variable has been transformed with every other one among its conditioners, which is what
FlashSim's "as many transforms as inputs" buys. The base distribution is a standard normal.

Categorised models (SHiP muons, ``categorised: true``): **one flow per category**, as the SHiP
study trained one generative model per category. The reasons:

- categories 1-2 have StartX = StartY = 0 exactly; a continuous flow cannot put mass on a delta, so
  with "category as context" those two dimensions would have to be faked (noise + clipping) and
  their log-likelihood would be meaningless. Per category, a target that is constant in the
  training rows is simply not modelled: the flow has fewer dimensions and the sampler fills the
  constant (0.0) back in.
- the four categories are disjoint populations (charge x production point) with shares of very
  different size; separate flows do not trade one category's quality against another's.

All per-category flows live in one :class:`FlowModel` (one state dict, one optimiser), the row's
category is read from the category condition column, so the trainer and the sampler have a single
code path. Uncategorised models are the same object with a single part (``None`` key).

Files written by training (see ``pipeline_steps/train/flow.py``): ``model.pt`` (state dict only,
loaded with ``weights_only=True``) and ``model.json`` (the :class:`FlowSpec`, enough to rebuild the
module without the config).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from zuko.distributions import DiagNormal
from zuko.lazy import Flow, LazyTransform, UnconditionalDistribution, UnconditionalTransform
from zuko.transforms import CouplingTransform, DependentTransform, PermutationTransform
from zuko.utils import unpack

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.models.rqs_spline import RQSTransform

__all__ = [
    "FlowHyperparameters",
    "FlowPart",
    "FlowSpec",
    "FlowModel",
    "ResidualNet",
    "SplineCoupling",
    "Sampler",
    "build_flow",
    "load_sampler",
    "select_device",
    "SPLINE_BOUND",
]

SPLINE_BOUND = 5.0  # the spline acts on [-B, B] (transformed units), identity outside
_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass(frozen=True)
class FlowHyperparameters:
    """Sizes of one flow (production FlashSim: 128 bins, hidden 256/298, 10 blocks, batch norm)."""

    n_bins: int = 8
    hidden_dim: int = 64
    n_blocks: int = 2
    activation: str = "relu"
    batch_norm: bool = False

    @classmethod
    def from_config(cls, hyperparameters: dict, where: str = "hyperparameters") -> "FlowHyperparameters":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown flow hyperparameters {unknown}; expected some of {sorted(known)}")
        hp = cls(**hyperparameters)
        if hp.activation not in _ACTIVATIONS:
            raise ConfigError(f"{where}.activation: expected one of {sorted(_ACTIVATIONS)}, got {hp.activation!r}")
        for name in ("n_bins", "hidden_dim", "n_blocks"):
            if int(getattr(hp, name)) < 1:
                raise ConfigError(f"{where}.{name}: expected a positive integer, got {getattr(hp, name)!r}")
        return hp


@dataclass(frozen=True)
class FlowPart:
    """One flow of a model: which targets it models and the constants filled for the others.

    ``key`` is the category (int) of a categorised model, ``None`` otherwise; ``condition_value``
    is the category's value in the *transformed* category condition column, used for routing.
    """

    key: int | None
    condition_value: float | None
    modelled: list[str]
    fill: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowSpec:
    """Everything needed to rebuild a trained model: the content of ``model.json``."""

    conditions: list[str]
    targets: list[str]
    hyperparameters: FlowHyperparameters
    parts: list[FlowPart]
    split_by: str | None = None

    @property
    def context(self) -> list[str]:
        """Conditions the flows see (the category column routes, it is not a context)."""
        return [c for c in self.conditions if c != self.split_by]

    def to_json(self) -> str:
        return json.dumps({"kind": "flow", "format": 1, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str = "model.json") -> "FlowSpec":
        data = json.loads(text)
        if data.get("kind") != "flow" or data.get("format") != 1:
            raise InputError(f"{where}: expected a flow model description (kind 'flow', format 1), got "
                             f"kind={data.get('kind')!r} format={data.get('format')!r}")
        return cls(
            conditions=list(data["conditions"]),
            targets=list(data["targets"]),
            hyperparameters=FlowHyperparameters(**data["hyperparameters"]),
            parts=[FlowPart(**part) for part in data["parts"]],
            split_by=data.get("split_by"),
        )


class ResidualNet(nn.Module):
    """The conditioner: ``in -> hidden -> n_blocks residual blocks -> out`` (nflows' ResidualNet).

    Each block is ``[BN] act Linear [BN] act Linear`` added to its input and gated by the conditions
    (``h * sigmoid(W c)``, nflows' GLU context gating), so the conditions act at every depth, not
    only at the input. The output layer starts at zero: an untrained coupling is the identity,
    which makes early training stable and gives a flow with a known density.
    """

    def __init__(self, in_features: int, context: int, out_features: int, hp: FlowHyperparameters) -> None:
        super().__init__()
        activation = _ACTIVATIONS[hp.activation]
        self.inputs = nn.Linear(max(1, in_features + context), hp.hidden_dim)
        self.blocks = nn.ModuleList(_ResidualBlock(hp.hidden_dim, activation, hp.batch_norm) for _ in range(hp.n_blocks))
        self.gates = nn.ModuleList(nn.Linear(context, hp.hidden_dim) for _ in range(hp.n_blocks)) if context else None
        self.outputs = nn.Linear(hp.hidden_dim, out_features)
        nn.init.zeros_(self.outputs.weight)
        nn.init.zeros_(self.outputs.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.inputs(_join(x, c))
        for index, block in enumerate(self.blocks):
            h = block(h)
            if self.gates is not None:
                h = h * torch.sigmoid(self.gates[index](c))
        return self.outputs(h)


class SplineCoupling(LazyTransform):
    """Lazy coupling transform: spline parameters of the transformed half from :class:`ResidualNet`."""

    def __init__(self, features: int, context: int, hp: FlowHyperparameters) -> None:
        super().__init__()
        n_kept = features // 2
        self.register_buffer("mask", torch.arange(features) < n_kept)
        self.shapes = ((hp.n_bins,), (hp.n_bins,), (hp.n_bins - 1,))
        per_variable = sum(s[0] for s in self.shapes)
        self.hyper = ResidualNet(n_kept, context, (features - n_kept) * per_variable, hp)

    def meta(self, c: torch.Tensor | None, x_kept: torch.Tensor) -> DependentTransform:
        if c is not None and c.shape[:-1] != x_kept.shape[:-1]:
            c = c.expand(*x_kept.shape[:-1], c.shape[-1])
        phi = self.hyper(x_kept, c).unflatten(-1, (-1, sum(s[0] for s in self.shapes)))
        widths, heights, derivatives = unpack(phi, self.shapes)
        return DependentTransform(RQSTransform(widths, heights, derivatives, bound=SPLINE_BOUND), 1)

    def forward(self, c: torch.Tensor | None = None) -> CouplingTransform:
        return CouplingTransform(partial(self.meta, c), self.mask)


class FlowModel(nn.Module):
    """All flows of one model (one per category, or one), with routing by the category condition.

    Works in transformed units: ``log_prob(targets, conditions)`` and ``sample(conditions, gen)``
    take and return the full ``[n, n_targets]`` / ``[n, n_conditions]`` tensors of the contract.
    """

    def __init__(self, spec: FlowSpec) -> None:
        super().__init__()
        self.spec = spec
        self.context_index = [spec.conditions.index(c) for c in spec.context]
        self.split_index = spec.conditions.index(spec.split_by) if spec.split_by else None
        self.flows = nn.ModuleDict({_part_name(p): _build_part_flow(len(p.modelled), len(self.context_index), spec.hyperparameters)
                                    for p in spec.parts if p.modelled})
        self.modelled_index = {_part_name(p): [spec.targets.index(t) for t in p.modelled] for p in spec.parts}

    def part_masks(self, conditions: torch.Tensor) -> list[tuple[FlowPart, torch.Tensor]]:
        """Rows of each part; raises InputError for rows of a category the model was not trained on."""
        if self.split_index is None:
            return [(self.spec.parts[0], torch.ones(len(conditions), dtype=torch.bool, device=conditions.device))]
        column = conditions[:, self.split_index]
        masks = [(p, torch.isclose(column, column.new_tensor(p.condition_value), atol=1e-4)) for p in self.spec.parts]
        covered = torch.zeros_like(column, dtype=torch.bool)
        for _, mask in masks:
            covered |= mask
        if not bool(covered.all()):
            unknown = sorted(set(column[~covered].tolist()))[:5]
            known = [p.condition_value for p in self.spec.parts]
            raise InputError(f"flow: condition {self.spec.split_by!r} has values {unknown} the model was not trained on "
                             f"(trained categories have values {known})")
        return masks

    def log_prob(self, targets: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """log density [n] of the modelled targets (constant targets are a delta: not counted)."""
        result = targets.new_zeros(len(targets))
        context = conditions[:, self.context_index] if self.context_index else None
        for part, mask in self.part_masks(conditions):
            name = _part_name(part)
            if name not in self.flows or not bool(mask.any()):
                continue
            rows = mask.nonzero().squeeze(-1)
            y = targets.index_select(0, rows)[:, self.modelled_index[name]]
            c = context.index_select(0, rows) if context is not None else None
            result = result.index_put((rows,), self.flows[name](c).log_prob(y))
        return result

    def sample(self, conditions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Targets [n, n_targets] for the given conditions, noise drawn from ``generator``."""
        return self.invert_noise(conditions, lambda rows, index: torch.randn(
            len(rows), len(index), generator=generator, device=conditions.device))

    def invert_noise(self, conditions: torch.Tensor, noise_for: Callable) -> torch.Tensor:
        """Targets [n, n_targets]: each part's fixed values filled in, its modelled targets the inverse of its
        flow applied to ``noise_for(rows, index)`` (the noise of those rows for the targets at ``index``).

        The one routing of a sample: :meth:`sample` draws the noise part by part, the export's reference
        (``export/torch_export.reference_targets``) hands in given noise to compare with the ONNX graph."""
        out = conditions.new_zeros(len(conditions), len(self.spec.targets))
        context = conditions[:, self.context_index] if self.context_index else None
        for part, mask in self.part_masks(conditions):
            rows = mask.nonzero().squeeze(-1)
            for name, value in part.fill.items():
                out[rows, self.spec.targets.index(name)] = value
            flow_name = _part_name(part)
            if flow_name not in self.flows or len(rows) == 0:
                continue
            index = self.modelled_index[flow_name]
            c = context.index_select(0, rows) if context is not None else None
            y = self.flows[flow_name](c).transform.inv(noise_for(rows, index))
            out[rows.unsqueeze(-1), torch.as_tensor(index, device=out.device)] = y
        return out


class Sampler:
    """Generation-side view of a trained flow: numpy in, numpy out, batched, GPU when present."""

    def __init__(self, model: FlowModel, device: torch.device, batch_size: int = 65536) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.conditions = list(model.spec.conditions)
        self.targets = list(model.spec.targets)

    @torch.no_grad()
    def sample(self, conditions: np.ndarray, seed: int) -> np.ndarray:
        """float32 [n, n_targets] (transformed units) for float32 [n, n_conditions] (transformed)."""
        conditions = _check_conditions(conditions, len(self.conditions))
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        pieces = [np.zeros((0, len(self.targets)), dtype=np.float32)]
        for start in range(0, len(conditions), self.batch_size):
            batch = torch.from_numpy(conditions[start:start + self.batch_size]).to(self.device)
            pieces.append(self.model.sample(batch, generator).cpu().numpy())
        return np.concatenate(pieces).astype(np.float32, copy=False)

    @torch.no_grad()
    def log_prob(self, targets: np.ndarray, conditions: np.ndarray) -> np.ndarray:
        """log density [n] (transformed units) of targets given conditions, for checks and validation."""
        conditions = _check_conditions(conditions, len(self.conditions))
        targets = np.ascontiguousarray(targets, dtype=np.float32)
        pieces = [np.zeros(0, dtype=np.float32)]
        for start in range(0, len(conditions), self.batch_size):
            c = torch.from_numpy(conditions[start:start + self.batch_size]).to(self.device)
            y = torch.from_numpy(targets[start:start + self.batch_size]).to(self.device)
            pieces.append(self.model.log_prob(y, c).cpu().numpy())
        return np.concatenate(pieces)


def build_flow(spec: FlowSpec) -> FlowModel:
    """A freshly initialised model (every coupling starts as the identity) for ``spec``."""
    hp = spec.hyperparameters
    if hp.n_bins < 2:
        raise ConfigError(f"hyperparameters.n_bins: a rational-quadratic spline needs at least 2 bins, got {hp.n_bins}")
    return FlowModel(spec)


def load_sampler(train_dir: str | Path, device: torch.device | str | None = None) -> Sampler:
    """Rebuild the trained model from ``model.json`` + ``model.pt`` (state dict, weights_only)."""
    train_dir = Path(train_dir)
    spec_path, weights_path = train_dir / "model.json", train_dir / "model.pt"
    for path in (spec_path, weights_path):
        if not path.exists():
            raise InputError(f"load_sampler: {path} is missing; expected the outputs of the train_flow rule")
    spec = FlowSpec.from_json(spec_path.read_text(), where=str(spec_path))
    device = select_device() if device is None else torch.device(device)
    model = build_flow(spec)
    model.load_state_dict(torch.load(weights_path, map_location=device, weights_only=True))
    return Sampler(model, device)


def select_device() -> torch.device:
    """The first CUDA device when torch sees one, the CPU otherwise."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class _ResidualBlock(nn.Module):
    def __init__(self, hidden: int, activation: type[nn.Module], batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2):
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden, eps=1e-3))
            layers += [activation(), nn.Linear(hidden, hidden)]
        self.layers = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.layers(h)


def _build_part_flow(features: int, context: int, hp: FlowHyperparameters) -> Flow:
    """``features`` couplings, each after a rotation by one place; 1 feature: a conditional spline."""
    rotate = torch.roll(torch.arange(features), shifts=1)
    transforms: list[LazyTransform] = []
    for _ in range(features):
        transforms.append(UnconditionalTransform(PermutationTransform, rotate.clone(), buffer=True))
        transforms.append(SplineCoupling(features, context, hp))
    base = UnconditionalDistribution(DiagNormal, torch.zeros(features), torch.ones(features), buffer=True)
    return Flow(transforms, base)


def _join(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Conditioner input [n, kept + context]; a constant 1 when there is neither (1-D, no context)."""
    pieces = [t for t in (x, c) if t is not None and t.shape[-1] > 0]
    if not pieces:
        return x.new_ones(*x.shape[:-1], 1)
    return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]


def _part_name(part: FlowPart) -> str:
    return "all" if part.key is None else f"category_{part.key}"


def _check_conditions(conditions: np.ndarray, n_conditions: int) -> np.ndarray:
    conditions = np.ascontiguousarray(conditions, dtype=np.float32)
    if conditions.ndim != 2 or conditions.shape[1] != n_conditions:
        raise InputError(f"flow sampler: expected conditions of shape [n, {n_conditions}], got {conditions.shape}")
    if not np.isfinite(conditions).all():
        raise InputError("flow sampler: conditions contain NaN or infinite values")
    return conditions

