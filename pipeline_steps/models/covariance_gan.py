"""LHCb's covariance GAN (Lamarr): generator, discriminator, referee, and the sampler used downstream.

The generator learns the 15 unique elements of a reconstructed track's 5x5 covariance matrix
(in the preprocess stage's transformed space) given generator-level conditions and Gaussian noise.
Every size comes from the model's ``hyperparameters``; with 15 conditions, 15 targets, noise 128,
hidden 128, 8 residual steps and 7 discriminator layers the networks have LHCb's 152,463 and 103,169
parameters.

The discriminator and the referee share one architecture. They take (conditions, targets) row by row;
the training step builds their batch as LHCb does: conditions twice, completed in the first half by
reference targets (label 1) and in the second half by generated targets (label 0), see
:func:`discriminator_batch`.

``model.json`` beside ``generator.keras`` holds the architecture and the variable names, so
:func:`load_sampler` needs no workflow config.

``hyperparameters`` keys of a ``covariance_gan`` model (defaults in brackets):

- ``noise_dim`` [128], ``hidden`` [128] (width of every hidden layer), ``generator_residual_steps`` [8],
  ``discriminator_layers`` [7] (also the referee's), ``activation`` [relu];
- ``label_smoothing`` [0] (LHCb: 0.1), ``optimizer`` [rmsprop] (``rmsprop`` or ``adam``), read by
  ``pipeline_steps.train.covariance_gan``. The learning rates are training settings:
  ``training.learning_rate: {generator [1e-4], discriminator [1e-4], referee [1e-3]}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline_steps.common.errors import ConfigError, InputError

GENERATOR_FILE = "generator.keras"
MODEL_JSON = "model.json"
KIND = "covariance_gan"


@dataclass(frozen=True)
class GanArchitecture:
    """Sizes of the three networks; ``activation`` is the hidden layers' non-linearity."""

    n_conditions: int
    n_targets: int
    noise_dim: int = 128
    hidden: int = 128
    generator_residual_steps: int = 8
    discriminator_layers: int = 7
    activation: str = "relu"
    condition_names: tuple[str, ...] = field(default=())
    target_names: tuple[str, ...] = field(default=())

    @classmethod
    def from_config(cls, hyperparameters: Mapping[str, Any], conditions: list[str], targets: list[str]) -> "GanArchitecture":
        """Build from the model's ``hyperparameters`` slice; unknown size keys are a ConfigError."""
        sizes = {key: hyperparameters[key] for key in _SIZE_KEYS if key in hyperparameters}
        for key, value in sizes.items():
            if key != "activation" and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"hyperparameters.{key}: expected a positive integer, got {value!r}")
        return cls(
            n_conditions=len(conditions),
            n_targets=len(targets),
            condition_names=tuple(conditions),
            target_names=tuple(targets),
            **sizes,
        )

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "GanArchitecture":
        if document.get("kind") != KIND:
            raise InputError(f"{MODEL_JSON}: expected kind {KIND!r}, found {document.get('kind')!r}")
        fields = {key: document[key] for key in cls.__dataclass_fields__ if key in document}
        fields["condition_names"] = tuple(fields.get("condition_names", ()))
        fields["target_names"] = tuple(fields.get("target_names", ()))
        return cls(**fields)


_SIZE_KEYS = ("noise_dim", "hidden", "generator_residual_steps", "discriminator_layers", "activation")


def build_generator(architecture: GanArchitecture):
    """conditions [n, n_cond] + noise [n, noise_dim] -> Dense(hidden) -> residual steps -> targets.

    Each residual step is ``h = h + Dense(hidden)(h)`` (LHCb's skip connections); the output layer is
    linear because the targets live in an unbounded (Gaussianised) space.
    """
    import keras

    a = architecture
    conditions = keras.Input((a.n_conditions,), name="conditions")
    noise = keras.Input((a.noise_dim,), name="noise")
    hidden = keras.layers.Concatenate(name="conditions_noise")([conditions, noise])
    hidden = keras.layers.Dense(a.hidden, activation=a.activation, name="dense_in")(hidden)
    for step in range(a.generator_residual_steps):
        update = keras.layers.Dense(a.hidden, activation=a.activation, name=f"residual_{step}")(hidden)
        hidden = keras.layers.Add(name=f"skip_{step}")([hidden, update])
    targets = keras.layers.Dense(a.n_targets, name="targets")(hidden)
    return keras.Model([conditions, noise], targets, name="generator")


