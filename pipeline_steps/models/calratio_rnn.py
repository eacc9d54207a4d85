"""The CalRatio 2019 jet classifier and its data/MC adversary (Keras 3).

The classifier tells three kinds of jets apart - signal (a long-lived particle decaying in the
calorimeter), QCD multijet and beam-induced background (BIB) - from the jet's own kinematics and
three variable-length sequences of objects (calorimeter clusters, tracks, muon segments). Each
sequence runs through its own stack of 1x1 convolutions (a per-object dense layer) and an LSTM; the
three LSTM states join the jet features; dense layers end in a softmax over the classes.

Sequences are padded with ``pad_value``; an object whose features all equal ``pad_value`` is
padding. The LSTM gets that mask explicitly (Conv1D would drop an implicit Keras mask), so a jet's
output does not depend on how much padding follows its objects. The sequence length is left
``None`` in the model, so one set of weights runs at any padding length.

The adversary reads the classifier's three outputs on control-region jets and guesses data (1) vs
multijet simulation (0); training the classifier against it keeps its outputs alike on data and MC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import numpy as np

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.common.traced_once import traced_once

SEQUENCE_NAMES = ("clusters", "tracks", "muon_segments")
CLASS_NAMES = ("signal", "qcd", "bib")  # index = label: 0 signal, 1 QCD, 2 BIB
LLP_INPUT = "llp_parameters"
LLP_SCALE_GEV = 1000.0  # (mS, mH) enter the network in TeV so they are O(1)


@dataclass(frozen=True)
class CalRatioHyperparameters:
    """Network sizes and the adversary's weight (``models.<name>.hyperparameters``); the learning
    rates are training settings (``training.learning_rate: {main, adversary}``)."""

    conv_filters: tuple[int, ...] = (32, 16)
    lstm_units: int = 32
    dense_units: tuple[int, ...] = (64, 32)
    adversary_units: tuple[int, ...] = (32, 16)
    adversary_lambda: float = 10.0
    use_llp_parameters: bool = False

    @classmethod
    def from_config(cls, hyperparameters: Mapping) -> "CalRatioHyperparameters":
        """Build from the config slice; an unknown key is a ConfigError naming it."""
        for moved, network in (("learning_rate", "main"), ("adversary_learning_rate", "adversary")):
            if moved in hyperparameters:
                raise ConfigError(f"hyperparameters.{moved}: learning rates moved to training.learning_rate; write it "
                                  f"as training.learning_rate.{network}: {hyperparameters[moved]!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise ConfigError(
                f"hyperparameters: unknown key(s) {unknown} for kind calratio_rnn; expected some of {sorted(known)}"
            )
        values = dict(hyperparameters)
        for key in ("conv_filters", "dense_units", "adversary_units"):
            if key in values:
                values[key] = tuple(int(v) for v in values[key])
        return cls(**values)


def configure_tensorflow(threads: int | None = None, deterministic: bool = True) -> str:
    """Set thread counts and determinism before any op runs; return the device used ("GPU"/"CPU").

    Op determinism makes a CPU run repeatable bit for bit from the seed; on a GPU it is also asked
    for (cuDNN LSTMs honour it), at some speed cost.
    """
    if threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised in this process: keep the first setting
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def build_classifier(
    n_jet_features: int,
    sequence_features: Mapping[str, int],
    hyper: CalRatioHyperparameters,
    pad_value: float = 0.0,
):
    """Main network: dict of inputs -> softmax over (signal, QCD, BIB).

    ``sequence_features`` maps each of SEQUENCE_NAMES to its number of per-object features.
    """
    import keras

    missing = [name for name in SEQUENCE_NAMES if name not in sequence_features]
    if missing:
        raise ConfigError(f"calratio_rnn: sequence feature counts missing for {missing}")
    inputs = {"jets": keras.Input((n_jet_features,), name="jets")}
    joined = [inputs["jets"]]
    for name in SEQUENCE_NAMES:
        inputs[name] = keras.Input((None, int(sequence_features[name])), name=name)
        joined.append(_sequence_branch(inputs[name], name, hyper, pad_value))
    if hyper.use_llp_parameters:
        inputs[LLP_INPUT] = keras.Input((2,), name=LLP_INPUT)
        joined.append(inputs[LLP_INPUT])
    hidden = keras.layers.Concatenate(name="join")(joined)
    for index, units in enumerate(hyper.dense_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(hidden)
    output = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="class_probabilities")(hidden)
    return keras.Model(inputs, output, name="calratio_classifier")


def build_adversary(hyper: CalRatioHyperparameters):
    """Adversary: the classifier's 3 outputs -> probability that a control-region jet is data."""
    import keras

    probabilities = keras.Input((len(CLASS_NAMES),), name="class_probabilities")
    hidden = probabilities
    for index, units in enumerate(hyper.adversary_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"adversary_dense_{index}")(hidden)
    is_data = keras.layers.Dense(1, activation="sigmoid", name="is_data")(hidden)
    return keras.Model(probabilities, is_data, name="calratio_adversary")


