"""The epoch loop every trainer runs: resume, train epoch by epoch, early stop, checkpoint on a cadence.

A trainer supplies what is specific to its model as small callables: ``run_epoch(epoch, history)``
trains and evaluates one epoch and returns its history row; ``save(history)`` writes a checkpoint
from which the trainer's own resume continues bit for bit. The loop owns the rest:

- it continues after the epochs already in ``history`` (what the trainer's resume restored), and
  trains no further when the checkpointed run had stopped early;
- after each epoch it asks the early stop (``training.early_stopping``, pure on the history rows, so
  a resumed run decides as an uninterrupted one) and records its answer as the row's ``early_stop``;
- it checkpoints every ``checkpoint_every`` epochs, after the last epoch and when stopping early;
- it stops with an InputError at the first epoch whose ``finite`` losses are not finite: a diverged
  GAN had trained on for 30 epochs with an infinite discriminator loss and NaN weights, and generation,
  validation and export then took its NaN output for a model.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Sequence

from tqdm import tqdm

from pipeline_steps.common.errors import InputError
from pipeline_steps.train.schedule import EarlyStopping

__all__ = ["run_epochs"]

logger = logging.getLogger(__name__)

Row = dict[str, Any]


def run_epochs(history: list[Row], *, epochs: int, checkpoint_every: int, stopper: EarlyStopping | None,
               run_epoch: Callable[[int, list[Row]], Row], save: Callable[[list[Row]], None],
               until_epoch: int | None = None, describe: Callable[[Row], str] | None = None,
               on_epoch_end: Callable[[int, Row], None] | None = None, label: str = "epochs",
               finite: Sequence[str] = ()) -> list[Row]:
    """Train epochs ``len(history) + 1 .. epochs`` (1-based) and return the history, one row per epoch.

    ``until_epoch`` ends the run after that epoch, with a checkpoint (tests of resuming);
    ``describe(row)`` sets the progress bar's text; ``on_epoch_end(epoch, row)`` runs after the
    epoch's checkpoint (tests interrupt a run there); ``finite`` names the row's losses that must be finite.
    """
    if history and history[-1].get("early_stop"):
        logger.info("the checkpointed run stopped early after epoch %d; not training further", len(history))
        return history
    last = epochs if until_epoch is None else min(until_epoch, epochs)
    bar = tqdm(range(len(history) + 1, last + 1), initial=len(history), total=epochs, desc=label)
    for epoch in bar:
        row = run_epoch(epoch, history)
        check_finite_losses(row, finite, f"epoch {epoch}/{epochs}")
        history.append(row)
        stop = stopper is not None and stopper.should_stop(history)
        if stopper is not None:
            row["early_stop"] = int(stop)
        if describe is not None:
            bar.set_description(describe(row))
        if stop or epoch % checkpoint_every == 0 or epoch == last:
            save(history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if stop:
            logger.info("early stop after epoch %d: %s did not improve by %g in %d epochs", epoch, stopper.metric,
                        stopper.min_delta, stopper.patience)
            break
    bar.close()
    return history


def check_finite_losses(row: Row, names: Sequence[str], where: str) -> None:
    """An InputError naming every loss of ``row`` in ``names`` that is NaN or infinite, and what to change."""
    bad = {name: row[name] for name in names if not math.isfinite(float(row[name]))}
    if bad:
        raise diverged(where, ", ".join(f"{k} = {v}" for k, v in bad.items()))


def diverged(where: str, what: str) -> InputError:
    """The error of a training that diverged: where (the epoch), what showed it, and what to change."""
    return InputError(f"{where}: the training diverged, {what}; lower the learning rate (training.learning_rate or "
                      f"training.schedule), or look for extreme input values (preprocess's transforms.json report "
                      f"and plots)")
