"""Checkpoints in ``results/checkpoints/<model>/``: one protocol, one storage format per framework.

Every trainer's checkpoint answers the two questions of the epoch loop (``train/loop.py``):
``resume() -> history`` restores everything a run needs to continue bit for bit and returns the
history rows of the epochs it holds (empty when starting afresh), and ``save(history)`` stores the
state after the last of those rows. A checkpoint carries a *fingerprint* of everything the weights
depend on except, for the GAN and CalRatio, the number of epochs (a run can grow); the flow's includes
``epochs``, since its cosine learning rate follows the total, so more epochs train from scratch. One
written with other settings or data is discarded (logged), never resumed. The folder is a rule param, not an output, so ``--rerun-incomplete``
keeps it.

- :class:`TorchCheckpoint` (flow): one ``checkpoint.pt`` with the model, optimiser, scheduler,
  the batch-order generator, every RNG state and the history.
- :class:`TensorFlowCheckpoint` (covariance GAN): a ``tf.train.CheckpointManager`` of the networks,
  optimisers and counters, ``fingerprint.json`` and ``history.json`` (written first: a resume trims
  rows beyond the restored epoch).
- :class:`KerasEpochCheckpoints` (CalRatio): every epoch's weights of each network (the epoch
  selection reads them) and optimiser variables, then ``state.json``.

Frameworks are imported inside the classes: a TensorFlow job never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pipeline_steps.common.atomic import atomic_path, write_text_atomic

__all__ = ["fingerprint_of", "TorchCheckpoint", "TensorFlowCheckpoint", "KerasEpochCheckpoints"]

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


def fingerprint_of(document: Mapping[str, Any]) -> str:
    """sha256 of a JSON document (keys sorted): the identity of a checkpoint's settings and data."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


class TorchCheckpoint:
    """Everything needed to continue a torch run bit-for-bit, in one ``checkpoint.pt`` (weights_only-safe)."""

    FILE = "checkpoint.pt"

    def __init__(self, model, optimizer, scheduler, generator, folder: str | Path, fingerprint: str) -> None:
        self.model, self.optimizer, self.scheduler, self.generator = model, optimizer, scheduler, generator
        self.path = Path(folder) / self.FILE
        self.fingerprint = fingerprint

    def save(self, history: Rows) -> None:
        import torch

        from pipeline_steps.common.reproducible import save_torch

        state = {
            "fingerprint": self.fingerprint,
            "epoch": len(history),
            "history": history,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        with atomic_path(self.path) as tmp:
            save_torch(state, tmp)
        logger.info("checkpoint: epoch %d -> %s", len(history), self.path)

    def resume(self) -> Rows:
        import torch

        if not self.path.exists():
            return []
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            logger.warning("checkpoint %s is from another configuration or data; starting from scratch", self.path)
            return []
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        logger.info("resumed from %s after epoch %d", self.path, state["epoch"])
        return list(state["history"])


class TensorFlowCheckpoint:
    """A ``tf.train.CheckpointManager`` (two kept) over ``make_checkpoint()``'s objects.

    ``epoch()`` reads the epochs completed from the checkpointed objects; a checkpoint beyond
    ``max_epoch`` is discarded and ``restart()`` must reset those objects to a fresh initialisation.
    """

    FINGERPRINT, HISTORY = "fingerprint.json", "history.json"

    def __init__(self, directory: str | Path, fingerprint: Mapping[str, Any], make_checkpoint: Callable[[], Any],
                 epoch: Callable[[], int], max_epoch: int, restart: Callable[[], None]) -> None:
        self.directory, self.fingerprint = Path(directory), json.loads(json.dumps(fingerprint, sort_keys=True))
        self.make_checkpoint, self.epoch, self.max_epoch, self.restart = make_checkpoint, epoch, max_epoch, restart
        self.manager = None

    def resume(self) -> Rows:
        import tensorflow as tf

        if self.directory.exists() and not self._matches():
            logger.warning("%s: checkpoint made with other settings or data; starting afresh", self.directory)
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.directory / self.FINGERPRINT, json.dumps(self.fingerprint, indent=2, sort_keys=True))
        self.manager = tf.train.CheckpointManager(self.make_checkpoint(), str(self.directory), max_to_keep=2)
        if self.manager.latest_checkpoint is None:
            return []
        self.manager.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        epoch = self.epoch()
        if epoch > self.max_epoch:
            logger.warning("%s: checkpoint at epoch %d is beyond the requested %d epochs; starting afresh",
                           self.directory, epoch, self.max_epoch)
            shutil.rmtree(self.directory)
            self.restart()
            return self.resume()
        path = self.directory / self.HISTORY
        history = [row for row in (json.loads(path.read_text()) if path.exists() else []) if row["epoch"] <= epoch]
        logger.info("resumed from %s at epoch %d of %d", self.manager.latest_checkpoint, epoch, self.max_epoch)
        return history

    def save(self, history: Rows) -> None:
        """History first, then the checkpoint: a resume trims history rows beyond the restored epoch."""
        write_text_atomic(self.directory / self.HISTORY, json.dumps(history, allow_nan=True))
        self.manager.save(checkpoint_number=self.epoch())
        logger.info("checkpoint at epoch %d in %s", self.epoch(), self.directory)

    def _matches(self) -> bool:
        path = self.directory / self.FINGERPRINT
        if not path.exists():
            return not any(self.directory.iterdir())
        return json.loads(path.read_text()) == self.fingerprint


