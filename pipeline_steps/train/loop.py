"""The epoch loop every trainer runs: resume, train epoch by epoch, early stop, checkpoint on a cadence.

A trainer supplies what is specific to its model as small callables: ``run_epoch(epoch, history)``
trains and evaluates one epoch and returns its history row; ``save(history)`` writes a checkpoint
from which the trainer's own resume continues bit for bit. The loop owns the rest:

- it continues after the epochs already in ``history`` (what the trainer's resume restored), and
  trains no further when the checkpointed run had stopped early;
- after each epoch it asks the early stop (``training.early_stopping``, pure on the history rows, so
  a resumed run decides as an uninterrupted one) and records its answer as the row's ``early_stop``;
- it checkpoints every ``checkpoint_every`` epochs, after the last epoch and when stopping early.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from tqdm import tqdm

from pipeline_steps.train.schedule import EarlyStopping

__all__ = ["run_epochs"]

logger = logging.getLogger(__name__)

Row = dict[str, Any]


def run_epochs(history: list[Row], *, epochs: int, checkpoint_every: int, stopper: EarlyStopping | None,
               run_epoch: Callable[[int, list[Row]], Row], save: Callable[[list[Row]], None],
               until_epoch: int | None = None, describe: Callable[[Row], str] | None = None,
               on_epoch_end: Callable[[int, Row], None] | None = None, label: str = "epochs") -> list[Row]:
    """Train epochs ``len(history) + 1 .. epochs`` (1-based) and return the history, one row per epoch.

    ``until_epoch`` ends the run after that epoch, with a checkpoint (tests of resuming);
    ``describe(row)`` sets the progress bar's text; ``on_epoch_end(epoch, row)`` runs after the
    epoch's checkpoint (tests interrupt a run there).
    """
    if history and history[-1].get("early_stop"):
        logger.info("the checkpointed run stopped early after epoch %d; not training further", len(history))
        return history
    last = epochs if until_epoch is None else min(until_epoch, epochs)
    bar = tqdm(range(len(history) + 1, last + 1), initial=len(history), total=epochs, desc=label)
    for epoch in bar:
        row = run_epoch(epoch, history)
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
