"""Adversarial training of the CalRatio RNN: classifier vs a data/MC adversary, one epoch at a time.

Each epoch splits the main and control-region (CR) training jets into ``num_splits`` mini-batches
(the CalRatio trainer's ``--num_splits``) and, for each, runs

1. an adversary step on the CR mini-batch: the adversary learns to tell data from multijet MC
   from the classifier's outputs (only the adversary's weights move);
2. a main step: loss = weighted categorical cross-entropy on the main mini-batch (``mc_weight``:
   signal and QCD equalised) - lambda * the adversary's loss on the CR mini-batch (only the
   classifier's weights move), so the classifier is rewarded for fooling the adversary.

Metrics are averaged over the whole epoch (weighted by each mini-batch's weight sum), not taken from
the last mini-batch as the 2019 trainer did. After each epoch: validation losses and accuracies, the
Kolmogorov-Smirnov distance between data and MC of each output on CR validation jets
(``validate/ks.py``), and a checkpoint in ``results/checkpoints/<model>/`` (every epoch: the epoch
selection reads any of them); a rerun resumes after the last completed epoch (``train/loop.py``).
``batch_size`` is the inference batch size of the per-epoch evaluation. Learning rates:
``training.learning_rate: {main, adversary}`` (``train/settings.py``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.common.reproducible import normalise_keras_archive
from pipeline_steps.common.traced_once import traced_once
from pipeline_steps.model_kinds import MODEL_KINDS
from pipeline_steps.models import calratio_rnn as net
from pipeline_steps.train.checkpoint import KerasEpochCheckpoints, fingerprint_of
from pipeline_steps.train.collapsed_epochs import SPREAD_COLUMN
from pipeline_steps.train.devices import log_device
from pipeline_steps.train.loop import run_epochs
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule
from pipeline_steps.train.settings import network_learning_rates, read_training, training_threads
from pipeline_steps.validate.ks import ks_per_output

LOGGER = logging.getLogger("pipeline_steps.train.calratio_rnn")
OWN_KEYS = ("num_splits", "ks_threshold", "selection_metric")
DEFAULT_LEARNING_RATES = {"main": 2.0e-3, "adversary": 1.0e-3}


@dataclass(frozen=True)
class CalRatioTrainingConfig:
    """``models.<name>.training`` plus the global seed and the preprocessing pad value."""

    epochs: int
    num_splits: int = 10
    batch_size: int = 512
    ks_threshold: float = 0.3
    selection_metric: str = "val_loss"
    seed: int = 42
    pad_value: float = 0.0
    learning_rate: float = DEFAULT_LEARNING_RATES["main"]                 # training.learning_rate.main
    adversary_learning_rate: float = DEFAULT_LEARNING_RATES["adversary"]  # training.learning_rate.adversary
    schedule: tuple | None = None        # training.schedule: classifier learning rate per mini-batch
    early_stopping: dict | None = None   # training.early_stopping (default metric val_loss)

    @classmethod
    def from_model_config(cls, model: Mapping, seed: int) -> "CalRatioTrainingConfig":
        training = read_training(model["training"], "calratio_rnn", OWN_KEYS, early_stopping_metric="val_loss")
        rates = network_learning_rates(training.pop("learning_rate", None), "calratio_rnn", DEFAULT_LEARNING_RATES)
        pad_value = float(model.get("preprocessing", {}).get("pad_value", 0.0))
        return cls(**training, learning_rate=rates["main"], adversary_learning_rate=rates["adversary"],
                   seed=int(seed), pad_value=pad_value)


def epoch_weights_path(checkpoint_dir: str | Path, epoch: int) -> Path:
    """The classifier weights after ``epoch`` (1-based); read by the epoch selection."""
    return KerasEpochCheckpoints.epoch_weights_path(checkpoint_dir, epoch)


class AdversarialTrainer:
    """The classifier, the adversary, their optimisers and the two alternating gradient steps."""

    def __init__(self, classifier, adversary, hyper: net.CalRatioHyperparameters, learning_rate: float,
                 adversary_learning_rate: float):
        import keras

        self.classifier, self.adversary, self.hyper = classifier, adversary, hyper
        self.main_optimizer = keras.optimizers.Adam(learning_rate)
        self.adversary_optimizer = keras.optimizers.Adam(adversary_learning_rate)
        self.main_optimizer.build(classifier.trainable_variables)
        self.adversary_optimizer.build(adversary.trainable_variables)
        # one graph each for mini-batches of any size (array_split's two sizes had traced them five times)
        self.adversary_step = traced_once(self._adversary_step)
        self.main_step = traced_once(self._main_step)
        self.classify = net.inference(classifier)  # the per-epoch evaluation's, traced once for all epochs

    def _adversary_step(self, cr_inputs, is_data, cr_weights):
        """Adversary update on CR jets; returns (weighted BCE, weighted accuracy, sum of |weights|)."""
        import tensorflow as tf

        probabilities = self.classifier(cr_inputs, training=False)
        with tf.GradientTape() as tape:
            loss, accuracy = adversary_loss(self.adversary(probabilities, training=True), is_data, cr_weights)
        gradients = tape.gradient(loss, self.adversary.trainable_variables)
        self.adversary_optimizer.apply_gradients(zip(gradients, self.adversary.trainable_variables))
        return loss, accuracy, tf.reduce_sum(tf.abs(cr_weights))

    def _main_step(self, main_inputs, labels, main_weights, cr_inputs, is_data, cr_weights):
        """Classifier update: CCE(main) - lambda * adversary BCE(CR); returns the parts and weight sums."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            main_loss, main_accuracy = classifier_loss(self.classifier(main_inputs, training=True), labels, main_weights)
            cr_probabilities = self.classifier(cr_inputs, training=True)
            adv_loss, adv_accuracy = adversary_loss(self.adversary(cr_probabilities, training=False), is_data, cr_weights)
            total = main_loss - self.hyper.adversary_lambda * adv_loss
        gradients = tape.gradient(total, self.classifier.trainable_variables)
        self.main_optimizer.apply_gradients(zip(gradients, self.classifier.trainable_variables))
        return (total, main_loss, adv_loss, main_accuracy, adv_accuracy, tf.reduce_sum(tf.abs(main_weights)),
                tf.reduce_sum(tf.abs(cr_weights)))