def model_inputs(sample: Mapping[str, np.ndarray], use_llp_parameters: bool, rows=slice(None)) -> dict:
    """The classifier's input dict from a loaded split (``load_split`` keys), optionally a row subset."""
    inputs = {"jets": np.asarray(sample["jets"][rows], dtype=np.float32)}
    for name in SEQUENCE_NAMES:
        inputs[name] = np.asarray(sample[name][rows], dtype=np.float32)
    if use_llp_parameters:
        inputs[LLP_INPUT] = llp_parameters(sample, rows)
    return inputs


def llp_parameters(sample: Mapping[str, np.ndarray], rows=slice(None)) -> np.ndarray:
    """(mS, mH) in TeV as a [n, 2] float32 array; missing values (background jets) become 0."""
    masses = np.stack([np.asarray(sample["llp_mS"][rows]), np.asarray(sample["llp_mH"][rows])], axis=1)
    return np.nan_to_num(masses / LLP_SCALE_GEV, nan=0.0).astype(np.float32)


def predict(classifier, sample: Mapping[str, np.ndarray], use_llp_parameters: bool, batch_size: int,
            classify=None) -> np.ndarray:
    """Class probabilities [n, 3] for a whole split, in batches (fits any GPU).

    ``classify`` computes a batch's probabilities: :func:`inference` of ``classifier`` unless the caller
    keeps one to predict again (a trace costs about what one eager call of the toy's splits does).
    """
    classify = classify or inference(classifier)
    n_jets = len(sample["jets"])
    outputs = [
        np.asarray(classify(model_inputs(sample, use_llp_parameters, slice(start, start + batch_size))))
        for start in range(0, n_jets, batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, len(CLASS_NAMES)), np.float32)


def inference(classifier):
    """``classifier(inputs, training=False)`` as one graph for batches of any size.

    Why: called eagerly, Keras runs the three LSTMs op by op, 1.7 ms per jet on the default toy's 374
    validation jets against 0.11 ms traced (one TensorFlow thread), the same probabilities to the bit; the trace
    itself takes about 0.5 s. The batch's padding length is fixed by the first call.
    """
    return traced_once(lambda inputs: classifier(inputs, training=False))


def _sequence_branch(sequence, name: str, hyper: CalRatioHyperparameters, pad_value: float):
    """1x1 Conv1D stack + LSTM over one object type, padding masked out of the LSTM."""
    import keras

    mask = keras.ops.any(keras.ops.not_equal(sequence, pad_value), axis=-1)
    hidden = sequence
    for index, filters in enumerate(_as_sequence(hyper.conv_filters)):
        hidden = keras.layers.Conv1D(filters, 1, activation="relu", name=f"{name}_conv_{index}")(hidden)
    return keras.layers.LSTM(hyper.lstm_units, name=f"{name}_lstm")(hidden, mask=mask)


def _as_sequence(values) -> Sequence[int]:
    return tuple(values) if isinstance(values, (list, tuple)) else (values,)
