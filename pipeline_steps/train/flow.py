"""Training of the FlashSim-style flows (``kind: flow``) with a loader that keeps the GPU busy.

FlashSim read every row through an h5py ``Dataset.__getitem__`` and a torch ``DataLoader``; its V100
sat at 40-70 % use. Here the training split is one contiguous float32 tensor per role
(conditions, targets, weights) moved to the device once; each epoch is a device-side
``torch.randperm`` sliced into batches, gathered with ``index_select``: no Python per row, no
worker processes, no host-to-device copies after the start (``benchmarks/bench_flow.py`` measures it).

Loss: weighted negative log-likelihood ``sum(w * -log p(y|c)) / sum(w)`` (forward KL), AdamW, cosine
annealing per epoch (``scheduler: cosine``; ``cosine_warm_restarts`` restarts every
``training.restart_epochs`` epochs, default a quarter of the run; ``constant``). The validation loss
is computed each epoch and, as FlashSim reported it, also as the mean over the last 5 epochs.

Resumable: every ``checkpoint_every`` epochs ``results/checkpoints/<model>/checkpoint.pt`` holds the
model, optimiser and scheduler state, the epoch, the history and every RNG state, so a killed job
continues exactly where the last checkpoint left it (same weights as an uninterrupted run on CPU).
A checkpoint of a different configuration or of different training data is ignored (logged).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.reproducible import save_torch
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.models.flow import FlowHyperparameters, FlowModel, FlowPart, FlowSpec, build_flow, select_device
from pipeline_steps.common.source_hash import sha256_file
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule

__all__ = [
    "TrainingSettings",
    "FlowData",
    "DeviceLoader",
    "read_split",
    "make_spec",
    "fit",
    "run",
    "VALIDATION_WINDOW",
]

logger = logging.getLogger(__name__)

VALIDATION_WINDOW = 5  # FlashSim reported the validation loss averaged over the last 5 epochs
_CHECKPOINT = "checkpoint.pt"
_SCHEDULERS = ("cosine", "cosine_warm_restarts", "constant")


@dataclass(frozen=True)
class TrainingSettings:
    """The model's ``training`` slice plus the global seed (learning rate in 1/step units of AdamW)."""

    epochs: int
    batch_size: int
    seed: int
    learning_rate: float = 1.0e-3
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    checkpoint_every: int = 1
    restart_epochs: int | None = None
    schedule: tuple | None = None        # training.schedule: per-update learning rate (train/schedule.py)
    early_stopping: dict | None = None   # training.early_stopping: {metric, patience, min_delta, mode}

    @classmethod
    def from_config(cls, training: Mapping[str, Any], seed: int) -> "TrainingSettings":
        known = set(cls.__dataclass_fields__) - {"seed"}
        extra = sorted(set(training) - known)
        if extra:
            logger.info("training keys not used by the flow trainer: %s", extra)
        values = {k: v for k, v in training.items() if k in known}
        if values.get("schedule") is not None:
            values["schedule"] = tuple(dict(step) for step in values["schedule"])
            LearningRateSchedule.from_config(values["schedule"], 1)  # fail at start-up, naming the key
        if values.get("early_stopping") is not None:
            values["early_stopping"] = dict(values["early_stopping"])
            EarlyStopping.from_config(values["early_stopping"], "validation_loss")
        settings = cls(seed=int(seed), **values)
        if settings.scheduler not in _SCHEDULERS:
            raise ConfigError(f"training.scheduler: expected one of {list(_SCHEDULERS)}, got {settings.scheduler!r}")
        return settings


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


