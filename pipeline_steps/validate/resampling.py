"""Random halves, train/evaluation orders and bootstrap replicas that keep each event's rows together.

The objects of one event are correlated: jets share the event's pile-up (``PV_npvs`` is the same
number for all of them), LHCb's tracks share their primary vertex, SHiP's muon pairs come from one
decay. The splits already follow the event (``common/identity.split_keys``); the validation drew its
real-vs-real halves, the BDT's train/evaluation rows and its bootstrap replicas per object, and a
replica that draws objects treats the k correlated objects of an event as k independent ones. On the
default toy's jets (5423 test jets in 1023 events) the floor AUC's bootstrap error was 0.011 where ten
halvings scattered by 0.014 per object and by 0.022 per event; drawn by event it is 0.023 (the
real-vs-generated AUC on the same rows reads 0.011 either way: its two classes hold the same events'
conditions, where the two halves hold different events'). Here the
unit of every draw is the event: a bootstrap replica draws events with replacement and takes all their
rows (the cluster bootstrap), and a half or a training set is a set of whole events. (For k identical
objects per event the per-object error is 1/sqrt(k) of the right one: tests/test_validate_resampling.py.)

``events`` is one integer per row naming its event (``common/identity.event_codes``), or None when
each row is an event of its own. Then, and for events of one row each, every function draws exactly
what the per-row code drew, from the same random numbers, with one exception: the real-vs-real floor
given events orders its second half by that half's own events, where the per-row code reused the first
half's order when the halves had equal lengths (the halves are not pairs). So a flat sample of an even
number of rows gets another draw of its floor (the same distribution), and every other number stays.

An ordered cut (the first n rows of ``grouped_order``) is exact in rows, so the two classes of the
figure of merit keep their sizes; the one event that may straddle the cut puts at most its few rows on
both sides (k rows of thousands), which is the price of equal sizes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def grouped_order(n: int, events: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """A random order of the ``n`` rows in which the rows of one event follow each other.

    The events come in a random order, each event's rows in their own order. Without ``events`` it is
    ``rng.permutation(n)``.
    """
    if events is None:
        return rng.permutation(n)
    codes, n_events = _dense(events, n)
    rank = np.empty(n_events, dtype=np.int64)
    rank[rng.permutation(n_events)] = np.arange(n_events)
    return np.argsort(rank[codes], kind="stable")


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator, events: np.ndarray | None = None) -> np.ndarray:
    """[n_boot, n] multiplicities of the rows in bootstrap replicas that draw whole events with replacement.

    Each replica draws as many events as there are, with replacement, and a row counts as often as its
    event was drawn. Without ``events`` each row is drawn on its own (the ordinary bootstrap).
    """
    draw = replica_drawer(n, events)
    return np.stack([draw(rng) for _ in range(n_boot)]) if n_boot else np.empty((0, n))


def replica_drawer(n: int, events: np.ndarray | None = None) -> Callable[[np.random.Generator], np.ndarray]:
    """``draw(rng)`` -> one replica's row multiplicities (float64), as :func:`bootstrap_counts` draws them,
    for a caller that interleaves the replicas of two samples; the events are numbered once."""
    if events is None:
        return lambda rng: np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
    codes, n_events = _dense(events, n)
    return lambda rng: np.bincount(rng.integers(0, n_events, n_events), minlength=n_events)[codes].astype(np.float64)


def subset(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """``values`` (events or weights) at ``rows``; None stays None."""
    return None if values is None else np.asarray(values)[rows]


def _dense(events: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Event labels -> codes 0..k-1 in order of first appearance, and k; the labels must be one per row.

    By appearance, not by label, so that events of one row each are numbered as the rows are and every
    draw is the per-row one (the module's promise for flat samples)."""
    events = np.asarray(events)
    if events.shape != (n,):
        raise ValueError(f"expected one event label per row ({n}), got an array of shape {events.shape}")
    _, first, inverse = np.unique(events, return_index=True, return_inverse=True)
    by_appearance = np.empty(len(first), dtype=np.int64)
    by_appearance[np.argsort(first, kind="stable")] = np.arange(len(first))
    return by_appearance[inverse.reshape(-1)], len(first)
