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
Kolmogorov-Smirnov distance between data and MC of each output on CR validation jets, and a
checkpoint in ``results/checkpoints/<model>/``; a rerun resumes after the last completed epoch.
``batch_size`` is the inference batch size of the per-epoch evaluation.
"""

from __future__ import annotations

import hashlib
import json
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
from pipeline_steps.models import calratio_rnn as net
from pipeline_steps.train.devices import log_device
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule

LOGGER = logging.getLogger("pipeline_steps.train.calratio_rnn")
KS_COLUMNS = {"ks_sig": 0, "ks_qcd": 1, "ks_bib": 2}
STATE_FILE = "state.json"


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
    #: TensorFlow's intra/inter-op threads. Part of the config, not the cores Snakemake grants: Eigen
    #: splits a reduction by thread count, so 1 and 2 threads give different float sums and, after a
    #: few epochs, different weights. Fixed here, the same config gives the same model on any machine.
    threads: int = 2
    schedule: tuple | None = None        # training.schedule: classifier learning rate per mini-batch
    early_stopping: dict | None = None   # training.early_stopping (default metric val_loss)

    @classmethod
    def from_model_config(cls, model: Mapping, seed: int) -> "CalRatioTrainingConfig":
        training = dict(model["training"])
        unknown = sorted(set(training) - {"epochs", "num_splits", "batch_size", "ks_threshold", "selection_metric",
                                          "schedule", "early_stopping", "threads"})
        if unknown:
            raise ConfigError(f"training: key(s) {unknown} are not used by kind calratio_rnn")
        if training.get("schedule") is not None:
            training["schedule"] = tuple(dict(step) for step in training["schedule"])
            LearningRateSchedule.from_config(training["schedule"], 1)  # fail at start-up, naming the key
        if training.get("early_stopping") is not None:
            training["early_stopping"] = dict(training["early_stopping"])
            EarlyStopping.from_config(training["early_stopping"], "val_loss")
        pad_value = float(model.get("preprocessing", {}).get("pad_value", 0.0))
        return cls(**training, seed=int(seed), pad_value=pad_value)


def epoch_weights_path(checkpoint_dir: str | Path, epoch: int) -> Path:
    """The classifier weights after ``epoch`` (1-based); read by the epoch selection."""
    return Path(checkpoint_dir) / f"epoch_{epoch:03d}.weights.h5"


def weighted_ks(a, b, weights_a=None, weights_b=None) -> float:
    """Two-sample Kolmogorov-Smirnov distance max|F_a - F_b| of (weighted) empirical CDFs.

    With unit weights this is ``scipy.stats.ks_2samp(a, b).statistic``. NaN if a sample is empty.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    weights_a = np.ones_like(a) if weights_a is None else np.asarray(weights_a, np.float64)
    weights_b = np.ones_like(b) if weights_b is None else np.asarray(weights_b, np.float64)
    if len(a) == 0 or len(b) == 0 or weights_a.sum() == 0 or weights_b.sum() == 0:
        return float("nan")
    values = np.concatenate([a, b])
    order = np.argsort(values, kind="stable")
    step_a = np.concatenate([weights_a / weights_a.sum(), np.zeros_like(b)])[order]
    step_b = np.concatenate([np.zeros_like(a), weights_b / weights_b.sum()])[order]
    sorted_values = values[order]
    end_of_ties = np.r_[sorted_values[1:] != sorted_values[:-1], True]
    return float(np.max(np.abs(np.cumsum(step_a) - np.cumsum(step_b))[end_of_ties]))