def make_spec(model: Mapping[str, Any], train: FlowData) -> FlowSpec:
    """The architecture of a model from its config slice and its training rows.

    Per part (category, or the whole sample) a target whose training values are all equal is not
    modelled (a flow cannot represent a delta) and is filled with that value when sampling.
    """
    conditions, targets = list(model["conditions"]), list(model["targets"])
    hp = FlowHyperparameters.from_config(dict(model.get("hyperparameters", {})), "hyperparameters")
    split_by = "category" if model.get("categorised") else None
    if split_by and split_by not in conditions:
        raise ConfigError(f"conditions: a categorised flow needs 'category' among its conditions, got {conditions}")
    if split_by is None:
        parts = [_part(None, None, train.targets, targets)]
    else:
        parts = []
        for category in np.unique(train.categories):
            rows = train.categories == category
            value = float(train.conditions[rows, conditions.index(split_by)][0])
            parts.append(_part(int(category), value, train.targets[rows], targets))
    return FlowSpec(conditions=conditions, targets=targets, hyperparameters=hp, parts=parts, split_by=split_by)


def fit(model: FlowModel, train: FlowData, validation: FlowData, settings: TrainingSettings,
        checkpoint_dir: str | Path, device: torch.device, fingerprint: str = "",
        until_epoch: int | None = None) -> list[dict[str, float]]:
    """Train (resuming from ``checkpoint_dir`` when its fingerprint matches); returns the history.

    ``until_epoch`` stops early after that epoch (a checkpoint is written): used to test resuming.
    """
    _seed_everything(settings.seed)
    model.to(device)
    loader = DeviceLoader(train, settings.batch_size, device, drop_single=model.spec.hyperparameters.batch_norm)
    validation_loader = DeviceLoader(validation, settings.batch_size, device)
    per_update = settings.schedule is not None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0 if per_update else settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    scheduler = _scheduler(optimizer, settings, loader.n_batches())
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    state = _TrainingState(model, optimizer, scheduler, generator, Path(checkpoint_dir), fingerprint)
    history = state.resume()
    stopper = EarlyStopping.from_config(settings.early_stopping, "validation_loss")
    last = settings.epochs if until_epoch is None else min(until_epoch, settings.epochs)
    if history and history[-1].get("early_stop"):
        logger.info("the checkpointed run stopped early after epoch %d; not training further", len(history))
        return history
    for epoch in range(len(history) + 1, last + 1):
        history.append(_run_epoch(model, loader, validation_loader, optimizer, scheduler, generator, epoch, settings,
                                  history, per_update))
        stop = stopper is not None and stopper.should_stop(history)
        if stopper is not None:
            history[-1]["early_stop"] = int(stop)
        if stop or epoch % settings.checkpoint_every == 0 or epoch == last:
            state.save(history)
        if stop:
            logger.info("early stop after epoch %d: %s did not improve by %g in %d epochs", epoch, stopper.metric,
                        stopper.min_delta, stopper.patience)
            break
    return history


def run(*, train: str, validation: str, transforms: str, model_pt: str, model_json: str, history: str,
        loss_plot: str, checkpoint_dir: str, model: Mapping[str, Any], seed: int, log: str | None = None,
        threads: int = 1) -> None:
    """The rule's entry point: read the splits, train (resuming if possible), write every output."""
    with step_logging(log):
        torch.set_num_threads(max(1, int(threads)))
        device = _log_device()
        settings = TrainingSettings.from_config(dict(model["training"]), seed)
        split_by = "category" if model.get("categorised") else None
        weight = "weight" if model.get("weight") else None
        train_data = read_split(train, list(model["conditions"]), list(model["targets"]), weight, split_by)
        validation_data = read_split(validation, list(model["conditions"]), list(model["targets"]), weight, split_by)
        spec = make_spec(model, train_data)
        _log_parts(spec, train_data)
        _seed_everything(settings.seed)
        flow = build_flow(spec)
        fingerprint = _fingerprint(spec, settings, sha256_file(train), sha256_file(validation))
        rows = fit(flow, train_data, validation_data, settings, checkpoint_dir, device, fingerprint)
        _write_outputs(flow, spec, rows, transforms, model_pt, model_json, history, loss_plot)


# --- one epoch -----------------------------------------------------------------------------------

