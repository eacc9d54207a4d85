"""The covariance GAN's updates: its three networks with their optimisers, one epoch of updates in one
``tf.function`` and the referee's evaluation (update order: ``train/covariance_gan.py``).

Learning rates come from ``training.learning_rate: {generator, discriminator, referee}``; with
``training.schedule`` the generator's and discriminator's follow it per update, the referee's stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from pipeline_steps.models.covariance_gan import (
    build_discriminator,
    build_generator,
    build_referee,
    discriminator_batch,
)
from pipeline_steps.train.schedule import LearningRateSchedule

if TYPE_CHECKING:
    from pipeline_steps.train.covariance_gan import GanTrainingConfig

__all__ = ["GanNetworks", "build_networks", "make_train_epoch", "make_referee_evaluation", "EpochRunner", "LOSS_NAMES"]


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




def build_networks(config: GanTrainingConfig) -> GanNetworks:
    """Fresh networks (seeded initialisation) with optimizers whose slots already exist.

    The optimizers are built eagerly so that a checkpoint restore fills their moments instead of
    deferring them.
    """
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
    referee keeps its constant ``training.learning_rate.referee``: it only measures quality.
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