def build_discriminator(architecture: GanArchitecture, name: str = "discriminator"):
    """(conditions, targets) -> ``discriminator_layers`` Dense(hidden), no skips -> 1 logit.

    LHCb found a plain stack better than skip connections for this classifier.
    """
    import keras

    a = architecture
    conditions = keras.Input((a.n_conditions,), name="conditions")
    targets = keras.Input((a.n_targets,), name="targets")
    hidden = keras.layers.Concatenate(name="XY")([conditions, targets])
    for layer in range(a.discriminator_layers):
        hidden = keras.layers.Dense(a.hidden, activation=a.activation, name=f"dense_{layer}")(hidden)
    logit = keras.layers.Dense(1, name="logit")(hidden)
    return keras.Model([conditions, targets], logit, name=name)


def build_referee(architecture: GanArchitecture):
    """The discriminator's architecture with its own weights: a monitor, never trains the generator."""
    return build_discriminator(architecture, name="referee")


def discriminator_batch(conditions, reference_targets, generated_targets):
    """LHCb's classifier batch: ([X; X], [Y_ref; Y_gen], labels [1...; 0...]) as tensors."""
    import tensorflow as tf

    doubled_conditions = tf.concat([conditions, conditions], axis=0)
    targets = tf.concat([reference_targets, generated_targets], axis=0)
    labels = tf.concat(
        [tf.ones_like(reference_targets[:, :1]), tf.zeros_like(generated_targets[:, :1])], axis=0
    )
    return doubled_conditions, targets, labels


class Sampler:
    """Batched generation with a trained generator, on the GPU when TensorFlow sees one.

    The noise of batch ``k`` is ``stateless_normal(seed=[seed, k])``: the same (seed, batch_size)
    gives the same output on every run.
    """

    def __init__(self, generator, architecture: GanArchitecture, batch_size: int = 100_000):
        import tensorflow as tf

        self.generator = generator
        self.architecture = architecture
        self.batch_size = batch_size
        noise_dim = architecture.noise_dim

        @tf.function(input_signature=[
            tf.TensorSpec([None, architecture.n_conditions], tf.float32),
            tf.TensorSpec([2], tf.int64),
        ])
        def _generate(conditions, seed):
            noise = tf.random.stateless_normal([tf.shape(conditions)[0], noise_dim], seed=seed)
            return generator([conditions, noise], training=False)

        self._generate = _generate

    def sample(self, conditions: np.ndarray, seed: int) -> np.ndarray:
        """conditions float32 [n, n_cond] (transformed) -> targets float32 [n, n_targets] (transformed)."""
        conditions = np.asarray(conditions, dtype=np.float32)
        expected = self.architecture.n_conditions
        if conditions.ndim != 2 or conditions.shape[1] != expected:
            raise InputError(f"covariance GAN sampler: expected conditions [n, {expected}], got {conditions.shape}")
        batches = [
            self._generate(conditions[start:start + self.batch_size], np.array([seed, index], np.int64)).numpy()
            for index, start in enumerate(range(0, len(conditions), self.batch_size))
        ]
        if not batches:
            return np.zeros((0, self.architecture.n_targets), np.float32)
        return np.concatenate(batches).astype(np.float32, copy=False)


def load_sampler(train_dir: str | Path, batch_size: int = 100_000) -> Sampler:
    """Load ``generator.keras`` (Keras safe mode) and ``model.json`` from a training folder."""
    import keras

    train_dir = Path(train_dir)
    for name in (GENERATOR_FILE, MODEL_JSON):
        if not (train_dir / name).exists():
            raise InputError(f"{train_dir / name}: missing; expected the covariance GAN training outputs")
    architecture = GanArchitecture.from_json(json.loads((train_dir / MODEL_JSON).read_text()))
    generator = keras.models.load_model(train_dir / GENERATOR_FILE, compile=False, safe_mode=True)
    return Sampler(generator, architecture, batch_size=batch_size)
