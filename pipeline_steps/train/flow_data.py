"""The flow trainer's data: one split in model units, and a loader that keeps the GPU busy.

FlashSim read every row through an h5py ``Dataset.__getitem__`` and a torch ``DataLoader``; its V100
sat at 40-70 % use. Here the training split is one contiguous float32 tensor per role
(conditions, targets, weights) moved to the device once; each epoch is a device-side
``torch.randperm`` sliced into batches, gathered with ``index_select``: no Python per row, no
worker processes, no host-to-device copies after the start (``benchmarks/bench_flow.py`` measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from pipeline_steps.common.errors import InputError

__all__ = ["FlowData", "DeviceLoader", "read_split"]


@dataclass
class FlowData:
    """One split in model units: float32 conditions [n, n_cond], targets [n, n_targ], weights [n]."""

    conditions: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    categories: np.ndarray | None = None  # int category per row (categorised models)

    def __len__(self) -> int:
        return len(self.targets)


class DeviceLoader:
    """The whole split as contiguous device tensors; an epoch is a device-side permutation in slices.

    ``drop_single`` skips a final batch of one row (batch norm cannot normalise one row).
    """

    def __init__(self, data: FlowData, batch_size: int, device: torch.device, drop_single: bool = False) -> None:
        self.conditions = torch.from_numpy(np.ascontiguousarray(data.conditions, dtype=np.float32)).to(device)
        self.targets = torch.from_numpy(np.ascontiguousarray(data.targets, dtype=np.float32)).to(device)
        self.weights = torch.from_numpy(np.ascontiguousarray(data.weights, dtype=np.float32)).to(device)
        self.batch_size = int(batch_size)
        self.device = device
        self.drop_single = drop_single

    def __len__(self) -> int:
        return len(self.targets)

    def n_batches(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(conditions, targets, weights) batches in a fresh random order drawn from ``generator``."""
        order = torch.randperm(len(self), generator=generator, device=self.device)
        for start in range(0, len(self), self.batch_size):
            rows = order[start:start + self.batch_size]
            if self.drop_single and len(rows) < 2:
                continue
            yield self.conditions.index_select(0, rows), self.targets.index_select(0, rows), self.weights.index_select(0, rows)

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The split in file order (validation)."""
        for start in range(0, len(self), batch_size):
            end = start + batch_size
            yield self.conditions[start:end], self.targets[start:end], self.weights[start:end]


def read_split(path: str | Path, conditions: list[str], targets: list[str], weight: str | None,
               split_by: str | None = None) -> FlowData:
    """Read ``cond__*``/``targ__*`` (+ ``weight``, + the raw category column) of one split file."""
    path = Path(path)
    wanted = [f"cond__{c}" for c in conditions] + [f"targ__{t}" for t in targets]
    wanted += ["weight"] if weight else []
    wanted += [split_by] if split_by else []
    present = set(pq.read_schema(path).names)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise InputError(f"{path}: missing columns {missing}; the preprocess contract gives cond__<name>/targ__<name> "
                         f"in config order{' and weight' if weight else ''}; found {sorted(present)}")
    table = pd.read_parquet(path, columns=wanted)
    if len(table) == 0:
        raise InputError(f"{path}: no rows; cannot train a flow on an empty split")
    data = FlowData(
        conditions=table[[f"cond__{c}" for c in conditions]].to_numpy(np.float32, copy=True),
        targets=table[[f"targ__{t}" for t in targets]].to_numpy(np.float32, copy=True),
        weights=table["weight"].to_numpy(np.float32, copy=True) if weight else np.ones(len(table), np.float32),
        categories=table[split_by].to_numpy().astype(np.int64) if split_by else None,
    )
    _check_finite(path, data, conditions, targets)
    return data


def _check_finite(path: Path, data: FlowData, conditions: list[str], targets: list[str]) -> None:
    for role, array, names in (("cond__", data.conditions, conditions), ("targ__", data.targets, targets)):
        bad = ~np.isfinite(array).all(axis=0)
        if bad.any():
            raise InputError(f"{path}: columns {[role + n for n, b in zip(names, bad) if b]} contain NaN or inf")
    if not np.isfinite(data.weights).all() or (data.weights < 0).any() or data.weights.sum() <= 0:
        raise InputError(f"{path}: column weight must be finite, non-negative and not all zero")
