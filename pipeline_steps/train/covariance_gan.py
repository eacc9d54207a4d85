"""Train LHCb's covariance GAN: generator, discriminator and referee, resumable and deterministic.

Update order, once per batch (one ``tf.GradientTape`` per network; a whole epoch of batches runs in
one ``tf.function``, see :func:`make_train_epoch`):

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
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.reproducible import normalise_keras_archive
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule
from pipeline_steps.models.covariance_gan import (
    GanArchitecture,
    build_discriminator,
    build_generator,
    build_referee,
    covariance_from_elements,
    discriminator_batch,
    spd_fraction,
)
from pipeline_steps.common.source_hash import sha256_file
from pipeline_steps.train.devices import log_device

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch",
    "discriminator_loss",
    "generator_loss",
    "referee_train_loss",
    "referee_validation_loss",
    "spd_fraction",
    "seconds",          # wall time of the epoch's updates (not its validation): timing, not reproducible
    "rows_per_second",
]
TIMING_COLUMNS = ("seconds", "rows_per_second")
_VALIDATION_ROWS = 50_000  # per-epoch referee evaluation: enough for a smooth curve, bounded cost
_SPD_ROWS = 5_000  # per-epoch SPD fraction in history.csv; spd.json uses the whole validation split
_PLOT_POINTS = 3_000


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
        hyper, training = model["hyperparameters"], model["training"]
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
            generator_learning_rate=float(hyper.get("generator_learning_rate", 1e-4)),
            discriminator_learning_rate=float(hyper.get("discriminator_learning_rate", 1e-4)),
            referee_learning_rate=float(hyper.get("referee_learning_rate", 1e-3)),
            label_smoothing=smoothing,
            seed=int(seed),
            optimizer=optimizer,
            schedule=_schedule_entries(training),
            early_stopping=_early_stopping_entry(training),
        )

    def fingerprint(self, train_digest: str) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: all but ``epochs`` and ``checkpoint_every``."""
        settings = asdict(self)
        settings.pop("epochs"), settings.pop("checkpoint_every"), settings.pop("early_stopping")
        if settings["schedule"] is None:
            settings.pop("schedule")  # unchanged fingerprint (and resumable checkpoints) without a schedule
        settings["architecture"] = self.architecture.to_json()
        return {**settings, "train_sha256": train_digest}


@dataclass(frozen=True)
class SplitArrays:
    """Transformed model inputs of one split, float32, plus its physical conditions (for SPD)."""

    conditions: np.ndarray
    targets: np.ndarray
    physical_conditions: pd.DataFrame


@dataclass
class GanNetworks:
    """The three networks, their optimizers and the counters a checkpoint must carry."""

    generator: Any
    discriminator: Any
    referee: Any
    generator_optimizer: Any
    discriminator_optimizer: Any
    referee_optimizer: Any
    epoch: Any  # tf.Variable int64: epochs completed
    step: Any  # tf.Variable int64: batches completed (seeds the noise)

    def checkpoint(self):
        import tensorflow as tf

        return tf.train.Checkpoint(**vars(self))


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
        configure_tensorflow(threads)
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


def spd_evaluator(transforms_path: str | None, physical_conditions: pd.DataFrame) -> Callable | None:
    """A function generated-targets -> SPD fraction in physical units, or None when unavailable.

    Uses ``pipeline_steps.preprocess.transforms.load_transforms``: ``targets.inverse`` then
    ``targets_to_physical`` (which undoes a ``logdiag_corr``/``cholesky`` representation).
    """
    if transforms_path is None:
        return None
    try:
        from pipeline_steps.preprocess.transforms import load_transforms
    except ModuleNotFoundError as error:
        logger.warning("SPD fraction not computed: %s", error)
        return None
    fitted = load_transforms(transforms_path)

    def evaluate(generated: np.ndarray) -> float | None:
        return physical_spd_fraction(fitted, generated, physical_conditions.iloc[:len(generated)])

    return evaluate