def classifier_loss(probabilities, labels, weights):
    """Weighted mean categorical cross-entropy and weighted accuracy of the 3-class output."""
    import keras

    labels = keras.ops.cast(labels, "int32")
    per_jet = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    correct = keras.ops.cast(keras.ops.equal(keras.ops.argmax(probabilities, axis=-1), labels), "float32")
    return _weighted_mean(per_jet, weights), _weighted_mean(correct, weights)


def adversary_loss(data_probability, is_data, weights):
    """Weighted mean binary cross-entropy (data=1 vs MC=0) and weighted accuracy of the adversary."""
    import keras

    target = keras.ops.reshape(keras.ops.cast(is_data, "float32"), (-1, 1))
    per_jet = keras.losses.binary_crossentropy(target, data_probability)
    correct = keras.ops.cast(keras.ops.equal(keras.ops.cast(data_probability[:, 0] > 0.5, "float32"), target[:, 0]), "float32")
    return _weighted_mean(per_jet, weights), _weighted_mean(correct, weights)


def _weighted_mean(values, weights):
    """sum(w x) / sum(|w|): the weighted mean for positive weights. NLO weights are signed, and a
    mini-batch's may nearly cancel: divided by their sum, an all-negative batch had given a loss of 2e27
    and a zero-sum one 1e26, finite, so nothing stopped the training. Divided by sum(|w|) the loss is bounded
    by the per-jet losses whatever the signs."""
    import keras

    weights = keras.ops.cast(weights, "float32")
    return keras.ops.sum(values * weights) / keras.ops.maximum(keras.ops.sum(keras.ops.abs(weights)), 1e-12)