def _run_epoch(model: FlowModel, loader: DeviceLoader, validation_loader: DeviceLoader, optimizer, scheduler,
               generator: torch.Generator, epoch: int, settings: TrainingSettings,
               history: list[dict[str, float]], per_update: bool = False) -> dict[str, float]:
    start = time.perf_counter()
    learning_rate = optimizer.param_groups[0]["lr"]
    train_loss = _train_epoch(model, loader, optimizer, generator, f"epoch {epoch}/{settings.epochs}",
                              scheduler if per_update else None)
    if not per_update:
        scheduler.step()
    seconds = time.perf_counter() - start
    validation_loss = _evaluate(model, validation_loader)
    window = [row["validation_loss"] for row in history[-(VALIDATION_WINDOW - 1):]] + [validation_loss]
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "validation_loss": validation_loss,
        "validation_loss_last5": float(np.mean(window)),
        "learning_rate": learning_rate,
        "seconds": seconds,
        "rows_per_second": len(loader) / seconds if seconds > 0 else float("nan"),
    }
    logger.info("epoch %d: train NLL %.4f, validation NLL %.4f (mean of last %d: %.4f), lr %.2e, %.0f rows/s",
                epoch, train_loss, validation_loss, len(window), row["validation_loss_last5"], learning_rate,
                row["rows_per_second"])
    return row


def _train_epoch(model: FlowModel, loader: DeviceLoader, optimizer, generator: torch.Generator, label: str,
                 update_scheduler=None) -> float:
    """Weighted mean NLL over the epoch, accumulated on the device and read back once.

    ``update_scheduler`` (with ``training.schedule``) is stepped after every update, so the learning
    rate follows the schedule per optimisation step; its step count is saved in the checkpoint.
    """
    model.train()
    total = torch.zeros((), device=loader.device)
    weight_sum = torch.zeros((), device=loader.device)
    for conditions, targets, weights in tqdm(loader.epoch(generator), total=loader.n_batches(), desc=label,
                                             mininterval=5.0, leave=False):
        nll = -model.log_prob(targets, conditions)
        loss = (weights * nll).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if update_scheduler is not None:
            update_scheduler.step()
        total += (weights * nll).sum().detach()
        weight_sum += weights.sum()
    value = float(total / weight_sum)
    if not math.isfinite(value):
        raise InputError(f"{label}: the training loss became {value}; check the inputs or lower the learning rate")
    return value


@torch.no_grad()
def _evaluate(model: FlowModel, loader: DeviceLoader) -> float:
    """Weighted mean NLL of a whole split in eval mode (batch norm uses running statistics)."""
    model.eval()
    total = torch.zeros((), device=loader.device)
    weight_sum = torch.zeros((), device=loader.device)
    for conditions, targets, weights in loader.in_order(max(loader.batch_size, 8192)):
        total += (weights * -model.log_prob(targets, conditions)).sum()
        weight_sum += weights.sum()
    return float(total / weight_sum)


def _scheduler(optimizer, settings: TrainingSettings, updates_per_epoch: int = 1):
    """Per-epoch learning-rate schedule, or with ``training.schedule`` a per-update one.

    The per-update one is a LambdaLR over an optimiser built with lr 1, so the factor *is* the
    learning rate; its ``last_epoch`` (the global update count) is in the checkpoint, so a resumed run
    continues at the same point of the schedule.
    """
    if settings.schedule is not None:
        schedule = LearningRateSchedule.from_config(settings.schedule, updates_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda update: schedule.lr_at(update))
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    if settings.scheduler == "cosine_warm_restarts":
        period = settings.restart_epochs or max(1, settings.epochs // 4)
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=int(period))
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


# --- checkpoints -----------------------------------------------------------------------------------