def physical_spd_fraction(fitted, generated: np.ndarray, physical_conditions: pd.DataFrame) -> float | None:
    """Fraction of generated covariance matrices that are SPD after the inverse transform."""
    targets = fitted.targets.inverse(generated)
    if hasattr(fitted, "targets_to_physical"):
        targets = fitted.targets_to_physical(targets, physical_conditions.reset_index(drop=True))
    matrices = covariance_from_elements({c: targets[c].to_numpy() for c in targets.columns})
    return None if matrices is None else spd_fraction(matrices)


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
    manager, history = _resume(networks, config, Path(checkpoint_dir), train_digest)
    schedule = None
    if config.schedule is not None:
        updates_per_epoch = max(1, -(-len(train_split.conditions) // config.batch_size))
        schedule = LearningRateSchedule.from_config(config.schedule, updates_per_epoch)
    run_epoch = EpochRunner(networks, config, train_split.conditions, train_split.targets, schedule)
    stopper = EarlyStopping.from_config(config.early_stopping, "referee_validation_loss", "max")
    evaluate = make_referee_evaluation(networks, config)
    validation = (validation_split.conditions[:_VALIDATION_ROWS], validation_split.targets[:_VALIDATION_ROWS])
    start = int(networks.epoch.numpy())
    if history and history[-1].get("early_stop"):
        logger.info("the checkpointed run stopped early after epoch %d; not training further", start)
        start = config.epochs
    bar = tqdm(range(start, config.epochs), initial=start, total=config.epochs, desc="Training (validation) loss")
    seconds = 0.0
    for epoch in bar:
        began = time.perf_counter()
        row = run_epoch(epoch)
        learning_rate = row.pop("learning_rate", None)
        epoch_seconds = time.perf_counter() - began
        seconds += epoch_seconds
        row["seconds"] = epoch_seconds  # the summary's training time and the per-epoch throughput
        row["rows_per_second"] = len(train_split.conditions) / epoch_seconds if epoch_seconds > 0 else float("nan")
        row["referee_validation_loss"], generated = evaluate(*validation)
        row["spd_fraction"] = _spd_or_nan(spd_of_generated, generated[:_SPD_ROWS])
        if learning_rate is not None:
            row["learning_rate"] = learning_rate
        history.append({"epoch": epoch + 1, **row})
        stop = stopper is not None and stopper.should_stop(history)
        if stopper is not None:
            history[-1]["early_stop"] = int(stop)
        networks.epoch.assign(epoch + 1)
        bar.set_description(f"Training (validation) loss: {row['referee_train_loss']:.3f} "
                            f"({row['referee_validation_loss']:.3f})")
        if stop or (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs:
            _save_checkpoint(manager, history, epoch + 1)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
        if stop:
            logger.info("early stop after epoch %d: %s did not improve by %g in %d epochs", epoch + 1,
                        stopper.metric, stopper.min_delta, stopper.patience)
            break
    rate = _rows_per_second(len(train_split.conditions) * (int(networks.epoch.numpy()) - start), seconds)
    _, generated = evaluate(validation_split.conditions, validation_split.targets)
    return TrainingResult(networks, history, generated, rate)


def build_networks(config: GanTrainingConfig) -> GanNetworks:
    """Fresh networks (seeded initialisation) with optimizers whose slots already exist.

    The optimizers are built eagerly so that a checkpoint restore fills their moments instead of
    deferring them.
    """
    import keras
    import tensorflow as tf

    a = config.architecture
    networks = GanNetworks(
        generator=build_generator(a),
        discriminator=build_discriminator(a),
        referee=build_referee(a),
        generator_optimizer=_optimizer(config.optimizer, config.generator_learning_rate),
        discriminator_optimizer=_optimizer(config.optimizer, config.discriminator_learning_rate),
        referee_optimizer=_optimizer(config.optimizer, config.referee_learning_rate),
        epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
        step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step"),
    )
    for network, optimizer in _pairs(networks):
        optimizer.build(network.trainable_variables)
    return networks


_OPTIMIZERS = {"rmsprop", "adam"}


def _optimizer(name: str, learning_rate: float):
    """RMSprop by default: LHCb's notebook does not name its optimizer, and on the known-problem test
    momentum-free RMSprop converges where Adam (beta_1 = 0.9) oscillates around the solution."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.RMSprop(learning_rate)


def _pairs(networks: GanNetworks):
    return [
        (networks.generator, networks.generator_optimizer),
        (networks.discriminator, networks.discriminator_optimizer),
        (networks.referee, networks.referee_optimizer),
    ]


def make_train_epoch(networks: GanNetworks, config: GanTrainingConfig) -> Callable:
    """One epoch of updates in one ``tf.function``: (conditions, targets, order, rates) -> mean losses.

    ``order`` (int64 [n]) is the epoch's row permutation, cut into batches of ``batch_size`` as
    ``tf.data``'s ``batch`` would; ``rates`` (float32 [n_batches]) the generator and discriminator
    learning rate of each update when a schedule is set (ignored otherwise). The loop runs in the
    graph: no Python, input pipeline or host sync per batch; the losses are read back once.
    """
    import tensorflow as tf

    a, batch_size = config.architecture, config.batch_size
    update = _make_update(networks, config)
    scheduled = [networks.generator_optimizer, networks.discriminator_optimizer] if config.schedule else []

    @tf.function(input_signature=[tf.TensorSpec([None, a.n_conditions], tf.float32),
                                  tf.TensorSpec([None, a.n_targets], tf.float32),
                                  tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32)])
    def train_epoch(conditions, targets, order, rates):
        n_batches = (tf.size(order) + batch_size - 1) // batch_size
        losses = {name: tf.TensorArray(tf.float32, size=n_batches) for name in LOSS_NAMES}
        for batch in tf.range(n_batches):
            for optimizer in scheduled:
                optimizer.learning_rate = rates[batch]
            rows = order[batch * batch_size:(batch + 1) * batch_size]
            values = update(tf.gather(conditions, rows), tf.gather(targets, rows))
            losses = {name: losses[name].write(batch, values[name]) for name in LOSS_NAMES}
        return {name: tf.reduce_mean(losses[name].stack()) for name in LOSS_NAMES}

    return train_epoch


LOSS_NAMES = ("discriminator_loss", "generator_loss", "referee_train_loss")


def _make_update(networks: GanNetworks, config: GanTrainingConfig) -> Callable:
    """The per-batch update (order in the module docstring) as a plain function, traced in the epoch's loop.

    ``G(X, z)`` is computed once, under the generator's tape: its value feeds the discriminator's
    batch (detached), and the same tape, re-entered after the discriminator's update, records the
    updated discriminator on it for the generator's loss (same numbers as a second forward pass).
    """
    import keras
    import tensorflow as tf

    bce = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    noise_dim = config.architecture.noise_dim
    G, D, R = networks.generator, networks.discriminator, networks.referee
    seed = tf.constant(config.seed, tf.int64)

    def apply(optimizer, tape, loss, network):
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    def update(conditions, reference):
        noise = tf.random.stateless_normal([tf.shape(conditions)[0], noise_dim], seed=tf.stack([seed, networks.step]))
        networks.step.assign_add(1)
        with tf.GradientTape() as generator_tape:
            generated = G([conditions, noise], training=True)
        x, y, labels = discriminator_batch(conditions, reference, tf.stop_gradient(generated))
        with tf.GradientTape() as tape:
            discriminator_loss = bce(labels, D([x, y], training=True))
        apply(networks.discriminator_optimizer, tape, discriminator_loss, D)
        with generator_tape:
            fooled = D([conditions, generated], training=True)
            generator_loss = bce(tf.ones_like(fooled), fooled)
        apply(networks.generator_optimizer, generator_tape, generator_loss, G)
        with tf.GradientTape() as tape:
            referee_loss = bce(labels, R([x, y], training=True))
        apply(networks.referee_optimizer, tape, referee_loss, R)
        return {"discriminator_loss": discriminator_loss, "generator_loss": generator_loss,
                "referee_train_loss": referee_loss}

    return update


def make_referee_evaluation(networks: GanNetworks, config: GanTrainingConfig) -> Callable:
    """(conditions, targets) -> (referee BCE on the doubled batch, generated targets [n, t]).

    The noise is seeded by ``(seed, -1 - batch)``: fixed across epochs and disjoint from training
    noise, so the validation curve moves only because the networks do.
    """
    import keras
    import tensorflow as tf

    bce = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing,
                                          reduction="sum")
    a = config.architecture

    @tf.function(input_signature=[tf.TensorSpec([None, a.n_conditions], tf.float32),
                                  tf.TensorSpec([None, a.n_targets], tf.float32),
                                  tf.TensorSpec([2], tf.int64)])
    def batch_loss(conditions, reference, seed):
        noise = tf.random.stateless_normal([tf.shape(conditions)[0], a.noise_dim], seed=seed)
        generated = networks.generator([conditions, noise], training=False)
        x, y, labels = discriminator_batch(conditions, reference, generated)
        return bce(labels, networks.referee([x, y], training=False)), generated

    def evaluate(conditions: np.ndarray, reference: np.ndarray) -> tuple[float, np.ndarray]:
        total, generated = 0.0, []
        for index, start in enumerate(range(0, len(conditions), config.batch_size)):
            stop = start + config.batch_size
            loss, batch = batch_loss(conditions[start:stop], reference[start:stop],
                                     np.array([config.seed, -1 - index], np.int64))
            total += float(loss)
            generated.append(batch.numpy())
        return total / (2 * len(conditions)), np.concatenate(generated)

    return evaluate


class EpochRunner:
    """Runs epoch ``e`` of :func:`make_train_epoch` on the training split held in memory.

    The batch order is a permutation seeded by ``(seed, e)``; with a schedule, the rates of the
    epoch's updates are computed on the host from the global update count (``networks.step``,
    checkpointed, so a resume continues the schedule), read from the device once per epoch. The
    referee keeps its constant ``referee_learning_rate``: it only measures quality.
    """

    def __init__(self, networks: GanNetworks, config: GanTrainingConfig, conditions: np.ndarray,
                 targets: np.ndarray, schedule: LearningRateSchedule | None = None, compiled: bool = True):
        import tensorflow as tf

        self.networks, self.config, self.schedule = networks, config, schedule
        with tf.device("/CPU:0"):
            self.conditions, self.targets = tf.constant(conditions), tf.constant(targets)
        self.rows = len(conditions)
        self.batches = -(-self.rows // config.batch_size)
        train_epoch = make_train_epoch(networks, config)
        self.train_epoch = train_epoch if compiled else train_epoch.python_function

    def __call__(self, epoch: int) -> dict[str, float]:
        """Mean batch losses of the epoch, plus ``learning_rate`` (of its first update) when scheduled."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.rows)
        rates = np.zeros(0, np.float32)
        if self.schedule is not None:
            first = int(self.networks.step.numpy())
            rates = np.array([self.schedule.lr_at(first + k) for k in range(self.batches)], np.float32)
        losses = self.train_epoch(self.conditions, self.targets, order, rates)
        row = {name: float(value) for name, value in losses.items()}
        if self.schedule is not None:
            row["learning_rate"] = self.schedule.lr_at(first)
        return row


def _schedule_entries(training: Mapping[str, Any]) -> tuple | None:
    if training.get("schedule") is None:
        return None
    entries = tuple(dict(step) for step in training["schedule"])
    LearningRateSchedule.from_config(entries, 1)  # fail at start-up, naming the key
    return entries


def _early_stopping_entry(training: Mapping[str, Any]) -> dict | None:
    entry = training.get("early_stopping")
    if entry is not None:
        EarlyStopping.from_config(entry, "referee_validation_loss", "max")
    return None if entry is None else dict(entry)


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


# --- checkpoints -------------------------------------------------------------------------------

_FINGERPRINT = "fingerprint.json"
_HISTORY = "history.json"


def _resume(networks: GanNetworks, config: GanTrainingConfig, directory: Path, train_digest: str):
    """Restore the latest matching checkpoint; return (manager, history rows up to its epoch).

    A checkpoint written with another architecture, seed, batch size, learning rate or training
    data, or beyond the requested epochs, is discarded (logged) and training starts afresh.
    """
    import tensorflow as tf

    fingerprint = config.fingerprint(train_digest)
    if directory.exists() and not _matches(directory, fingerprint):
        logger.warning("%s: checkpoint made with other settings or data; starting afresh", directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(directory / _FINGERPRINT, json.dumps(fingerprint, indent=2, sort_keys=True))
    manager = tf.train.CheckpointManager(networks.checkpoint(), str(directory), max_to_keep=2)
    if manager.latest_checkpoint is None:
        return manager, []
    manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    epoch = int(networks.epoch.numpy())
    if epoch > config.epochs:
        logger.warning("%s: checkpoint at epoch %d is beyond the requested %d epochs; starting afresh",
                       directory, epoch, config.epochs)
        shutil.rmtree(directory)
        return _resume(_rebuild_networks(networks, config), config, directory, train_digest)
    history = [row for row in _read_history(directory) if row["epoch"] <= epoch]
    logger.info("resumed from %s at epoch %d of %d", manager.latest_checkpoint, epoch, config.epochs)
    return manager, history


def _rebuild_networks(networks: GanNetworks, config: GanTrainingConfig) -> GanNetworks:
    """Replace ``networks``' contents by freshly initialised ones (after discarding a checkpoint)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    fresh = build_networks(config)
    vars(networks).update(vars(fresh))
    return networks


def _matches(directory: Path, fingerprint: dict) -> bool:
    path = directory / _FINGERPRINT
    if not path.exists():
        return not any(directory.iterdir())
    return json.loads(path.read_text()) == json.loads(json.dumps(fingerprint, sort_keys=True))


def _read_history(directory: Path) -> list[dict]:
    path = directory / _HISTORY
    return json.loads(path.read_text()) if path.exists() else []


def _save_checkpoint(manager, history: list[dict], epoch: int) -> None:
    """History first, then the checkpoint: a resume trims history rows beyond the restored epoch."""
    write_text_atomic(Path(manager.directory) / _HISTORY, json.dumps(history, allow_nan=True))
    manager.save(checkpoint_number=epoch)
    logger.info("checkpoint at epoch %d in %s", epoch, manager.directory)


# --- outputs -----------------------------------------------------------------------------------


def write_outputs(config: GanTrainingConfig, result: TrainingResult, reference_targets: np.ndarray,
                  final_spd: float | None, *, generator: str, model_json: str, history: str, spd: str,
                  loss_plot: str, correlations_plot: str) -> None:
    """generator.keras, model.json, history.csv, spd.json, loss.png, correlations.png (atomically)."""
    with atomic_path(generator) as tmp:
        result.networks.generator.save(tmp)
        normalise_keras_archive(tmp)
    document = {**config.architecture.to_json(), "seed": config.seed,
                "epochs_trained": int(result.networks.epoch.numpy())}
    write_text_atomic(model_json, json.dumps(document, indent=2) + "\n")
    extra = [c for c in ("learning_rate", "early_stop") if result.history and c in result.history[-1]]
    frame = pd.DataFrame(result.history, columns=HISTORY_COLUMNS + extra)
    write_text_atomic(history, frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(spd, json.dumps(_spd_document(final_spd, len(result.generated_validation)), indent=2) + "\n")
    write_loss_plot(frame, config.label_smoothing, loss_plot)
    write_correlations_plot(reference_targets, result.generated_validation,
                            config.architecture.target_names, correlations_plot)


def _spd_document(fraction: float | None, n_matrices: int) -> dict[str, Any]:
    return {
        "spd_fraction": None if fraction is None or math.isnan(fraction) else fraction,
        "n_matrices": n_matrices,
        "split": "validation",
        "definition": "generated cov_ij (i<=j) after transforms.targets.inverse and targets_to_physical, "
                      "stacked into symmetric matrices; SPD = finite and smallest eigenvalue > 0",
    }


def ideal_losses(label_smoothing: float) -> tuple[float, float]:
    """(BCE for identical datasets, BCE floor for perfectly separated ones), in nats."""
    target = 1.0 - label_smoothing / 2.0
    floor = 0.0 if label_smoothing == 0 else -(target * math.log(target) + (1 - target) * math.log(1 - target))
    return math.log(2.0), floor


def write_loss_plot(history: pd.DataFrame, label_smoothing: float, path: str) -> None:
    """Referee BCE per epoch on training and validation data, ln 2 dashed, smoothing floor dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    identical, floor = ideal_losses(label_smoothing)
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(history["epoch"], history["referee_train_loss"], label="referee, training")
    axis.plot(history["epoch"], history["referee_validation_loss"], label="referee, validation")
    axis.axhline(identical, color="k", linestyle="--", label=f"identical datasets: ln 2 = {identical:.3f}")
    axis.axhline(floor, color="gray", linestyle=":", label=f"separable floor (smoothing {label_smoothing:g}): {floor:.3f}")
    axis.set(xlabel="epoch", ylabel="binary cross-entropy [nats]", title="Covariance GAN: referee loss")
    axis.legend(fontsize="small")
    _save_figure(figure, path)


def write_correlations_plot(reference: np.ndarray, generated: np.ndarray, names: tuple[str, ...], path: str) -> None:
    """LHCb's sanity plot: consecutive pairs of output features, reference blue, generated orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(i, i + 1) for i in range(len(names) - 1)] or [(0, 0)]
    columns = min(4, len(pairs))
    rows = math.ceil(len(pairs) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(4.5, 3 * columns), 3 * rows + 0.5), squeeze=False)
    picked = np.random.default_rng(0).permutation(len(reference))[:_PLOT_POINTS]
    for axis, (i, j) in zip(axes.flat, pairs):
        axis.scatter(reference[picked, i], reference[picked, j], s=1, alpha=0.3, color="tab:blue", label="reference")
        axis.scatter(generated[picked, i], generated[picked, j], s=1, alpha=0.3, color="tab:orange", label="generated")
        axis.set(xlabel=names[i] if names else str(i), ylabel=names[j] if names else str(j))
    for axis in list(axes.flat)[len(pairs):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize="small", markerscale=8)
    figure.suptitle("Output correlations (transformed space)", fontsize="medium")
    _save_figure(figure, path)


def _save_figure(figure, path: str) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