def ks_per_output(probabilities: np.ndarray, is_data: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """KS distance data vs MC of each classifier output (``ks_sig``, ``ks_qcd``, ``ks_bib``)."""
    data = np.asarray(is_data) == 1
    return {
        column: weighted_ks(probabilities[data, index], probabilities[~data, index], weights[data], weights[~data])
        for column, index in KS_COLUMNS.items()
    }


class AdversarialTrainer:
    """The classifier, the adversary, their optimisers and the two alternating gradient steps."""

    def __init__(self, classifier, adversary, hyper: net.CalRatioHyperparameters):
        import keras
        import tensorflow as tf

        self.classifier, self.adversary, self.hyper = classifier, adversary, hyper
        self.main_optimizer = keras.optimizers.Adam(hyper.learning_rate)
        self.adversary_optimizer = keras.optimizers.Adam(hyper.adversary_learning_rate)
        self.main_optimizer.build(classifier.trainable_variables)
        self.adversary_optimizer.build(adversary.trainable_variables)
        self.adversary_step = tf.function(self._adversary_step, reduce_retracing=True)
        self.main_step = tf.function(self._main_step, reduce_retracing=True)

    def _adversary_step(self, cr_inputs, is_data, cr_weights):
        """Adversary update on CR jets; returns (weighted BCE, weighted accuracy, weight sum)."""
        import tensorflow as tf

        probabilities = self.classifier(cr_inputs, training=False)
        with tf.GradientTape() as tape:
            loss, accuracy = adversary_loss(self.adversary(probabilities, training=True), is_data, cr_weights)
        gradients = tape.gradient(loss, self.adversary.trainable_variables)
        self.adversary_optimizer.apply_gradients(zip(gradients, self.adversary.trainable_variables))
        return loss, accuracy, tf.reduce_sum(cr_weights)

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
        return total, main_loss, adv_loss, main_accuracy, adv_accuracy, tf.reduce_sum(main_weights), tf.reduce_sum(cr_weights)


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
    import keras

    weights = keras.ops.cast(weights, "float32")
    return keras.ops.sum(values * weights) / keras.ops.maximum(keras.ops.sum(weights), 1e-12)


def build_trainer(samples: Mapping[str, Mapping], hyper: net.CalRatioHyperparameters, cfg: CalRatioTrainingConfig):
    """Seeded models sized from the training arrays, wrapped in an AdversarialTrainer."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    train = samples["train"]
    classifier = net.build_classifier(
        train["jets"].shape[1], {name: train[name].shape[2] for name in net.SEQUENCE_NAMES}, hyper, cfg.pad_value
    )
    return AdversarialTrainer(classifier, net.build_adversary(hyper), hyper)


def train_epoch(trainer: AdversarialTrainer, samples: Mapping[str, Mapping], epoch: int, cfg: CalRatioTrainingConfig,
                schedule: LearningRateSchedule | None = None) -> dict:
    """One epoch of alternating steps over ``num_splits`` mini-batches; epoch-averaged metrics.

    With a ``schedule`` the classifier's learning rate is set before each mini-batch to its value at
    update ``(epoch - 1) * num_splits + batch``: a function of the epoch, so a resume continues it.
    The adversary keeps its constant ``adversary_learning_rate``.
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
    """Validation losses/accuracies on all validation jets and the CR data/MC KS of each output."""
    use_llp = trainer.hyper.use_llp_parameters
    main, cr = samples["validation"], samples["cr_validation"]
    main_probabilities = net.predict(trainer.classifier, main, use_llp, cfg.batch_size)
    cr_probabilities = net.predict(trainer.classifier, cr, use_llp, cfg.batch_size)
    data_probability = np.asarray(trainer.adversary(cr_probabilities, training=False))
    main_loss, main_acc = classifier_loss(main_probabilities, main["label"], main["mc_weight"])
    adv_loss, adv_acc = adversary_loss(data_probability, cr["is_data"], cr["weight"])
    metrics = {
        "val_main_loss": float(main_loss), "val_main_acc": float(main_acc),
        "val_adv_loss": float(adv_loss), "val_adv_acc": float(adv_acc),
    }
    metrics["val_loss"] = metrics["val_main_loss"] - trainer.hyper.adversary_lambda * metrics["val_adv_loss"]
    metrics.update(ks_per_output(cr_probabilities, cr["is_data"], cr["mc_weight"]))
    return metrics


def train(
    samples: Mapping[str, Mapping],
    hyper: net.CalRatioHyperparameters,
    cfg: CalRatioTrainingConfig,
    checkpoint_dir: str | Path,
):
    """Train to ``cfg.epochs``, resuming after the last checkpointed epoch; returns (classifier, history)."""
    _check_samples(samples)
    trainer = build_trainer(samples, hyper, cfg)
    fingerprint = _fingerprint(hyper, cfg, samples)
    history = _resume(trainer, checkpoint_dir, fingerprint, cfg.epochs)
    schedule = None if cfg.schedule is None else LearningRateSchedule.from_config(cfg.schedule, cfg.num_splits)
    stopper = EarlyStopping.from_config(cfg.early_stopping, "val_loss")
    first = cfg.epochs + 1 if history and history[-1].get("early_stop") else len(history) + 1
    for epoch in tqdm(range(first, cfg.epochs + 1), desc="calratio epochs", initial=len(history), total=cfg.epochs):
        row = {"epoch": epoch, **train_epoch(trainer, samples, epoch, cfg, schedule), **evaluate(trainer, samples, cfg)}
        if schedule is not None:
            row["learning_rate"] = schedule.lr_at((epoch - 1) * cfg.num_splits)
        history.append(row)
        stop = stopper is not None and stopper.should_stop(history)
        if stopper is not None:
            row["early_stop"] = int(stop)
        LOGGER.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        save_checkpoint(trainer, checkpoint_dir, epoch, history, fingerprint)
        if stop:
            LOGGER.info("early stop after epoch %d: %s did not improve by %g in %d epochs", epoch, stopper.metric,
                        stopper.min_delta, stopper.patience)
            break
    return trainer.classifier, pd.DataFrame(history[: cfg.epochs])


def save_checkpoint(trainer: AdversarialTrainer, checkpoint_dir: str | Path, epoch: int, history: list, fingerprint: str) -> None:
    """Weights of both networks and the optimiser state after ``epoch``; ``state.json`` last."""
    checkpoint_dir = Path(checkpoint_dir)
    with atomic_path(epoch_weights_path(checkpoint_dir, epoch), suffix=".weights.h5") as tmp:
        trainer.classifier.save_weights(tmp)
    with atomic_path(checkpoint_dir / f"epoch_{epoch:03d}.adversary.weights.h5", suffix=".weights.h5") as tmp:
        trainer.adversary.save_weights(tmp)
    with atomic_path(checkpoint_dir / f"epoch_{epoch:03d}.optimizers.npz") as tmp:
        np.savez(tmp, **_optimizer_arrays(trainer))
    state = {"last_epoch": epoch, "fingerprint": fingerprint, "history": history}
    write_text_atomic(checkpoint_dir / STATE_FILE, json.dumps(state, indent=1))


def run(preprocess_dir, history, final_model, model: Mapping, seed: int, checkpoint_dir, threads: int = 2, log=None) -> None:
    """Snakemake entry: load the splits, train (resuming from ``checkpoint_dir``), write history.csv and final.keras."""
    with step_logging(log):
        hyper = net.CalRatioHyperparameters.from_config(model.get("hyperparameters", {}))
        cfg = CalRatioTrainingConfig.from_model_config(model, seed)
        if threads < cfg.threads:
            logging.getLogger(__name__).info("training.threads = %d on %d granted core(s): the same numbers as on "
                                             "a larger machine, more slowly", cfg.threads, threads)
        net.configure_tensorflow(cfg.threads)
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


def synthetic_split(n_jets: int, region: str, seed: int, lengths=(6, 5, 8), n_features=(4, 3, 5), n_jet_features: int = 5,
                    pad_value: float = 0.0) -> dict:
    """A small split with ``load_split``'s keys and class-dependent content, for tests and benchmarks.

    Main: label 0/1/2 cycling; CR: is_data alternating. Each jet has a random number of objects
    followed by ``pad_value`` padding; features and object counts depend on the class, so a network
    can learn something in a few steps.
    """
    rng = np.random.default_rng(seed)
    classes = np.arange(n_jets) % 3 if region == "main" else np.ones(n_jets, np.int64)
    split = {"jets": (rng.normal(size=(n_jets, n_jet_features)) + classes[:, None] * 0.5).astype(np.float32)}
    for name, length, features in zip(net.SEQUENCE_NAMES, lengths, n_features):
        values = rng.normal(loc=classes[:, None, None] * 0.3, size=(n_jets, length, features)).astype(np.float32)
        n_objects = rng.integers(1, length + 1, size=n_jets)
        values[np.arange(length)[None, :] >= n_objects[:, None]] = pad_value
        split[name] = values
    split["weight"] = rng.uniform(0.5, 1.5, n_jets).astype(np.float32)
    split["mc_weight"] = split["weight"].copy()
    split["jet_pt"] = np.exp(rng.normal(4.5, 0.5, n_jets)).astype(np.float32)
    split["llp_mS"] = np.where(classes == 0, rng.choice([50.0, 150.0], n_jets), np.nan).astype(np.float32)
    split["llp_mH"] = np.where(classes == 0, rng.choice([600.0, 1000.0], n_jets), np.nan).astype(np.float32)
    if region == "main":
        split["label"] = classes.astype(np.int64)
    else:
        split["is_data"] = (np.arange(n_jets) % 2).astype(np.int64)
    return split


class _MetricSums:
    """Weight-sum-weighted running sums of per-mini-batch means -> whole-epoch means."""

    def __init__(self):
        self.weighted, self.weights = {}, {}

    def add(self, weight_sum, **means):
        weight_sum = float(weight_sum)
        for name, value in means.items():
            self.weighted[name] = self.weighted.get(name, 0.0) + float(value) * weight_sum
            self.weights[name] = self.weights.get(name, 0.0) + weight_sum

    def means(self) -> dict:
        return {name: self.weighted[name] / max(self.weights[name], 1e-12) for name in self.weighted}


def _resume(trainer: AdversarialTrainer, checkpoint_dir: str | Path, fingerprint: str, max_epoch: int) -> list:
    """Restore the last completed epoch (at most ``max_epoch``) if its state matches; return its history."""
    state_path = Path(checkpoint_dir) / STATE_FILE
    if not state_path.exists():
        return []
    state = json.loads(state_path.read_text())
    if state.get("fingerprint") != fingerprint:
        LOGGER.warning("%s was written for another configuration or data; training from scratch", state_path)
        return []
    epoch = min(int(state["last_epoch"]), max_epoch)
    trainer.classifier.load_weights(epoch_weights_path(checkpoint_dir, epoch))
    trainer.adversary.load_weights(Path(checkpoint_dir) / f"epoch_{epoch:03d}.adversary.weights.h5")
    with np.load(Path(checkpoint_dir) / f"epoch_{epoch:03d}.optimizers.npz") as arrays:
        _restore_optimizers(trainer, arrays)
    LOGGER.info("resuming after epoch %d from %s", epoch, checkpoint_dir)
    return list(state["history"])[:epoch]


def _optimizer_arrays(trainer: AdversarialTrainer) -> dict:
    arrays = {}
    for prefix, optimizer in (("main", trainer.main_optimizer), ("adversary", trainer.adversary_optimizer)):
        for index, variable in enumerate(optimizer.variables):
            arrays[f"{prefix}_{index:04d}"] = np.asarray(variable)
    return arrays


def _restore_optimizers(trainer: AdversarialTrainer, arrays) -> None:
    for prefix, optimizer in (("main", trainer.main_optimizer), ("adversary", trainer.adversary_optimizer)):
        for index, variable in enumerate(optimizer.variables):
            variable.assign(arrays[f"{prefix}_{index:04d}"])


def _fingerprint(hyper, cfg: CalRatioTrainingConfig, samples: Mapping[str, Mapping]) -> str:
    """Hash of everything a checkpoint depends on except the number of epochs (so epochs can grow)."""
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("epochs", "threads", "early_stopping") and not (k == "schedule" and v is None)}
    shapes = {split: {k: list(np.shape(v)) for k, v in sorted(arrays.items())} for split, arrays in sorted(samples.items())}
    checksum = hashlib.sha256()
    for split in sorted(samples):
        checksum.update(np.ascontiguousarray(samples[split]["jets"]).tobytes())
    text = json.dumps({"hyper": asdict(hyper), "training": settings, "shapes": shapes, "jets": checksum.hexdigest()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
