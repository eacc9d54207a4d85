"""Batched sampling from a trained model: event-aligned chunks, per-chunk seeds, SHiP category counts.

Any object with ``sample(conditions float32 [n, n_cond], seed) -> float32 [n, n_targets]`` (the
``Sampler`` of ``pipeline_steps.models.<kind>``) can be used; the sampler itself batches on the
device. Chunks here bound the memory of the *whole* chain (sample, inverse transform, ROOT write).
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import InputError
from pipeline_steps.common.identity import event_starts


class Sampler(Protocol):
    def sample(self, conditions: np.ndarray, seed: int) -> np.ndarray: ...


def chunk_seed(seed: int, chunk_index: int) -> int:
    """Independent 31-bit seed for chunk ``chunk_index``: the same (seed, chunking) -> the same rows."""
    return int(np.random.SeedSequence([seed, chunk_index]).generate_state(1)[0] >> 1)


def event_aligned_chunks(rows: pd.DataFrame, chunk_rows: int) -> list[slice]:
    """Row slices of about ``chunk_rows`` rows that never split an event (same source_file, entry).

    ``rows`` must be sorted so that the rows of one event are contiguous.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    n_rows = len(rows)
    starts = event_starts(rows)
    slices, begin = [], 0
    while begin < n_rows:
        later = np.searchsorted(starts, begin + chunk_rows)  # the first event starting at or after it
        end = int(starts[later]) if later < len(starts) else n_rows
        slices.append(slice(begin, end))
        begin = end
    return slices


def sample_conditions(sampler: Sampler, conditions: np.ndarray, seed: int, n_targets: int) -> np.ndarray:
    """One chunk through the sampler, with its shape checked (a wrong model file shows here).

    The conditions are handed over writable: a model of one float32 condition (the HZZ sample's NJet) got
    Arrow's read-only buffer, and torch.from_numpy warned of "undefined behavior" in every generate log.
    """
    conditions = np.ascontiguousarray(conditions, dtype=np.float32)
    if not conditions.flags.writeable:
        conditions = conditions.copy()
    generated = np.asarray(sampler.sample(conditions, seed), dtype=np.float32)
    if generated.shape != (len(conditions), n_targets):
        raise InputError(
            f"sampler returned shape {generated.shape} for {len(conditions)} condition rows; "
            f"expected ({len(conditions)}, {n_targets}) - does the trained model match the config's targets?"
        )
    return generated


def poisson_category_counts(shares: Mapping[int, float], total: int, rng: np.random.Generator) -> dict[int, int]:
    """Muons to generate per category: Poisson(total * share), the SHiP study's generation plan.

    Counts fluctuate like independent samples of the real process would; their sum is close to,
    not exactly, ``total``.
    """
    if total < 1:
        raise InputError(f"validation.generated_events must be >= 1, got {total}")
    share_sum = sum(shares.values())
    if share_sum <= 0:
        raise InputError(f"categories.json: the category shares add up to {share_sum}; nothing to generate")
    return {int(c): int(rng.poisson(total * share / share_sum)) for c, share in sorted(shares.items())}
