"""The distances of one model, real vs generated beside real vs real, each with its spread.

Matched rows: the real rows are split into two random halves A and B (seeded). The floor compares A
with the real B; the value compares the same A with the generated rows of B (paired: generated from
B's own conditions; unpaired, e.g. SHiP: as many random generated rows). So value and floor share
everything (rows, conditions, batch sizes, bootstrap) but what is being judged: real B vs generated B.
A real sample too small to halve (a half worth fewer than ``MIN_EVAL_PER_CLASS`` rows, counted by Kish
n_eff when weighted) gets no floor, and its value compares all real rows with all generated rows.

Every quantity is ``{"status": "ok", "value", "error"}`` or ``{"status": "not computable",
"reason", "value": None, "error": None}``, plus ``floor``/``floor_error`` (``floor_reason``) and, where
value and floor share their bootstrap replicas and batches, ``excess_error``: the spread of value -
floor over them (``_merge``), the error the verdict judges the excess by.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from pipeline_steps.common.outliers import dominating_row
from pipeline_steps.validate import distances as dist
from pipeline_steps.validate.figure_of_merit import MIN_EVAL_PER_CLASS
from pipeline_steps.validate.resampling import bootstrap_counts, grouped_order, subset

OK, NOT_COMPUTABLE = "ok", "not computable"
_REPLICAS, _BATCHES = "_replicas", "_batches"  # private leaf keys, see ``measured``


def distance_metrics(real: np.ndarray, generated: np.ndarray, features: list[str], real_weights: np.ndarray | None,
                     generated_weights: np.ndarray | None, n_boot: int, seed: int,
                     real_events: np.ndarray | None = None, paired: bool = False) -> dict[str, Any]:
    """Per-feature W1/KS, correlation differences, FPD and KPD: value and floor (see module doc).

    ``real_events`` names each real row's event: the halves are whole events and the bootstrap draws
    events (``validate/resampling.py``). ``paired``: generated row i comes from real row i's conditions
    (``tables.Comparison.paired``) and belongs to its event."""
    first, second, generated_rows = matched_halves(len(real), len(generated), seed, real_events, paired)
    w_real = None if real_weights is None else np.asarray(real_weights, dtype=np.float64)
    w_gen = None if generated_weights is None else np.asarray(generated_weights, dtype=np.float64)
    if min(_rows_worth(w_real, first), _rows_worth(w_real, second)) >= MIN_EVAL_PER_CLASS:
        value = sample_distances(real[first], generated[generated_rows], features, subset(w_real, first),
                                 subset(w_gen, generated_rows), n_boot, seed, subset(real_events, first),
                                 subset(real_events, generated_rows) if paired else None)
        floor = sample_distances(real[first], real[second], features, subset(w_real, first), subset(w_real, second),
                                 n_boot, seed, subset(real_events, first), subset(real_events, second))
        rows = {"rows_real": len(first), "rows_compared": len(generated_rows), "floor_rows": len(second)}
    else:
        value = sample_distances(real, generated, features, w_real, w_gen, n_boot, seed, real_events,
                                 real_events if paired else None)
        reason = f"real sample of {len(real)} rows: halves below {MIN_EVAL_PER_CLASS} rows, no real-vs-real floor"
        floor = _map(value, lambda _: failed(reason))
        rows = {"rows_real": len(real), "rows_compared": len(generated), "floor_rows": 0}
    return {**rows, **_merge(value, floor)}


def matched_halves(n_real: int, n_generated: int, seed: int, real_events: np.ndarray | None = None,
                   paired: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real half A, real half B, generated rows compared with A): B's pairs when ``paired``, else a
    random min(|B|, n_generated) rows. The halves are whole ``real_events`` (one may straddle the cut)."""
    if paired and n_generated != n_real:
        raise ValueError(f"paired samples need as many generated rows as real rows ({n_generated} vs {n_real})")
    order = grouped_order(n_real, real_events, np.random.default_rng([seed, 7]))
    first, second = np.sort(order[: n_real - n_real // 2]), np.sort(order[n_real - n_real // 2:])
    if paired:
        return first, second, second
    size = min(len(second), n_generated)
    return first, second, np.sort(np.random.default_rng([seed, 8]).permutation(n_generated)[:size])


def sample_distances(real: np.ndarray, generated: np.ndarray, features: list[str], real_weights: np.ndarray | None,
                     generated_weights: np.ndarray | None, n_boot: int, seed: int, real_events: np.ndarray | None = None,
                     generated_events: np.ndarray | None = None) -> dict[str, Any]:
    """All distances of two samples (no floor): per_feature, correlation, fpd, kpd; the bootstrap
    replicas draw each sample by its events (by row where None).

    A feature constant in the real sample (``area`` of 0.5 for every jet, LHCb's long tracks only) has no
    correlation and no standard scale; it is left out of the joint metrics, named in their
    ``left_out_constant``, instead of making all three not computable. Its per-feature KS still judges
    whether the generator keeps it constant (its W1 / std has no scale)."""
    rng = np.random.default_rng([seed, 9])
    counts_real = bootstrap_counts(len(real), n_boot, rng, real_events) * dist.ones_or(real_weights, len(real))
    counts_gen = bootstrap_counts(len(generated), n_boot, rng, generated_events) * dist.ones_or(generated_weights,
                                                                                            len(generated))
    per_feature = {name: feature_distances(real[:, j], generated[:, j], real_weights, generated_weights,
                                           counts_real, counts_gen)
                   for j, name in enumerate(features)}
    varying = ~dist.constant_columns(real, real_weights) if len(real) else np.ones(len(features), bool)
    if not varying.any():
        reason = failed("every feature is constant in the real sample")
        return {"per_feature": per_feature, "correlation": {"max_abs": reason, "frobenius": reason},
                "fpd": reason, "kpd": reason}
    kept = [name for name, keep in zip(features, varying) if keep]
    joint = {"correlation": correlation_metrics(real[:, varying], generated[:, varying], real_weights,
                                                generated_weights, counts_real, counts_gen, kept),
             **joint_metrics(real[:, varying], generated[:, varying], real_weights, generated_weights, seed, kept,
                             (counts_real, counts_gen))}
    if not varying.all():
        left_out = [name for name in features if name not in kept]
        joint = _map(joint, lambda leaf: {**leaf, "left_out_constant": left_out})
    return {"per_feature": per_feature, **joint}


def feature_distances(real: np.ndarray, generated: np.ndarray, real_weights: np.ndarray | None,
                      generated_weights: np.ndarray | None, replicas_real: np.ndarray,
                      replicas_gen: np.ndarray) -> dict[str, Any]:
    """W1 (physical units), W1 / real std and KS of one feature, with bootstrap spreads."""
    try:
        dist.check_sample(real, real_weights, "real", MIN_EVAL_PER_CLASS)
        dist.check_sample(generated, generated_weights, "generated", MIN_EVAL_PER_CLASS)
    except dist.NotComputable as error:
        return {"w1": failed(str(error)), "w1_over_std": failed(str(error)), "ks": failed(str(error))}
    merged = dist.MergedSample(real, generated)
    w1, ks = merged.weighted(real_weights, generated_weights)
    spread = [merged.distances(replicas_real[c:c + dist.REPLICA_CHUNK], replicas_gen[c:c + dist.REPLICA_CHUNK])
              for c in range(0, len(replicas_real), dist.REPLICA_CHUNK)]
    w1_replicas, ks_replicas = (np.concatenate([part[k] for part in spread]) if spread else np.empty(0)
                                for k in (0, 1))
    return {"w1": measured(w1, _std(w1_replicas), w1_replicas),
            "w1_over_std": _over_real_std(real, real_weights, w1, w1_replicas),
            "ks": measured(ks, _std(ks_replicas), ks_replicas)}


def _over_real_std(real: np.ndarray, real_weights: np.ndarray | None, w1: float, w1_replicas: np.ndarray) -> dict:
    """W1 / real std, unless the real std is no scale: a constant feature, or one row holding most of its
    spread (a real 1e6 among values of order 1 had made a generated feature 1.5x too wide pass, 0.08)."""
    outlier = dominating_row(real, real_weights)
    if outlier is not None:
        return failed(f"{_dominated('real', real[outlier[0]], outlier[1])}: the real std is that row's, "
                      f"not a scale of the feature (its KS still judges it)")
    weights = dist.ones_or(real_weights, len(real))
    std = float(np.sqrt(np.cov(real, aweights=weights, ddof=0))) if weights.sum() > 0 else 0.0
    if std <= 0:
        return failed("real feature is constant: no scale")
    return measured(w1 / std, _std(w1_replicas / std), w1_replicas / std)


def correlation_metrics(real: np.ndarray, generated: np.ndarray, real_weights: np.ndarray | None,
                        generated_weights: np.ndarray | None, replicas_real: np.ndarray,
                        replicas_gen: np.ndarray, names: list[str]) -> dict[str, Any]:
    """max |corr_r - corr_g| and the Frobenius norm of the difference, with bootstrap spreads; ``names``
    are the columns' features (a constant generated one is named)."""
    try:
        _check_joint(real, generated, real_weights, generated_weights)
        if real.shape[1] < 2:
            raise dist.NotComputable("one feature: no correlations")
        constant = dist.constant_columns(generated, generated_weights)
        if constant.any():
            raise dist.NotComputable(f"generated feature(s) {[names[j] for j in np.flatnonzero(constant)]} "
                                     f"constant: correlation undefined")
        max_abs, frobenius = dist.correlation_differences(real, generated, real_weights, generated_weights)
        replicas = np.array([dist.correlation_differences(real, generated, wr, wg)
                             for wr, wg in zip(replicas_real, replicas_gen)]).reshape(-1, 2)
    except dist.NotComputable as error:
        return {"max_abs": failed(str(error)), "frobenius": failed(str(error))}
    return {"max_abs": measured(max_abs, _std(replicas[:, 0]), replicas[:, 0]),
            "frobenius": measured(frobenius, _std(replicas[:, 1]), replicas[:, 1])}


def joint_metrics(real: np.ndarray, generated: np.ndarray, real_weights: np.ndarray | None,
                  generated_weights: np.ndarray | None, seed: int, names: list[str],
                  replicas: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """FPD and KPD on the standardised features (weighted rows drawn by weight, each sample by its own).

    ``replicas`` (real, generated bootstrap weights, [n_boot, rows] each, as ``sample_distances`` draws
    them) give the FPD its statistical error beside the fit's (``distances.fd_replicas``). The floor's
    second sample is real rows with their weights: drawn by weight as the first, where the generated-slot
    weights had been ignored, so a weighted floor (SHiP) compared weighted with unweighted muons.

    One row holding most of a feature's spread (``common/outliers``) makes them meaningless: in the real
    sample it sets the standard scale and squeezes every other row onto one value (FPD and KPD then
    missed a generated feature 1.5x too wide); in either sample it owns the cubic kernel's sums, whose
    sign is then chance (one generated 1e6 gave KPD -2e12, "pass"). They are not computable then, with
    the feature and value named; a generated outlier still fails FPD, W1 and KS.
    """
    try:
        _check_joint(real, generated, real_weights, generated_weights)
        real_outlier = _first_dominated(real, names, "real", real_weights)
        if real_outlier:
            raise dist.NotComputable(f"{real_outlier}: standardising by the real std would squeeze every other "
                                     f"row onto one value")
        real_std, gen_std = dist.standardise(real, generated, real_weights)
    except dist.NotComputable as error:
        return {"fpd": failed(str(error)), "kpd": failed(str(error))}
    drawn_real = dist.unweighted_draw(real_std, real_weights, seed)
    drawn_gen = dist.unweighted_draw(gen_std, generated_weights, seed + 1)
    generated_outlier = _first_dominated(generated, names, "generated", generated_weights)
    kpd = (failed(f"{generated_outlier}: the kernel sums are that row's, of either sign (FPD, W1 and KS judge it)")
           if generated_outlier else _attempt(lambda: _kpd_leaf(dist.kpd_batches(drawn_real, drawn_gen, seed))))
    fpd = _attempt(lambda: _fpd_leaf(dist.fpd_batches(drawn_real, drawn_gen, seed), real_std, gen_std, replicas))
    return {"fpd": fpd, "kpd": kpd}


def _fpd_leaf(batches: dist.FpdBatches, real_std: np.ndarray, gen_std: np.ndarray,
              replicas: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """The FPD with its fit error and the whole samples' FD spread over the replicas in quadrature (see
    ``distances.fd_replicas``); replicas and batches stay for the excess's error (``_merge``)."""
    value, fit_error = batches.fit()
    fd_replicas = None if replicas is None else dist.fd_replicas(real_std, gen_std, *replicas)
    if fd_replicas is None or len(fd_replicas) < 2:
        return measured(value, fit_error, batches=batches)
    return measured(value, float(np.hypot(fit_error, _std(fd_replicas))), fd_replicas, batches)


def _kpd_leaf(batches: dist.KpdBatches) -> dict[str, Any]:
    return measured(*batches.median_and_spread(), batches=batches)


def _first_dominated(values: np.ndarray, names: list[str], sample: str,
                     weights: np.ndarray | None = None) -> str | None:
    """Which feature of ``values`` one row dominates (``common/outliers.dominating_row``), said in words."""
    for j, name in enumerate(names):
        outlier = dominating_row(values[:, j], weights)
        if outlier is not None:
            return f"{name}: {_dominated(sample, values[outlier[0], j], outlier[1])}"
    return None


def _dominated(sample: str, value: float, share: float) -> str:
    return f"one {sample} row ({value:.6g}) holds {share:.1%} of the squared deviations from the mean"


def measured(value: float, error: float | None, replicas: np.ndarray | None = None,
             batches: dist.FpdBatches | dist.KpdBatches | None = None) -> dict[str, Any]:
    """An ``ok`` leaf. ``replicas`` (the value on each bootstrap replica) and ``batches`` (FPD's and KPD's
    own batch values) stay in private keys until ``_merge`` has paired them with the floor's for the
    excess's error; they are not written out."""
    leaf = {"status": OK, "value": float(value), "error": None if error is None else float(error)}
    if replicas is not None and len(replicas) > 1:
        leaf[_REPLICAS] = np.asarray(replicas, dtype=np.float64)
    if batches is not None:
        leaf[_BATCHES] = batches
    return leaf


def failed(reason: str) -> dict[str, Any]:
    return {"status": NOT_COMPUTABLE, "reason": reason, "value": None, "error": None}


def _attempt(compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The leaf ``compute`` returns, or the reason it is not computable."""
    try:
        return compute()
    except dist.NotComputable as error:
        return failed(str(error))


def _check_joint(real, generated, real_weights, generated_weights) -> None:
    dist.check_sample(real, real_weights, "real", MIN_EVAL_PER_CLASS)
    dist.check_sample(generated, generated_weights, "generated", MIN_EVAL_PER_CLASS)


def _merge(value: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """Each value quantity with the matching floor beside it (``floor``, ``floor_error``, ``floor_reason``)
    and, where both have bootstrap replicas, ``excess_error``: the spread of value - floor over the replicas.

    Value and floor are drawn from the same replicas (the same seed, half A's rows in both, B's real rows
    and their generated pairs at the same multiplicities), so their noise is shared and cancels in the
    excess; adding the two errors in quadrature, as if independent, overstated the excess's error 3.5x for
    a perfect generator (W1 of 2000 + 2000 rows over 40 seeds: excess scatter 0.0074, quadrature 0.026,
    paired 0.0089), and up to 50x for features the conditions nearly fix (jets' eta).
    """
    if _is_leaf(value):
        extra = {"floor": floor["value"], "floor_error": floor["error"]}
        if floor["status"] != OK:
            extra["floor_reason"] = floor["reason"]
        paired = _paired_excess_error(value, floor)
        if paired is not None:
            extra["excess_error"] = paired
        return {**_public(value), **extra}
    return {key: _merge(value[key], floor[key]) for key in value}


def _paired_excess_error(value: dict[str, Any], floor: dict[str, Any]) -> float | None:
    """The spread of value - floor over their shared bootstrap replicas and, for FPD and KPD, over their
    shared batches (the same seed and sizes draw the same rows), in quadrature; None when a part that the
    value's error has cannot be paired (the verdict then adds value's and floor's errors in quadrature)."""
    parts = []
    if _REPLICAS in value:
        if _REPLICAS not in floor or len(value[_REPLICAS]) != len(floor[_REPLICAS]):
            return None
        parts.append(_std(value[_REPLICAS] - floor[_REPLICAS]))
    if _BATCHES in value:  # FpdBatches or KpdBatches: each pairs itself with the floor's of its kind
        ours, theirs = value[_BATCHES], floor.get(_BATCHES)
        paired = ours.excess_error(theirs) if type(theirs) is type(ours) else None
        if paired is None:
            return None
        parts.append(paired)
    return float(np.hypot.reduce(parts)) if parts else None


def _public(leaf: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in leaf.items() if key not in (_REPLICAS, _BATCHES)}


def _map(tree: dict[str, Any], leaf: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    return leaf(tree) if _is_leaf(tree) else {key: _map(sub, leaf) for key, sub in tree.items()}


def _is_leaf(node: dict[str, Any]) -> bool:
    return node.get("status") in (OK, NOT_COMPUTABLE)  # not a feature that happens to be named "status"


def _rows_worth(weights: np.ndarray | None, rows: np.ndarray) -> float:
    """What ``rows`` are worth: their number, or their Kish n_eff when weighted (the distances' minimum
    applies to it, so halves of 33 weighted rows each had made every distance not computable where the
    whole sample, worth 74, could be compared without a floor)."""
    return float(len(rows)) if weights is None else dist.effective_size(weights[rows])


def _std(values: np.ndarray) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None
