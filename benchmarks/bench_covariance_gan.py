"""Covariance GAN training throughput (rows/s) on this machine vs LHCb's published figure.

LHCb's notebook: 3000 epochs of 352,612 rows, batch 10k, at 1.16 s per epoch on their GPU, i.e.
about 304k rows/s. We time the same networks (15 conditions, 15 targets, noise 128, hidden 128,
8 residual steps, 7 discriminator layers, three updates per batch) on synthetic rows:
ours = the trainer's compiled epoch (one ``tf.function`` looping over the batches); baseline in the
same run = the same epoch function executed eagerly (no graph compilation).

Second pair, at the workflow's own settings (``config/config.yaml`` ``models.tracks_cov``: sizes,
batch, learning rates, label smoothing, optimizer, schedule): our trainer's epochs against a plain
Keras ``fit`` of the same three networks (built by the same model code and optimizers), a
``keras.Model`` subclass whose ``train_step`` makes the same three updates with the same losses,
fed numpy arrays, the schedule as a Keras ``LearningRateSchedule``. Both: same rows, same batch
size, the first epoch (tracing) excluded; epochs alternate (fit, ours, fit, ...) and the median
rows/s of each is reported (robust to a neighbour on shared cores).
Prints a JSON document and writes it with --output.

    .venv/bin/python benchmarks/bench_covariance_gan.py --rows 50000 --epochs 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (importing does not start TensorFlow: thread counts can still be set)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

from pipeline_steps.models.covariance_gan import discriminator_batch  # noqa: E402
from pipeline_steps.train import covariance_gan as training  # noqa: E402
from pipeline_steps.train.schedule import LearningRateSchedule  # noqa: E402
from pipeline_steps.train.devices import describe_device  # noqa: E402

LHCB_ROWS, LHCB_SECONDS_PER_EPOCH = 352_612, 1.16
LHCB_MODEL = {
    "conditions": [f"c{i}" for i in range(15)],
    "targets": [f"cov_{i}" for i in range(15)],
    "hyperparameters": {"noise_dim": 128, "hidden": 128, "generator_residual_steps": 8, "discriminator_layers": 7,
                        "label_smoothing": 0.1},
    "training": {"epochs": 1, "batch_size": 10_000,
                 "learning_rate": {"generator": 1e-4, "discriminator": 1e-4, "referee": 1e-3}},
}


def measure(rows: int, epochs: int, batch_size: int, eager: bool) -> dict:
    """Seconds per epoch and rows/s after one warm-up epoch (graph tracing excluded)."""
    model = dict(LHCB_MODEL, training={**LHCB_MODEL["training"], "batch_size": batch_size})
    config = training.GanTrainingConfig.from_model(model, seed=1)
    rng = np.random.default_rng(0)
    conditions = rng.normal(size=(rows, 15)).astype(np.float32)
    targets = rng.normal(size=(rows, 15)).astype(np.float32)
    run_epoch = training.EpochRunner(training.build_networks(config), config, conditions, targets, compiled=not eager)
    run_epoch(0)
    began = time.perf_counter()
    for epoch in range(1, epochs + 1):
        run_epoch(epoch)
    seconds = (time.perf_counter() - began) / epochs
    return {"seconds_per_epoch": seconds, "rows_per_second": rows / seconds}


CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
WORKFLOW_MODEL = "tracks_cov"


def workflow_model(epochs: int) -> dict:
    """``models.tracks_cov`` of the workflow's config, trained for ``epochs`` epochs, no checkpoints."""
    model = yaml.safe_load(CONFIG.read_text())["models"][WORKFLOW_MODEL]
    return dict(model, training=dict(model["training"], epochs=epochs, checkpoint_every=epochs + 1))


