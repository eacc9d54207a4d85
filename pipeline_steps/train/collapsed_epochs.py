"""CalRatio epochs whose classifier collapsed to one answer, for the epoch choice and the scan ranking.

A diverged run's classifier can give every validation jet the same signal probability: its data/MC KS
is then 0 (no shape to differ) and its adversarial loss can be the lowest of the run (-74.8 at a learning
rate of 1e3), so both the epoch choice and a scan ranked by ``validation_loss`` had kept it. The
trainer records the spread (max - min) of the signal probability as ``val_signal_spread``.
Light on purpose (pandas only): the scan ranking imports it.
"""

from __future__ import annotations

import pandas as pd

SPREAD_COLUMN = "val_signal_spread"
#: A signal probability that varies by no more than this over the validation jets is one answer: 2^-23 is
#: two float32 steps in [0.5, 1) and more below, as far as one value computed in other batches can round.
CONSTANT_SPREAD = 2.0 ** -23


def informative(history: pd.DataFrame) -> pd.Series:
    """True for the epochs whose classifier did not collapse; every epoch of a history without the column
    (written before it was recorded), and an epoch whose spread is missing, counts as informative."""
    if SPREAD_COLUMN not in history.columns:
        return pd.Series(True, index=history.index)
    return ~(history[SPREAD_COLUMN] <= CONSTANT_SPREAD)