class _TrainingState:
    """Everything needed to continue a run bit-for-bit, in one ``checkpoint.pt`` (weights_only-safe)."""

    def __init__(self, model, optimizer, scheduler, generator: torch.Generator, folder: Path, fingerprint: str) -> None:
        self.model, self.optimizer, self.scheduler, self.generator = model, optimizer, scheduler, generator
        self.path = folder / _CHECKPOINT
        self.fingerprint = fingerprint

    def save(self, history: list[dict[str, float]]) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "epoch": len(history),
            "history": history,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        with atomic_path(self.path) as tmp:
            save_torch(state, tmp)
        logger.info("checkpoint: epoch %d -> %s", len(history), self.path)

    def resume(self) -> list[dict[str, float]]:
        """History of the checkpointed epochs (empty when starting fresh); restores every state."""
        if not self.path.exists():
            return []
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            logger.warning("checkpoint %s is from another configuration or data; starting from scratch", self.path)
            return []
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        logger.info("resumed from %s after epoch %d", self.path, state["epoch"])
        return list(state["history"])


# --- outputs ---------------------------------------------------------------------------------------

def _write_outputs(flow: FlowModel, spec: FlowSpec, rows: list[dict[str, float]], transforms: str,
                   model_pt: str, model_json: str, history: str, loss_plot: str) -> None:
    with atomic_path(model_pt) as tmp:
        save_torch({k: v.cpu() for k, v in flow.state_dict().items()}, tmp)
    description = json.loads(spec.to_json())
    description["transforms_sha256"] = sha256_file(transforms)
    description["validation_loss_last5"] = rows[-1]["validation_loss_last5"] if rows else None
    write_text_atomic(model_json, json.dumps(description, indent=2))
    write_text_atomic(history, _history_csv(rows))
    _plot_losses(rows, loss_plot)


def _history_csv(rows: list[dict[str, float]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["epoch"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _plot_losses(rows: list[dict[str, float]], path: str) -> None:
    """Train and validation NLL per epoch, plus the 5-epoch validation mean FlashSim quoted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train")
    ax.plot(epochs, [r["validation_loss"] for r in rows], marker="o", label="validation")
    ax.plot(epochs, [r["validation_loss_last5"] for r in rows], ls="--", label=f"validation, mean of last {VALIDATION_WINDOW}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted NLL per row (transformed units)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# --- helpers ---------------------------------------------------------------------------------------

def _part(key: int | None, value: float | None, rows: np.ndarray, targets: list[str]) -> FlowPart:
    constant = [i for i in range(len(targets)) if len(rows) and float(np.ptp(rows[:, i])) == 0.0]
    return FlowPart(key=key, condition_value=value, modelled=[t for i, t in enumerate(targets) if i not in constant],
                    fill={targets[i]: float(rows[0, i]) for i in constant})


def _log_parts(spec: FlowSpec, train: FlowData) -> None:
    for part in spec.parts:
        label = "all rows" if part.key is None else f"category {part.key}"
        n = len(train) if part.key is None else int((train.categories == part.key).sum())
        logger.info("%s: %d training rows, flow over %s%s", label, n, part.modelled,
                    f", constant (not modelled): {part.fill}" if part.fill else "")


def _check_finite(path: Path, data: FlowData, conditions: list[str], targets: list[str]) -> None:
    for role, array, names in (("cond__", data.conditions, conditions), ("targ__", data.targets, targets)):
        bad = ~np.isfinite(array).all(axis=0)
        if bad.any():
            raise InputError(f"{path}: columns {[role + n for n, b in zip(names, bad) if b]} contain NaN or inf")
    if not np.isfinite(data.weights).all() or (data.weights < 0).any() or data.weights.sum() <= 0:
        raise InputError(f"{path}: column weight must be finite, non-negative and not all zero")


def _fingerprint(spec: FlowSpec, settings: TrainingSettings, *digests: str) -> str:
    text = json.dumps({"spec": json.loads(spec.to_json()), "settings": asdict(settings), "data": digests}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _seed_everything(seed: int) -> None:
    """Same seed, same weights on CPU: seeded init, deterministic kernels."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def _log_device() -> torch.device:
    from pipeline_steps.train.devices import log_device

    log_device("torch")
    return select_device()