def synthetic_split(rows: int, config, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    a = config.architecture
    return training.SplitArrays(rng.normal(size=(rows, a.n_conditions)).astype(np.float32),
                                rng.normal(size=(rows, a.n_targets)).astype(np.float32), pd.DataFrame())


def measure_ours_vs_keras_fit(rows: int, epochs: int) -> dict:
    """Rows/s of our trainer's epochs and of a plain Keras ``fit``'s, workflow settings, epoch 1 excluded.

    Ours is :class:`EpochRunner` built as ``train_gan`` builds it (the part ``train_gan`` times in
    its history); it runs one epoch between two epochs of ``fit`` (from a callback, outside fit's
    timed epoch), so each pair of epochs shares the load that neighbours put on the cores.
    """
    config = training.GanTrainingConfig.from_model(workflow_model(epochs + 1), seed=1)
    train = synthetic_split(rows, config, 0)
    updates_per_epoch = -(-rows // config.batch_size)
    schedule = LearningRateSchedule.from_config(config.schedule, updates_per_epoch) if config.schedule else None
    keras.utils.set_random_seed(config.seed)
    ours = OursBetweenEpochs(training.EpochRunner(training.build_networks(config), config, train.conditions,
                                                  train.targets, schedule))
    gan = PlainKerasGan(training.build_networks(config), config, updates_per_epoch)
    gan.compile()
    fit = EpochTimer()
    gan.fit(train.conditions, train.targets, batch_size=config.batch_size, epochs=epochs + 1,
            shuffle=True, verbose=0, callbacks=[fit, ours])
    ours_rates, fit_rates = (np.array([rows / t for t in timer.seconds[1:]]) for timer in (ours, fit))
    return {
        "model": WORKFLOW_MODEL, "rows": rows, "batch_size": config.batch_size, "timed_epochs": epochs,
        "ours_epoch_runner": {"rows_per_second": float(np.median(ours_rates)), "per_epoch": ours_rates.tolist()},
        "baseline_keras_fit": {"rows_per_second": float(np.median(fit_rates)), "per_epoch": fit_rates.tolist()},
        "ours_over_keras_fit": float(np.median(ours_rates) / np.median(fit_rates)),
        "ours_over_keras_fit_paired_median": float(np.median(ours_rates / fit_rates)),
        "ours_over_keras_fit_best_epochs": float(ours_rates.max() / fit_rates.max()),
    }


class TabulatedRate(keras.optimizers.schedules.LearningRateSchedule):
    """Keras's own per-update schedule: the workflow schedule's rate looked up by the optimizer's iteration."""

    def __init__(self, schedule: LearningRateSchedule, updates: int):
        self.rates = tf.constant([schedule.lr_at(k) for k in range(updates)], tf.float32)

    def __call__(self, step):
        return tf.gather(self.rates, tf.minimum(tf.cast(step, tf.int32), tf.shape(self.rates)[0] - 1))

    def get_config(self):
        return {}


class PlainKerasGan(keras.Model):
    """The GAN as Keras's GAN examples write it: ``fit`` drives, ``train_step`` makes the three updates
    of our trainer (discriminator, generator against the updated discriminator, referee), same losses."""

    def __init__(self, networks, config, updates_per_epoch: int):
        super().__init__()
        self.generator, self.discriminator, self.referee = networks.generator, networks.discriminator, networks.referee
        self.d_optimizer = networks.discriminator_optimizer
        self.g_optimizer = networks.generator_optimizer
        self.r_optimizer = networks.referee_optimizer
        if config.schedule is not None:
            schedule = LearningRateSchedule.from_config(config.schedule, updates_per_epoch)
            rates = TabulatedRate(schedule, min(schedule.total_steps, config.epochs * updates_per_epoch))
            self.g_optimizer.learning_rate = self.d_optimizer.learning_rate = rates
        self.noise_dim = config.architecture.noise_dim
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
        self.seeds = keras.random.SeedGenerator(config.seed)

    def train_step(self, data):
        conditions, reference = data
        noise = keras.random.normal((tf.shape(conditions)[0], self.noise_dim), seed=self.seeds)
        generated = tf.stop_gradient(self.generator([conditions, noise], training=True))
        x, y, labels = discriminator_batch(conditions, reference, generated)
        with tf.GradientTape() as tape:
            d_loss = self.bce(labels, self.discriminator([x, y], training=True))
        self._apply(self.d_optimizer, tape, d_loss, self.discriminator)
        with tf.GradientTape() as tape:
            fooled = self.discriminator([conditions, self.generator([conditions, noise], training=True)], training=True)
            g_loss = self.bce(tf.ones_like(fooled), fooled)
        self._apply(self.g_optimizer, tape, g_loss, self.generator)
        with tf.GradientTape() as tape:
            r_loss = self.bce(labels, self.referee([x, y], training=True))
        self._apply(self.r_optimizer, tape, r_loss, self.referee)
        return {"discriminator_loss": d_loss, "generator_loss": g_loss, "referee_train_loss": r_loss}

    @staticmethod
    def _apply(optimizer, tape, loss, network):
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch of ``fit``."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.began)


class OursBetweenEpochs(keras.callbacks.Callback):
    """Runs (and times) one epoch of our trainer after each epoch of ``fit``."""

    def __init__(self, run_epoch):
        super().__init__()
        self.run_epoch, self.seconds = run_epoch, []

    def on_epoch_end(self, epoch, logs=None):
        began = time.perf_counter()
        self.run_epoch(epoch)
        self.seconds.append(time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-eager", action="store_true", help="do not time the eager baseline")
    parser.add_argument("--fit-rows", type=int, default=50_000, help="rows of the ours-vs-Keras-fit pair")
    parser.add_argument("--fit-epochs", type=int, default=8, help="timed epochs of that pair (plus one warm-up)")
    parser.add_argument("--only-fit", action="store_true", help="time only the ours-vs-Keras-fit pair")
    parser.add_argument("--output", type=Path)
    arguments = parser.parse_args()
    training.configure_tensorflow(arguments.threads)
    if arguments.only_fit:
        print(json.dumps(measure_ours_vs_keras_fit(arguments.fit_rows, arguments.fit_epochs), indent=2))
        return
    lhcb = LHCB_ROWS / LHCB_SECONDS_PER_EPOCH
    ours = measure(arguments.rows, arguments.epochs, arguments.batch_size, eager=False)
    result = {
        "device": describe_device("tensorflow"),
        "rows": arguments.rows, "batch_size": arguments.batch_size, "threads": arguments.threads,
        "ours_tf_function": ours,
        "lhcb_published": {"rows_per_second": lhcb, "seconds_per_epoch": LHCB_SECONDS_PER_EPOCH,
                           "rows": LHCB_ROWS},
        "ours_over_lhcb": ours["rows_per_second"] / lhcb,
        "lhcb_epoch_seconds_at_our_rate": LHCB_ROWS / ours["rows_per_second"],
    }
    if not arguments.skip_eager:
        eager = measure(arguments.rows, max(1, arguments.epochs // 2), arguments.batch_size, eager=True)
        result["baseline_eager"] = eager
        result["tf_function_speedup_over_eager"] = ours["rows_per_second"] / eager["rows_per_second"]
    result["ours_vs_keras_fit"] = measure_ours_vs_keras_fit(arguments.fit_rows, arguments.fit_epochs)
    text = json.dumps(result, indent=2)
    print(text)
    if arguments.output:
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