def build_trainer(samples: Mapping[str, Mapping], hyper: net.CalRatioHyperparameters, cfg: CalRatioTrainingConfig):
    """Seeded models sized from the training arrays, wrapped in an AdversarialTrainer."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    train = samples["train"]
    classifier = net.build_classifier(
        train["jets"].shape[1], {name: train[name].shape[2] for name in net.SEQUENCE_NAMES}, hyper, cfg.pad_value
    )
    return AdversarialTrainer(classifier, net.build_adversary(hyper), hyper, cfg.learning_rate, cfg.adversary_learning_rate)


def train_epoch(trainer: AdversarialTrainer, samples: Mapping[str, Mapping], epoch: int, cfg: CalRatioTrainingConfig,
                schedule: LearningRateSchedule | None = None) -> dict:
    """One epoch of alternating steps over ``num_splits`` mini-batches; epoch-averaged metrics.

    With a ``schedule`` the classifier's learning rate is set before each mini-batch to its value at
    update ``(epoch - 1) * num_splits + batch``: a function of the epoch, so a resume continues it.
    The adversary keeps its constant ``training.learning_rate.adversary``.
    """
    main, cr = samples["train"], samples["cr_train"]
    use_llp = trainer.hyper.use_llp_parameters
    rng = np.random.default_rng([cfg.seed, epoch])
    main_batches = np.array_split(rng.permutation(len(main["jets"])), cfg.num_splits)
    cr_batches = np.array_split(rng.permutation(len(cr["jets"])), cfg.num_splits)
    sums = _MetricSums()
    for batch, (main_rows, cr_rows) in enumerate(tqdm(list(zip(main_batches, cr_batches)), desc=f"epoch {epoch}",
                                                      leave=False)):
        if schedule is not None:
            trainer.main_optimizer.learning_rate = schedule.lr_at((epoch - 1) * cfg.num_splits + batch)
        cr_inputs = net.model_inputs(cr, use_llp, cr_rows)
        disc_loss, disc_acc, disc_w = trainer.adversary_step(cr_inputs, cr["is_data"][cr_rows], cr["weight"][cr_rows])
        sums.add(disc_w, disc_loss=disc_loss, disc_acc=disc_acc)
        total, main_loss, adv_loss, main_acc, adv_acc, main_w, cr_w = trainer.main_step(
            net.model_inputs(main, use_llp, main_rows), main["label"][main_rows], main["mc_weight"][main_rows],
            cr_inputs, cr["is_data"][cr_rows], cr["weight"][cr_rows],
        )
        sums.add(main_w, main_loss=main_loss, main_acc=main_acc)
        sums.add(cr_w, adv_loss=adv_loss, adv_acc=adv_acc)
    metrics = sums.means()
    metrics["loss"] = metrics["main_loss"] - trainer.hyper.adversary_lambda * metrics["adv_loss"]
    return metrics


def evaluate(trainer: AdversarialTrainer, samples: Mapping[str, Mapping], cfg: CalRatioTrainingConfig) -> dict:
    """Validation losses/accuracies on all validation jets, the CR data/MC KS of each output, and the spread
    (max - min) of the signal probability: 0 when the classifier has collapsed to one answer."""
    use_llp = trainer.hyper.use_llp_parameters
    main, cr = samples["validation"], samples["cr_validation"]
    main_probabilities = net.predict(trainer.classifier, main, use_llp, cfg.batch_size, trainer.classify)
    cr_probabilities = net.predict(trainer.classifier, cr, use_llp, cfg.batch_size, trainer.classify)
    data_probability = np.asarray(trainer.adversary(cr_probabilities, training=False))
    main_loss, main_acc = classifier_loss(main_probabilities, main["label"], main["mc_weight"])
    adv_loss, adv_acc = adversary_loss(data_probability, cr["is_data"], cr["weight"])
    metrics = {
        "val_main_loss": float(main_loss), "val_main_acc": float(main_acc),
        "val_adv_loss": float(adv_loss), "val_adv_acc": float(adv_acc),
    }
    metrics["val_loss"] = metrics["val_main_loss"] - trainer.hyper.adversary_lambda * metrics["val_adv_loss"]
    metrics.update(ks_per_output(cr_probabilities, cr["is_data"], cr["mc_weight"]))
    metrics[SPREAD_COLUMN] = float(np.ptp(main_probabilities[:, 0])) if len(main_probabilities) else float("nan")
    return metrics


def train(
    samples: Mapping[str, Mapping],
    hyper: net.CalRatioHyperparameters,
    cfg: CalRatioTrainingConfig,
    checkpoint_dir: str | Path,
):
    """Train to ``cfg.epochs``, resuming after the last checkpointed epoch; returns (classifier, history)."""
    _check_samples(samples)
    _check_num_splits(samples, cfg.num_splits)
    trainer = build_trainer(samples, hyper, cfg)
    checkpoints = KerasEpochCheckpoints(checkpoint_dir, _fingerprint(hyper, cfg, samples),
                                        {"classifier": trainer.classifier, "adversary": trainer.adversary},
                                        {"main": trainer.main_optimizer, "adversary": trainer.adversary_optimizer},
                                        max_epoch=cfg.epochs)
    schedule = None if cfg.schedule is None else LearningRateSchedule.from_config(cfg.schedule, cfg.num_splits)

    def run_epoch(epoch: int, history: list) -> dict:
        row = {"epoch": epoch, **train_epoch(trainer, samples, epoch, cfg, schedule), **evaluate(trainer, samples, cfg)}
        if schedule is not None:
            row["learning_rate"] = schedule.lr_at((epoch - 1) * cfg.num_splits)
        LOGGER.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        return row

    history = run_epochs(checkpoints.resume(), epochs=cfg.epochs, checkpoint_every=1,
                         stopper=EarlyStopping.from_config(cfg.early_stopping, "val_loss"), run_epoch=run_epoch,
                         save=checkpoints.save, label="calratio epochs", finite=("loss", "val_loss"))
    return trainer.classifier, pd.DataFrame(history[: cfg.epochs])


def run(preprocess_dir, history, final_model, model: Mapping, seed: int, checkpoint_dir, threads: int = 1, log=None) -> None:
    """Snakemake entry: load the splits, train (resuming from ``checkpoint_dir``), write history.csv and final.keras."""
    with step_logging(log):
        hyper = net.CalRatioHyperparameters.from_config(model.get("hyperparameters", {}))
        cfg = CalRatioTrainingConfig.from_model_config(model, seed)
        net.configure_tensorflow(training_threads(model["training"], threads))
        log_device("tensorflow")
        samples = load_samples(preprocess_dir)
        classifier, history_frame = train(samples, hyper, cfg, checkpoint_dir)
        with atomic_path(final_model, suffix=".keras") as tmp:
            classifier.save(tmp)
            normalise_keras_archive(tmp)
        write_text_atomic(history, history_frame.to_csv(index=False))


def load_samples(preprocess_dir) -> dict:
    """The four splits training needs, via the preprocess stage's loader."""
    from pipeline_steps.preprocess.calratio_inputs import load_split

    return {
        "train": load_split(preprocess_dir, "train", region="main"),
        "validation": load_split(preprocess_dir, "validation", region="main"),
        "cr_train": load_split(preprocess_dir, "train", region="cr"),
        "cr_validation": load_split(preprocess_dir, "validation", region="cr"),
    }