class KerasEpochCheckpoints:
    """Each epoch's weights of the named Keras ``networks`` (the first one's file is
    :func:`epoch_weights_path`), the optimisers' variables, then ``state.json`` naming the last epoch."""

    STATE = "state.json"

    def __init__(self, folder: str | Path, fingerprint: str, networks: Mapping[str, Any],
                 optimizers: Mapping[str, Any], max_epoch: int) -> None:
        self.folder, self.fingerprint, self.max_epoch = Path(folder), fingerprint, max_epoch
        self.networks, self.optimizers = dict(networks), dict(optimizers)

    @staticmethod
    def epoch_weights_path(folder: str | Path, epoch: int, network: str | None = None) -> Path:
        """Weights after ``epoch`` (1-based) of the first network, or of ``network``."""
        return Path(folder) / (f"epoch_{epoch:03d}.weights.h5" if network is None else
                               f"epoch_{epoch:03d}.{network}.weights.h5")

    def _weights_path(self, epoch: int, index: int, name: str) -> Path:
        return self.epoch_weights_path(self.folder, epoch, None if index == 0 else name)

    def save(self, history: Rows) -> None:
        epoch = len(history)
        for index, (name, network) in enumerate(self.networks.items()):
            with atomic_path(self._weights_path(epoch, index, name), suffix=".weights.h5") as tmp:
                network.save_weights(tmp)
        with atomic_path(self.folder / f"epoch_{epoch:03d}.optimizers.npz") as tmp:
            np.savez(tmp, **{f"{prefix}_{index:04d}": np.asarray(variable)
                             for prefix, optimizer in self.optimizers.items()
                             for index, variable in enumerate(optimizer.variables)})
        state = {"last_epoch": epoch, "fingerprint": self.fingerprint, "history": history}
        write_text_atomic(self.folder / self.STATE, json.dumps(state, indent=1))

    def resume(self) -> Rows:
        """Restore the last completed epoch (at most ``max_epoch``) if its state matches; return its history."""
        state_path = self.folder / self.STATE
        if not state_path.exists():
            return []
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != self.fingerprint:
            logger.warning("%s was written for another configuration or data; training from scratch", state_path)
            return []
        epoch = min(int(state["last_epoch"]), self.max_epoch)
        for index, (name, network) in enumerate(self.networks.items()):
            network.load_weights(self._weights_path(epoch, index, name))
        with np.load(self.folder / f"epoch_{epoch:03d}.optimizers.npz") as arrays:
            for prefix, optimizer in self.optimizers.items():
                for index, variable in enumerate(optimizer.variables):
                    variable.assign(arrays[f"{prefix}_{index:04d}"])
        logger.info("resuming after epoch %d from %s", epoch, self.folder)
        return list(state["history"])[:epoch]
