"""Train LHCb's covariance GAN: generator, discriminator and referee, resumable and deterministic.

Update order, once per batch (one ``tf.GradientTape`` per network; a whole epoch of batches runs in
one ``tf.function``, see ``train/covariance_gan_updates.py``; the epoch loop, early stop and
checkpoint cadence are the shared ones of ``train/loop.py``):

1. noise ``z = stateless_normal(seed=[seed, global_step])`` and ``Y_gen = G(X, z)``;
2. discriminator: BCE on LHCb's doubled batch ``([X; X], [Y_ref; Y_gen])`` with labels ``[1; 0]``,
   gradient applied to the discriminator only;
3. generator: BCE of the *updated* discriminator on ``(X, G(X, z))`` against label 1 (the
   non-saturating GAN loss), gradient applied to the generator only;
4. referee: the same doubled batch as step 2 (``Y_gen`` detached), its loss is recorded *before* its
   own update and then it takes a step with its larger learning rate. Its output never reaches the
   generator: it is the monitor whose loss on training and validation data is the training curve.

Every loss is binary cross-entropy ``from_logits=True`` with ``label_smoothing`` (LHCb: 0.1).

Ideal value for two identical datasets: no classifier can do better than ``p = 1/2`` for every row,
and ``-[s ln 1/2 + (1 - s) ln 1/2] = ln 2`` for *any* smoothed target ``s``, so the dashed line stays
at ln 2 ~ 0.693 with label smoothing. What smoothing changes is the floor for perfectly separated
data: targets ``1 - eps/2`` and ``eps/2`` give at best the binary entropy ``H(eps/2)`` (0.199 for
eps = 0.1, instead of 0), drawn dotted.

Resumption and determinism: the batch order of epoch ``e`` is a permutation seeded by
``(seed, e)`` and the noise of step ``k`` by ``(seed, k)``; the checkpoint holds the three networks,
their optimizer states (moments, iteration counters), the epoch and the global step. A run
resumed from a checkpoint therefore gives the same weights as an uninterrupted one.

Learning rates: ``training.learning_rate: {generator, discriminator, referee}`` (defaults 1e-4,
1e-4, 1e-3); ``training.schedule`` replaces the generator's and discriminator's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.common.source_hash import sha256_file
from pipeline_steps.models.covariance_gan import GanArchitecture
from pipeline_steps.train.checkpoint import TensorFlowCheckpoint
from pipeline_steps.train.covariance_gan_outputs import (
    HISTORY_COLUMNS,
    TIMING_COLUMNS,
    ideal_losses,
    physical_spd_fraction,
    spd_evaluator,
    write_outputs,
)
from pipeline_steps.train.covariance_gan_updates import (
    _OPTIMIZERS,
    LOSS_NAMES,
    EpochRunner,
    GanNetworks,
    _make_update,  # noqa: F401  (tests compare the traced epoch with it, batch by batch)
    build_networks,
    make_referee_evaluation,
    make_train_epoch,
)
from pipeline_steps.train.devices import log_device
from pipeline_steps.train.loop import diverged, run_epochs
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule
from pipeline_steps.train.settings import network_learning_rates, read_training, reject_moved_learning_rates, training_threads

__all__ = [
    "GanTrainingConfig", "SplitArrays", "TrainingResult", "run", "configure_tensorflow", "load_split", "train_gan",
    # re-exported from covariance_gan_updates / covariance_gan_outputs
    "GanNetworks", "build_networks", "make_train_epoch", "make_referee_evaluation", "EpochRunner", "LOSS_NAMES",
    "HISTORY_COLUMNS", "TIMING_COLUMNS", "spd_evaluator", "physical_spd_fraction", "write_outputs", "ideal_losses",
]

logger = logging.getLogger(__name__)

OWN_KEYS = ("checkpoint_every",)
DEFAULT_LEARNING_RATES = {"generator": 1.0e-4, "discriminator": 1.0e-4, "referee": 1.0e-3}
_VALIDATION_ROWS = 50_000  # per-epoch referee evaluation: enough for a smooth curve, bounded cost
_SPD_ROWS = 5_000  # per-epoch SPD fraction in history.csv; spd.json uses the whole validation split


@dataclass(frozen=True)
class GanTrainingConfig:
    """Everything the training reads, built once from the rule's config slice."""

    architecture: GanArchitecture
    epochs: int
    batch_size: int
    checkpoint_every: int
    generator_learning_rate: float
    discriminator_learning_rate: float
    referee_learning_rate: float
    label_smoothing: float
    seed: int
    optimizer: str = "rmsprop"
    schedule: tuple | None = None        # training.schedule: generator + discriminator rate per update
    early_stopping: dict | None = None   # training.early_stopping (default: referee validation loss, max)

    @classmethod
    def from_model(cls, model: Mapping[str, Any], seed: int) -> "GanTrainingConfig":
        """``model`` holds the model's conditions, targets, hyperparameters and training slices."""
        hyper = model["hyperparameters"]
        training = read_training(model["training"], "covariance_gan", OWN_KEYS,
                                 early_stopping_metric="referee_validation_loss", early_stopping_mode="max")
        reject_moved_learning_rates(hyper, {f"{name}_learning_rate": f"training.learning_rate.{name}"
                                            for name in DEFAULT_LEARNING_RATES})
        rates = network_learning_rates(training.get("learning_rate"), "covariance_gan", DEFAULT_LEARNING_RATES)
        architecture = GanArchitecture.from_config(hyper, list(model["conditions"]), list(model["targets"]))
        optimizer = str(hyper.get("optimizer", "rmsprop"))
        if optimizer not in _OPTIMIZERS:
            raise ConfigError(f"hyperparameters.optimizer: expected one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
        smoothing = float(hyper.get("label_smoothing", 0.0))
        if not 0.0 <= smoothing < 1.0:
            raise ConfigError(f"hyperparameters.label_smoothing: expected a value in [0, 1), got {smoothing}")
        return cls(
            architecture=architecture,
            epochs=int(training["epochs"]),
            batch_size=int(training["batch_size"]),
            checkpoint_every=int(training.get("checkpoint_every", training["epochs"])),
            generator_learning_rate=rates["generator"],
            discriminator_learning_rate=rates["discriminator"],
            referee_learning_rate=rates["referee"],
            label_smoothing=smoothing,
            seed=int(seed),
            optimizer=optimizer,
            schedule=training.get("schedule"),
            early_stopping=training.get("early_stopping"),
        )

    def fingerprint(self, train_digest: str) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: all but ``epochs`` and ``checkpoint_every``.

        ``early_stopping`` is in it: a checkpoint past the epoch where new settings stop (or one that
        stopped early, under settings that go on) is not what those settings train. Left out, adding
        ``patience: 2`` resumed a finished 30-epoch model unchanged (from scratch it stops at epoch 4), and
        removing it again kept the 4-epoch model for a config asking for 30.
        """
        settings = asdict(self)
        settings.pop("epochs"), settings.pop("checkpoint_every")
        for optional in ("schedule", "early_stopping"):
            if settings[optional] is None:
                settings.pop(optional)  # unchanged fingerprint (and resumable checkpoints) without them
        settings["architecture"] = self.architecture.to_json()
        return {**settings, "train_sha256": train_digest}



@dataclass(frozen=True)
class SplitArrays:
    """Transformed model inputs of one split, float32, plus its physical conditions (for SPD)."""

    conditions: np.ndarray
    targets: np.ndarray
    physical_conditions: pd.DataFrame



@dataclass
class TrainingResult:
    networks: GanNetworks
    history: list[dict[str, float]]
    generated_validation: np.ndarray
    rows_per_second: float | None


def run(
    *,
    train: str,
    validation: str,
    transforms: str | None,
    generator: str,
    model_json: str,
    history: str,
    spd: str,
    loss_plot: str,
    correlations_plot: str,
    checkpoint_dir: str,
    model: Mapping[str, Any],
    seed: int,
    log: str | None = None,
    threads: int = 1,
) -> None:
    """The rule's entry point: read the splits, train (resuming if possible), write every output."""
    with step_logging(log):
        configure_tensorflow(training_threads(model["training"], threads))  # the config's: bytes independent of cores
        log_device("tensorflow")
        config = GanTrainingConfig.from_model(model, seed)
        names = config.architecture
        train_split = load_split(train, names.condition_names, names.target_names)
        validation_split = load_split(validation, names.condition_names, names.target_names)
        to_spd = spd_evaluator(transforms, validation_split.physical_conditions)
        result = train_gan(
            config, train_split, validation_split, checkpoint_dir,
            train_digest=sha256_file(train), spd_of_generated=to_spd,
        )
        final_spd = to_spd(result.generated_validation) if to_spd else None
        write_outputs(config, result, validation_split.targets, final_spd,
                      generator=generator, model_json=model_json, history=history, spd=spd,
                      loss_plot=loss_plot, correlations_plot=correlations_plot)


def configure_tensorflow(threads: int) -> None:
    """Thread counts (when TF has not started yet) and op determinism (always)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(threads, 2)))
    except RuntimeError:
        logger.info("TensorFlow already initialised in this process; thread counts left as they are")
    tf.config.experimental.enable_op_determinism()


def load_split(path: str | Path, conditions: tuple[str, ...], targets: tuple[str, ...]) -> SplitArrays:
    """Read ``cond__*`` / ``targ__*`` (config order) and the physical conditions of one split."""
    columns = [f"cond__{c}" for c in conditions] + [f"targ__{t}" for t in targets]
    available = _parquet_columns(path)
    missing = [c for c in columns if c not in available]
    if missing:
        raise InputError(f"{path}: missing columns {missing}; expected the preprocess stage's transformed "
                         f"inputs for conditions {list(conditions)} and targets {list(targets)}")
    physical = [c for c in conditions if c in available]
    frame = pd.read_parquet(path, columns=columns + physical)
    if frame.empty:
        raise InputError(f"{path}: no rows; expected a non-empty split")
    values = frame[columns].to_numpy(dtype=np.float32)
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        raise InputError(f"{path}: non-finite values in {[c for c, b in zip(columns, bad) if b]}; "
                         "expected finite transformed inputs")
    return SplitArrays(values[:, :len(conditions)], values[:, len(conditions):], frame[physical])


def _parquet_columns(path: str | Path) -> set[str]:
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(path).names)
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) on non-Parquet
        raise InputError(f"{path}: cannot read as Parquet ({error}); expected a preprocess split") from error


def train_gan(
    config: GanTrainingConfig,
    train_split: SplitArrays,
    validation_split: SplitArrays,
    checkpoint_dir: str | Path,
    *,
    train_digest: str = "",
    spd_of_generated: Callable | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> TrainingResult:
    """Train for ``config.epochs`` epochs, resuming from ``checkpoint_dir`` when it matches."""
    import keras

    keras.utils.set_random_seed(config.seed)
    networks = build_networks(config)
    checkpoint = TensorFlowCheckpoint(checkpoint_dir, config.fingerprint(train_digest), networks.checkpoint,
                                      epoch=lambda: int(networks.epoch.numpy()), max_epoch=config.epochs,
                                      restart=lambda: _rebuild_networks(networks, config))
    history = checkpoint.resume()
    resumed = len(history)
    schedule = None
    if config.schedule is not None:
        updates_per_epoch = max(1, -(-len(train_split.conditions) // config.batch_size))
        schedule = LearningRateSchedule.from_config(config.schedule, updates_per_epoch)
    run_updates = EpochRunner(networks, config, train_split.conditions, train_split.targets, schedule)
    evaluate = make_referee_evaluation(networks, config)
    validation = (validation_split.conditions[:_VALIDATION_ROWS], validation_split.targets[:_VALIDATION_ROWS])

    def run_epoch(epoch: int, history: list[dict]) -> dict:
        began = time.perf_counter()
        row = run_updates(epoch - 1)
        learning_rate = row.pop("learning_rate", None)
        seconds = time.perf_counter() - began
        row["seconds"] = seconds  # the summary's training time and the per-epoch throughput
        row["rows_per_second"] = len(train_split.conditions) / seconds if seconds > 0 else float("nan")
        row["referee_validation_loss"], generated = evaluate(*validation)
        if not np.isfinite(generated).all():  # its losses can stay finite: Keras clips the probabilities
            raise diverged(f"epoch {epoch}/{config.epochs}", f"{int(np.sum(~np.isfinite(generated)))} of the "
                           f"{generated.size} generated validation values are NaN or infinite")
        row["spd_fraction"] = _spd_or_nan(spd_of_generated, generated[:_SPD_ROWS])
        if learning_rate is not None:
            row["learning_rate"] = learning_rate
        networks.epoch.assign(epoch)
        return {"epoch": epoch, **row}

    history = run_epochs(
        history, epochs=config.epochs, checkpoint_every=config.checkpoint_every,
        stopper=EarlyStopping.from_config(config.early_stopping, "referee_validation_loss", "max"),
        run_epoch=run_epoch, save=checkpoint.save, on_epoch_end=on_epoch_end, label="Training (validation) loss",
        finite=(*LOSS_NAMES, "referee_validation_loss"),
        describe=lambda row: (f"Training (validation) loss: {row['referee_train_loss']:.3f} "
                              f"({row['referee_validation_loss']:.3f})"))
    trained = history[resumed:]
    rate = _rows_per_second(len(train_split.conditions) * len(trained), sum(row["seconds"] for row in trained))
    _, generated = evaluate(validation_split.conditions, validation_split.targets)
    return TrainingResult(networks, history, generated, rate)


def _spd_or_nan(spd_of_generated: Callable | None, generated: np.ndarray) -> float:
    if spd_of_generated is None:
        return float("nan")
    value = spd_of_generated(generated)
    return float("nan") if value is None else float(value)


def _rows_per_second(rows: int, seconds: float) -> float | None:
    if rows == 0 or seconds <= 0:
        return None
    logger.info("trained on %d rows in %.2f s: %.0f rows/s", rows, seconds, rows / seconds)
    return rows / seconds


def _rebuild_networks(networks: GanNetworks, config: GanTrainingConfig) -> GanNetworks:
    """Replace ``networks``' contents by freshly initialised ones (after discarding a checkpoint)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    fresh = build_networks(config)
    vars(networks).update(vars(fresh))
    return networks
