"""Training of the FlashSim-style flows (``kind: flow``).

The data stay on the device in a loader that keeps the GPU busy (``train/flow_data.py``); the epoch
loop, resume cadence and early stop are the shared ones (``train/loop.py``).

Loss: weighted negative log-likelihood ``sum(w * -log p(y|c)) / sum(w)`` (forward KL), AdamW at
``training.learning_rate`` (a number), cosine annealing per epoch (``scheduler: cosine``;
``cosine_warm_restarts`` restarts every ``training.restart_epochs`` epochs, default a quarter of the
run; ``constant``). The validation loss is computed each epoch and, as FlashSim reported it, also as
the mean over the last 5 epochs.

Resumable: every ``checkpoint_every`` epochs ``results/checkpoints/<model>/checkpoint.pt`` holds the
model, optimiser and scheduler state, the epoch, the history and every RNG state, so a killed job
continues exactly where the last checkpoint left it (same weights as an uninterrupted run on CPU).
A checkpoint of a different configuration or of different training data is ignored (logged).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.reproducible import save_torch
from pipeline_steps.common.errors import ConfigError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.models.flow import FlowHyperparameters, FlowModel, FlowPart, FlowSpec, build_flow, select_device
from pipeline_steps.common.source_hash import sha256_file
from pipeline_steps.train.checkpoint import TorchCheckpoint, fingerprint_of
from pipeline_steps.train.flow_data import DeviceLoader, FlowData, read_split
from pipeline_steps.train.loop import run_epochs
from pipeline_steps.train.loss_plot import write_loss_plot
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule
from pipeline_steps.train.settings import learning_rate, read_training, training_threads

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
_SCHEDULERS = ("cosine", "cosine_warm_restarts", "constant")
OWN_KEYS = ("checkpoint_every", "weight_decay", "scheduler", "restart_epochs")


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
        values = read_training(training, "flow", OWN_KEYS, early_stopping_metric="validation_loss")
        if "learning_rate" in values:
            values["learning_rate"] = learning_rate(values["learning_rate"], "flow")
        settings = cls(seed=int(seed), **values)
        if settings.scheduler not in _SCHEDULERS:
            raise ConfigError(f"training.scheduler: expected one of {list(_SCHEDULERS)}, got {settings.scheduler!r}")
        return settings


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
    # fused: one kernel for all parameters instead of ~10 small ops per tensor (a flow has ~16 tensors per
    # coupling); the update took 12-13 ms of a 80 ms SHiP step (batch 512) and 3-4 ms fused, 1 thread.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0 if per_update else settings.learning_rate,
                                  weight_decay=settings.weight_decay, fused=True)
    scheduler = _scheduler(optimizer, settings, loader.n_batches())
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    state = TorchCheckpoint(model, optimizer, scheduler, generator, checkpoint_dir, fingerprint)

    def run_epoch(epoch: int, history: list[dict[str, float]]) -> dict[str, float]:
        return _run_epoch(model, loader, validation_loader, optimizer, scheduler, generator, epoch, settings, history,
                          per_update)

    return run_epochs(state.resume(), epochs=settings.epochs, checkpoint_every=settings.checkpoint_every,
                      stopper=EarlyStopping.from_config(settings.early_stopping, "validation_loss"),
                      run_epoch=run_epoch, save=state.save, until_epoch=until_epoch, label="flow epochs",
                      finite=("train_loss", "validation_loss"))


def run(*, train: str, validation: str, transforms: str, model_pt: str, model_json: str, history: str,
        loss_plot: str, checkpoint_dir: str, model: Mapping[str, Any], seed: int, log: str | None = None,
        threads: int = 1) -> None:
    """The rule's entry point: read the splits, train (resuming if possible), write every output."""
    with step_logging(log):
        torch.set_num_threads(training_threads(model["training"], threads))  # the config's: bytes independent of cores
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
    return float(total / weight_sum)  # a NaN or infinite loss stops the run in ``run_epochs``


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
    curves = [("train", [r["train_loss"] for r in rows], {"marker": "o"}),
              ("validation", [r["validation_loss"] for r in rows], {"marker": "o"}),
              (f"validation, mean of last {VALIDATION_WINDOW}", [r["validation_loss_last5"] for r in rows], {"ls": "--"})]
    write_loss_plot(path, [r["epoch"] for r in rows], curves, ylabel="weighted NLL per row (transformed units)")


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


def _fingerprint(spec: FlowSpec, settings: TrainingSettings, *digests: str) -> str:
    return fingerprint_of({"spec": json.loads(spec.to_json()), "settings": asdict(settings), "data": digests})


def _seed_everything(seed: int) -> None:
    """Same seed, same weights on CPU: seeded init, deterministic kernels."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def _log_device() -> torch.device:
    from pipeline_steps.train.devices import log_device

    log_device("torch")
    return select_device()