class _MetricSums:
    """Running sums of per-mini-batch means weighted by each batch's sum of |weights| (the normaliser of
    ``_weighted_mean``) -> whole-epoch means."""

    def __init__(self):
        self.weighted, self.weights = {}, {}

    def add(self, weight_sum, **means):
        weight_sum = float(weight_sum)
        for name, value in means.items():
            self.weighted[name] = self.weighted.get(name, 0.0) + float(value) * weight_sum
            self.weights[name] = self.weights.get(name, 0.0) + weight_sum

    def means(self) -> dict:
        return {name: self.weighted[name] / max(self.weights[name], 1e-12) for name in self.weighted}


def _fingerprint(hyper, cfg: CalRatioTrainingConfig, samples: Mapping[str, Mapping]) -> str:
    """Hash of everything a checkpoint depends on except the number of epochs (so epochs can grow).

    Every array of every sample is hashed: only the jet features had been, so tracks scaled by 3 in an
    ingest part reran the training, which resumed and wrote the old model byte for byte. ``early_stopping``
    is in it for the reason the GAN's fingerprint gives (``covariance_gan.GanTrainingConfig.fingerprint``).
    """
    settings = {k: v for k, v in asdict(cfg).items()  # the selection's keys do not change what is trained
                if k not in ("epochs", *MODEL_KINDS["calratio_rnn"].selection_keys)
                and not (k in ("schedule", "early_stopping") and v is None)}
    shapes = {split: {k: list(np.shape(v)) for k, v in sorted(arrays.items())} for split, arrays in sorted(samples.items())}
    checksum = hashlib.sha256()
    for split in sorted(samples):
        for name in sorted(samples[split]):
            array = np.ascontiguousarray(samples[split][name])
            checksum.update(f"{split}/{name}/{array.dtype.str}".encode())
            checksum.update(array.tobytes())
    return fingerprint_of({"hyper": asdict(hyper), "training": settings, "shapes": shapes, "data": checksum.hexdigest()})


def _check_num_splits(samples: Mapping[str, Mapping], num_splits: int) -> None:
    """Every mini-batch must hold jets: ``num_splits`` above a training split's jets had left some empty and
    stopped TensorFlow with 'input depth must be evenly divisible by filter depth: 12 vs 32'."""
    for split in ("train", "cr_train"):
        jets = len(samples[split]["jets"])
        if num_splits > jets:
            raise ConfigError(f"training.num_splits: {num_splits} mini-batches per epoch, more than the {jets} jets "
                              f"of the calratio {split} split; lower it to {jets} or fewer")


def _check_samples(samples: Mapping[str, Mapping]) -> None:
    """Fail early, naming the split and key, when an array the trainer needs is missing or empty."""
    needs = {
        "train": ("jets", *net.SEQUENCE_NAMES, "label", "mc_weight"),
        "validation": ("jets", *net.SEQUENCE_NAMES, "label", "mc_weight"),
        "cr_train": ("jets", *net.SEQUENCE_NAMES, "is_data", "weight", "mc_weight"),
        "cr_validation": ("jets", *net.SEQUENCE_NAMES, "is_data", "weight", "mc_weight"),
    }
    for split, keys in needs.items():
        missing = [key for key in keys if key not in samples[split]]
        if missing:
            raise InputError(f"calratio {split} split: missing arrays {missing}; expected {list(keys)}")
        if len(samples[split]["jets"]) == 0:
            raise InputError(f"calratio {split} split: no jets; expected at least one")
        for label_key, expected in (("label", {0, 1, 2}), ("is_data", {0, 1})):
            if label_key in keys and not set(np.unique(samples[split][label_key]).tolist()) <= expected:
                raise InputError(
                    f"calratio {split} split: {label_key} values {sorted(np.unique(samples[split][label_key]).tolist())}, "
                    f"expected a subset of {sorted(expected)}"
                )
