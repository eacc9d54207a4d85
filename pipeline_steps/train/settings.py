"""The ``training`` slice of a model, read the same way for every kind.

Every trainer reads ``epochs``, ``batch_size``, ``learning_rate`` and optionally ``checkpoint_every``,
``schedule`` (per-update learning rate, see ``train/schedule.py``), ``early_stopping`` and ``threads``,
plus the keys of its own kind. One policy for the rest: a key the kind does not read is a ConfigError naming
the key and the kind, so a typo never trains a model with a silently ignored setting.

Learning rates live under ``training.learning_rate`` for every kind, in the optimiser's units
(1/update): a number for a one-network kind (``flow``), a mapping per network for the others
(``covariance_gan``: ``{generator, discriminator, referee}``; ``calratio_rnn``: ``{main, adversary}``),
where a network left out keeps its default.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule

__all__ = ["COMMON_KEYS", "DEFAULT_TRAINING_THREADS", "configured_threads", "training_threads", "read_training",
           "learning_rate", "network_learning_rates", "reject_moved_learning_rates"]

#: Keys every kind reads (``checkpoint_every``: not CalRatio, which checkpoints every epoch for its epoch selection).
COMMON_KEYS = ("epochs", "batch_size", "learning_rate", "schedule", "early_stopping", "threads")


#: ``training.threads`` when a model does not set it: the threads of the framework's numerical kernels.
#: Part of the result, not of the machine: torch's and Eigen's kernels split sums by thread count, so the
#: same job on 1 and on 2 threads gave other last bits in the first epoch and other weights after two
#: (measured on the tiny config's nano_muons flow and the covariance GAN); fixed in the config, a run on
#: any core count gives the same bytes, more slowly where fewer cores are granted. 1 by default: these
#: networks are small (hidden 64-128), so a second thread adds little, and two one-thread trainings side
#: by side on 2 cores do more than one two-thread training after the other. Measured in `make run` (AMD
#: EPYC, 2 cores; 2 threads alone -> 1 thread beside another training, fresh clone of 4ec2f23): jets flow
#: 155 -> 200 s, GAN 125 -> 206 s, CalRatio 41 -> 48 s, i.e. 1.2x to 1.7x the trainings per second. The rule's
#: ``threads`` is this value, so Snakemake and SLURM grant what the job uses.
DEFAULT_TRAINING_THREADS = 1


def configured_threads(training: Mapping[str, Any]) -> int:
    """``training.threads`` (default :data:`DEFAULT_TRAINING_THREADS`): a positive integer, else a ConfigError."""
    threads = training.get("threads", DEFAULT_TRAINING_THREADS)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"training.threads: expected a positive integer (the framework's threads), got {threads!r}")
    return threads


def training_threads(training: Mapping[str, Any], granted: int) -> int:
    """:func:`configured_threads`, saying in the log when the job was granted fewer cores."""
    threads = configured_threads(training)
    if int(granted) < threads:
        logging.getLogger(__name__).info("training.threads = %d on %d granted core(s): the same numbers as on "
                                         "a larger machine, more slowly", threads, granted)
    return threads


def read_training(training: Mapping[str, Any], kind: str, own_keys: Iterable[str], *,
                  early_stopping_metric: str, early_stopping_mode: str = "min") -> dict[str, Any]:
    """A checked copy of ``training``: unknown keys refused; ``schedule``, ``early_stopping`` and ``threads`` validated.

    ``schedule`` becomes a tuple of dicts and ``early_stopping`` a dict (hashable, comparable settings);
    both fail here, at start-up, with the key path in the message rather than after an epoch.
    ``threads`` is left out of the copy: it is not a setting of the fit, each entry point sets the
    framework's threads from it (:func:`training_threads`) before building anything.
    """
    known = set(COMMON_KEYS) | set(own_keys)
    unknown = sorted(set(training) - known)
    if unknown:
        raise ConfigError(f"training.{unknown[0]}: not a training key of kind {kind} (unknown: {unknown}); "
                          f"expected some of {sorted(known)}")
    values = dict(training)
    configured_threads(values)
    values.pop("threads", None)
    if values.get("schedule") is not None:
        values["schedule"] = tuple(dict(step) for step in values["schedule"])
        LearningRateSchedule.from_config(values["schedule"], 1)
    if values.get("early_stopping") is not None:
        values["early_stopping"] = dict(values["early_stopping"])
        EarlyStopping.from_config(values["early_stopping"], early_stopping_metric, early_stopping_mode)
    return values


def learning_rate(value: Any, kind: str) -> float:
    """``training.learning_rate`` of a one-network kind: a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"training.learning_rate: kind {kind} trains one network and expects a positive number, "
                          f"got {value!r}")
    return float(value)


def network_learning_rates(value: Any, kind: str, defaults: Mapping[str, float]) -> dict[str, float]:
    """``training.learning_rate`` of a multi-network kind: ``{network: rate}`` over ``defaults``' networks."""
    if value is None:
        return {name: float(rate) for name, rate in defaults.items()}
    if not isinstance(value, Mapping):
        raise ConfigError(f"training.learning_rate: kind {kind} trains networks {list(defaults)} and expects a mapping "
                          f"{{network: rate}}, got {value!r}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ConfigError(f"training.learning_rate.{unknown[0]}: kind {kind} has no network {unknown[0]!r}; "
                          f"expected some of {list(defaults)}")
    rates = {name: value.get(name, default) for name, default in defaults.items()}
    for name, rate in rates.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ConfigError(f"training.learning_rate.{name}: expected a positive number, got {rate!r}")
    return {name: float(rate) for name, rate in rates.items()}


def reject_moved_learning_rates(hyperparameters: Mapping[str, Any], moved: Mapping[str, str]) -> None:
    """A ConfigError for a learning rate still under ``hyperparameters`` (``moved``: old key -> new key path)."""
    for old, new in moved.items():
        if old in hyperparameters:
            raise ConfigError(f"hyperparameters.{old}: learning rates moved to training.learning_rate; "
                              f"write it as {new}: {hyperparameters[old]!r}")
