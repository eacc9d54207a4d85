"""The SHiP muon GAN study's figure of merit: can a BDT tell generated rows from real ones?

Exactly as the study (section 4): ``GradientBoostingClassifier(n_estimators=100, learning_rate=0.1,
max_depth=4)`` is trained on up to ``n_train_per_class`` real + as many generated rows and applied to a
*disjoint* ``n_eval_per_class`` + ``n_eval_per_class``. The BDT squeezes the many-dimensional
comparison into one dimension, where histogram tests work: the reduced chi2 between the normalised
BDT-output histograms of real and generated rows (~1 when indistinguishable), their overlap (shared
area, 1 when identical) and the ROC AUC (0.5 when indistinguishable).

With fewer rows than asked for, both classes use the same smaller numbers, split in the configured
train:eval proportion; ``reduced`` and ``note`` in the result say so, with the AUC's statistical error
(``auc_error``). Below ``MIN_EVAL_PER_CLASS`` evaluation rows per class the figure of merit is not
computed: :class:`TooFewRows` says so, and the validate step reports it as "not computable" instead of
a number that would only measure noise (see ``MIN_EVAL_PER_CLASS``). Weights (the SHiP sample is
weighted) are rescaled to a mean of 1 per class and used in training, histograms and AUC.
``classifier: hist`` swaps in ``HistGradientBoostingClassifier`` with the same depth, rate and
number of iterations (no early stopping) for large samples.

Uncertainty and reference: ``auc_error`` is the standard deviation of the AUC over ``bootstrap``
replicas of the *evaluation* rows (real and generated scores resampled with replacement by event,
weights kept; ``resampling.py``): it covers the statistical fluctuation of the evaluation sample for
the trained BDT, not the scatter between BDTs trained on other rows (``auc_null_error``, the
Mann-Whitney error of two identical samples of independent rows, is kept beside it).
:func:`real_vs_real` is the floor: the same figure of merit on two disjoint random halves of the real
sample (whole events), i.e. what a perfect generator would score with these rows, classifier and seed.

Weighted samples count by their effective size, Kish's n_eff = (sum w)^2 / sum w^2: the SHiP weights
(1 to 768.75) leave about 4.5 % of the rows' statistical power, and the AUC's error follows n_eff, not
the number of rows. The minimum of ``MIN_EVAL_PER_CLASS`` applies to n_eff.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.weights import effective_size
from pipeline_steps.validate.resampling import grouped_order, replica_drawer, subset
from pipeline_steps.validate.weighted_roc import rank_auc

N_ESTIMATORS, LEARNING_RATE, MAX_DEPTH = 100, 0.1, 4

#: Largest statistical error of the AUC worth reporting as a number. A generated sample that is
#: indistinguishable from the real one gives AUC 0.5; the AUC is the Mann-Whitney U statistic over
#: n_real * n_gen pairs, whose null variance is (n_real + n_gen + 1) / (12 n_real n_gen), i.e. about
#: 1 / (6 n) for n rows per class. 0.05 is half the gap between a good model (AUC - 0.5 below ~0.1 on
#: the default toy) and a visibly poor one, so a smaller sample could not tell them apart.
MAX_AUC_ERROR = 0.05
#: Evaluation rows per class that keep the null AUC error within MAX_AUC_ERROR: the smallest n with
#: (2n + 1) / (12 n^2) <= MAX_AUC_ERROR^2, the positive root of 12 s^2 n^2 - 2 n - 1 = 0 rounded up (68).
MIN_EVAL_PER_CLASS = int(np.ceil((2 + np.sqrt(4 + 48 * MAX_AUC_ERROR ** 2)) / (24 * MAX_AUC_ERROR ** 2)))


class TooFewRows(InputError):
    """Too few real or generated rows for a figure of merit that measures more than noise."""


def auc_null_error(n_real: float, n_generated: float) -> float:
    """Standard deviation of the AUC of two identical samples (Mann-Whitney null variance); for weighted
    samples pass their effective sizes."""
    return float(np.sqrt((n_real + n_generated + 1) / (12.0 * n_real * n_generated)))


@dataclass(frozen=True)
class FomSettings:
    """The ``validation`` config slice (rows per class, classifier, bins) and the seed."""

    classifier: str = "exact"
    n_train_per_class: int = 50_000
    n_eval_per_class: int = 50_000
    bins: int = 50
    seed: int = 0
    bootstrap: int = 100
    floor_repeats: int = 5

    @classmethod
    def from_config(cls, validation: Mapping[str, Any], seed: int) -> "FomSettings":
        settings = cls(
            classifier=str(validation.get("classifier", "exact")),
            n_train_per_class=int(validation["n_train_per_class"]),
            n_eval_per_class=int(validation["n_eval_per_class"]),
            bins=int(validation["bins"]),
            seed=int(seed),
            bootstrap=int(validation["bootstrap"]),
            floor_repeats=int(validation.get("floor_repeats", cls.floor_repeats)),
        )
        if settings.classifier not in ("exact", "hist"):
            raise ConfigError(f"validation.classifier: expected 'exact' or 'hist', got {settings.classifier!r}")
        return settings


@dataclass
class FomResult:
    auc: float
    chi2: float
    ndf: int
    overlap: float
    n_train_per_class: int
    n_eval_per_class: int
    reduced: bool
    note: str
    classifier: str
    weighted: bool
    auc_error: float = float("nan")
    n_eff_real: float = float("nan")
    n_eff_generated: float = float("nan")
    scores_real: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    scores_generated: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    weights_real: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    weights_generated: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def chi2_ndf(self) -> float:
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok", "auc": self.auc, "auc_error": self.auc_error,
            "auc_null_error": auc_null_error(self.n_eff_real, self.n_eff_generated),
            "n_eff_eval_real": self.n_eff_real, "n_eff_eval_generated": self.n_eff_generated,
            "chi2": self.chi2, "ndf": self.ndf, "chi2_ndf": self.chi2_ndf,
            "overlap": self.overlap, "n_train_per_class": self.n_train_per_class,
            "n_eval_per_class": self.n_eval_per_class, "reduced": self.reduced, "note": self.note,
            "classifier": self.classifier, "weighted": self.weighted,
        }


def figure_of_merit(real: np.ndarray, generated: np.ndarray, settings: FomSettings,
                    real_weights: np.ndarray | None = None, generated_weights: np.ndarray | None = None,
                    labels: tuple[str, str] = ("real", "generated"), real_events: np.ndarray | None = None,
                    generated_events: np.ndarray | None = None, paired: bool = False) -> FomResult:
    """Train the BDT on one part of real vs generated, score a disjoint part, compare the outputs.

    ``real`` and ``generated`` are [n, n_features] in the same column order. ``paired``: generated row
    i was sampled from the conditions of real row i (``tables.Comparison.paired``, checked there by the
    rows' identity); both are then split with one permutation, so a pair never straddles train and
    evaluation. Equal lengths alone do not make pairs (a SHiP generation of exactly as many muons).
    ``labels`` name the two samples in errors (the floor compares two halves of the real rows).
    ``real_events`` / ``generated_events`` name each row's event (``validate/resampling.py``): train
    and evaluation rows are whole events (one may straddle the cut) and the bootstrap draws events.
    A paired generated row belongs to its real row's event, so only an unpaired sample with events of
    its own (the floor's second half) passes ``generated_events``.
    """
    _check_pairing(paired, len(real), len(generated), generated_events)
    real, generated = _check(real, labels[0]), _check(generated, labels[1])
    n_train, n_eval, reduced, note = split_sizes(len(real), len(generated), settings, labels)
    rng = np.random.default_rng([settings.seed, 4])
    order_real = grouped_order(len(real), real_events, rng)
    order_gen = order_real if paired else grouped_order(len(generated), generated_events, rng)
    generated_events = real_events if paired else generated_events
    w_real = _unit_mean(real_weights, len(real))
    w_gen = _unit_mean(generated_weights, len(generated))
    train_r, eval_r = order_real[:n_train], order_real[n_train:n_train + n_eval]
    train_g, eval_g = order_gen[:n_train], order_gen[n_train:n_train + n_eval]
    ew_real, ew_gen = _unit_mean(w_real[eval_r]), _unit_mean(w_gen[eval_g])
    n_eff = _check_effective_size(ew_real, ew_gen, labels)
    classifier = make_classifier(settings.classifier, settings.seed)
    classifier.fit(np.vstack([real[train_r], generated[train_g]]),
                   np.r_[np.zeros(n_train), np.ones(n_train)],
                   sample_weight=fit_weights(np.r_[_unit_mean(w_real[train_r]), _unit_mean(w_gen[train_g])]))
    scores_real = classifier.predict_proba(real[eval_r])[:, 1]
    scores_gen = classifier.predict_proba(generated[eval_g])[:, 1]
    chi2, ndf, overlap = compare_histograms(scores_real, ew_real, scores_gen, ew_gen, settings.bins)
    auc = float(roc_auc_score(np.r_[np.zeros(n_eval), np.ones(n_eval)], np.r_[scores_real, scores_gen],
                              sample_weight=np.r_[ew_real, ew_gen]))
    weighted = real_weights is not None or generated_weights is not None
    auc_error = bootstrap_auc_error(scores_real, scores_gen, ew_real, ew_gen, settings.bootstrap, settings.seed,
                                    subset(real_events, eval_r), subset(generated_events, eval_g))
    return FomResult(auc, chi2, ndf, overlap, n_train, n_eval, reduced, note, settings.classifier, weighted,
                     auc_error, *n_eff, scores_real, scores_gen, ew_real, ew_gen)


def real_vs_real(real: np.ndarray, settings: FomSettings, real_weights: np.ndarray | None = None,
                 repeat: int = 0, events: np.ndarray | None = None) -> FomResult:
    """The floor: the figure of merit of two disjoint random halves of the real rows (halving ``repeat``),
    each a set of whole ``events`` (one may straddle the cut).

    Raises :class:`TooFewRows` when a half is below the figure of merit's minimum.
    """
    order = grouped_order(len(real), events, np.random.default_rng([settings.seed, 5, repeat]))
    first, second = np.sort(order[: len(real) // 2]), np.sort(order[len(real) // 2:])
    weights = None if real_weights is None else np.asarray(real_weights, dtype=np.float64)
    return figure_of_merit(real[first], real[second], settings, subset(weights, first), subset(weights, second),
                           labels=("real half A (floor)", "real half B (floor)"), real_events=subset(events, first),
                           generated_events=subset(events, second))


def _check_pairing(paired: bool, n_real: int, n_generated: int, generated_events: np.ndarray | None) -> None:
    """A caller's error, not the user's: pairs need one generated row per real row and share its events."""
    if paired and (n_real != n_generated or generated_events is not None):
        raise ValueError(f"paired samples need as many generated rows as real rows ({n_generated} vs {n_real}) "
                         f"and take the real rows' events (generated_events given: {generated_events is not None})")


def _check_effective_size(eval_weights_real: np.ndarray, eval_weights_generated: np.ndarray,
                          labels: tuple[str, str] = ("real", "generated")) -> tuple[float, float]:
    n_eff = effective_size(eval_weights_real), effective_size(eval_weights_generated)
    if min(n_eff) < MIN_EVAL_PER_CLASS:
        raise TooFewRows(f"the weighted evaluation rows are worth only {n_eff[0]:.0f} {labels[0]} and {n_eff[1]:.0f} "
                         f"{labels[1]} unweighted rows (Kish n_eff of the {len(eval_weights_real)} {labels[0]} and "
                         f"{len(eval_weights_generated)} {labels[1]} weighted rows); the figure of merit needs n_eff >= "
                         f"{MIN_EVAL_PER_CLASS} per class (AUC error <= {MAX_AUC_ERROR}): ingest more files or "
                         f"enlarge the test split")
    return n_eff


@dataclass
class Floor:
    """The floor over ``floor_repeats`` independent halvings of the real rows.

    One halving's AUC scatters by its bootstrap error around the value a perfect generator would
    get (0.48 +- 0.012 was one such draw for the default toy's jets), and that scatter went straight
    into AUC - floor. The mean over k halvings has about 1/sqrt(k) of it (halvings of the same rows
    are not fully independent, so ``mean_error`` is the measured spread / sqrt(k), not assumed).
    ``first`` is the first halving, whose rows per class the real-vs-generated figure of merit uses;
    ``auc_error`` stays one halving's bootstrap error: the noise of a single figure of merit.
    """

    first: FomResult
    aucs: list[float]

    @property
    def auc(self) -> float:
        return float(np.mean(self.aucs))

    @property
    def mean_error(self) -> float:
        if len(self.aucs) < 2:
            return self.first.auc_error
        return float(np.std(self.aucs, ddof=1) / np.sqrt(len(self.aucs)))


def repeated_floor(real: np.ndarray, settings: FomSettings, real_weights: np.ndarray | None = None,
                   events: np.ndarray | None = None) -> Floor:
    """:func:`real_vs_real` over ``settings.floor_repeats`` halvings (at least one)."""
    results = [real_vs_real(real, settings, real_weights, repeat, events)
               for repeat in range(max(1, settings.floor_repeats))]
    return Floor(results[0], [result.auc for result in results])


def matched_to_floor(settings: FomSettings, floor: FomResult) -> FomSettings:
    """Real-vs-generated settings with the floor's rows per class, so the two AUCs compare."""
    return replace(settings, n_train_per_class=floor.n_train_per_class, n_eval_per_class=floor.n_eval_per_class)


def bootstrap_auc_error(scores_real: np.ndarray, scores_generated: np.ndarray, weights_real: np.ndarray,
                        weights_generated: np.ndarray, n_boot: int, seed: int, events_real: np.ndarray | None = None,
                        events_generated: np.ndarray | None = None) -> float:
    """Standard deviation of the weighted AUC over ``n_boot`` resamplings of the evaluation rows, each
    sample drawn by its events (``resampling.replica_drawer``; by row without them).

    With signed (NLO) weights a replica may draw a class whose weights sum to zero or less, where the AUC
    has no meaning (a division by zero, or a rate above 1): such replicas are left out, and the error is
    NaN when they are half or more, as a few jets of weight +-1 would make them."""
    if n_boot < 2:
        return float("nan")
    _, inverse = np.unique(np.r_[scores_real, scores_generated], return_inverse=True)
    index_real, index_gen = inverse[: len(scores_real)], inverse[len(scores_real):]
    rng = np.random.default_rng([seed, 6])
    draw_real, draw_gen = replica_drawer(len(scores_real), events_real), replica_drawer(len(scores_generated),
                                                                                       events_generated)
    aucs = []
    for _ in range(n_boot):
        replica_real, replica_gen = weights_real * draw_real(rng), weights_generated * draw_gen(rng)
        if replica_real.sum() > 0 and replica_gen.sum() > 0:
            aucs.append(rank_auc(index_real, index_gen, replica_real, replica_gen, inverse.max() + 1))
    return float(np.std(aucs, ddof=1)) if 2 * len(aucs) > n_boot else float("nan")


def split_sizes(n_real: int, n_generated: int, settings: FomSettings,
                labels: tuple[str, str] = ("real", "generated")) -> tuple[int, int, bool, str]:
    """(train rows per class, eval rows per class, reduced?, note) for the available rows."""
    wanted_train, wanted_eval = settings.n_train_per_class, settings.n_eval_per_class
    available = min(n_real, n_generated)
    if available >= wanted_train + wanted_eval:
        return wanted_train, wanted_eval, False, ""
    n_train = available * wanted_train // (wanted_train + wanted_eval)
    n_eval = available - n_train
    if n_eval < MIN_EVAL_PER_CLASS or n_train < MIN_EVAL_PER_CLASS:
        needed = int(np.ceil(max(MIN_EVAL_PER_CLASS * (wanted_train + wanted_eval) / wanted_eval,
                                 MIN_EVAL_PER_CLASS * (wanted_train + wanted_eval) / wanted_train)))
        raise TooFewRows(f"only {n_real} {labels[0]} and {n_generated} {labels[1]} rows; the figure of merit needs at "
                         f"least {needed} of each ({MIN_EVAL_PER_CLASS} per class to evaluate, so that the AUC's "
                         f"statistical error stays below {MAX_AUC_ERROR}): ingest more files or enlarge the "
                         f"test split")
    return n_train, n_eval, True, reduced_note(n_real, n_generated, settings, n_train, n_eval)


def reduced_note(n_real: int, n_generated: int, asked: FomSettings, n_train: int, n_eval: int, why: str = "") -> str:
    """The ``note`` of a figure of merit on fewer rows than asked, with the AUC's statistical error."""
    return (f"fewer rows than asked: {n_real} real and {n_generated} generated rows available, "
            f"{asked.n_train_per_class}+{asked.n_eval_per_class} per class asked; used {n_train} train + {n_eval} "
            f"eval per class{why}, so the AUC has a statistical error of about {auc_null_error(n_eval, n_eval):.3f}")


def fit_weights(weights: np.ndarray) -> np.ndarray | None:
    """The ``sample_weight`` of the BDT's fit: None when every weight is 1 (an unweighted sample).

    Why: given weights, scikit-learn's histogram BDT finds each feature's bin edges with one
    weighted-percentile call per edge (255 per feature): 3.3 s of a 3.4 s fit for the jets' 25
    features x 2700 rows on this project's 2-core machine, against 0.15 s without weights. Both use
    the averaged inverted CDF, so unit weights give the same edges, the same trees and the same
    scores (``tests/test_validate_fom.py`` checks it); a weighted sample keeps its weights.
    """
    return None if bool(np.all(weights == 1.0)) else weights


def make_classifier(kind: str, seed: int):
    """The study's BDT (``exact``) or its histogram-based counterpart (``hist``), same depth and rate."""
    if kind == "exact":
        return GradientBoostingClassifier(n_estimators=N_ESTIMATORS, learning_rate=LEARNING_RATE,
                                          max_depth=MAX_DEPTH, random_state=seed)
    if kind == "hist":
        return HistGradientBoostingClassifier(max_iter=N_ESTIMATORS, learning_rate=LEARNING_RATE,
                                              max_depth=MAX_DEPTH, early_stopping=False, random_state=seed)
    raise ConfigError(f"validation.classifier: expected 'exact' or 'hist', got {kind!r}")


def compare_histograms(a: np.ndarray, weights_a: np.ndarray, b: np.ndarray, weights_b: np.ndarray,
                       bins: int) -> tuple[float, int, float]:
    """(chi2, ndf, overlap) of two BDT-output distributions on [0, 1], each normalised to unit area.

    chi2 = sum over bins with entries of (p_a - p_b)^2 / (var_a + var_b), with the variances from
    the sums of squared weights; ndf = bins with entries - 1 (the common normalisation). The
    overlap is the sum over bins of min(p_a, p_b).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    h_a, var_a = _weighted_hist(a, weights_a, edges)
    h_b, var_b = _weighted_hist(b, weights_b, edges)
    variance = var_a + var_b
    used = variance > 0
    chi2 = float(np.sum((h_a[used] - h_b[used]) ** 2 / variance[used]))
    return chi2, int(used.sum()) - 1, float(np.minimum(h_a, h_b).sum())


def _weighted_hist(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts, _ = np.histogram(values, edges, weights=weights)
    sumw2, _ = np.histogram(values, edges, weights=weights ** 2)
    total = counts.sum()
    return counts / total, sumw2 / total ** 2


def _unit_mean(weights: np.ndarray | None, n: int | None = None) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    weights = np.asarray(weights, dtype=np.float64)
    mean = weights.mean() if len(weights) else 1.0
    if not np.isfinite(weights).all() or (weights < 0).any() or mean <= 0:
        raise InputError(f"figure of merit: weights must be finite and non-negative with a positive mean; "
                         f"{int((~np.isfinite(weights)).sum())} non-finite and {int((weights < 0).sum())} negative "
                         f"of {len(weights)}")
    return weights / mean


def _check(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(f"figure of merit: {what} rows must be a 2D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).all(axis=0)).tolist()
        raise InputError(f"figure of merit: {what} rows hold NaN/inf in feature columns {bad}")
    return array
