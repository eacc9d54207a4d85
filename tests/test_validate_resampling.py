"""Validation draws by event: halves and training rows are whole events, bootstrap replicas draw events."""

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import InputError
from pipeline_steps.common.identity import event_codes
from pipeline_steps.validate.compare import distance_metrics, matched_halves
from pipeline_steps.validate.figure_of_merit import FomSettings, bootstrap_auc_error, figure_of_merit
from pipeline_steps.validate.resampling import bootstrap_counts, grouped_order

SMALL = dict(classifier="hist", n_train_per_class=600, n_eval_per_class=600, bins=20, bootstrap=40)


def _events(n_events, rng, most=4):
    """Event labels of 1..most rows each, labels shuffled (not sorted, not contiguous)."""
    sizes = rng.integers(1, most + 1, n_events)
    return rng.permutation(np.repeat(rng.permutation(n_events) * 7 + 3, sizes))


def test_grouped_order_is_a_permutation_with_each_event_contiguous():
    rng = np.random.default_rng(0)
    events = _events(500, rng)
    order = grouped_order(len(events), events, np.random.default_rng(1))
    assert np.array_equal(np.sort(order), np.arange(len(events)))
    ordered = events[order]
    changes = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    assert len(changes) + 1 == len(np.unique(events))  # one run per event


def test_without_events_every_draw_is_the_per_row_one():
    """None draws exactly what the per-row code drew, and events of one row each draw the same."""
    n = 300
    assert np.array_equal(grouped_order(n, None, np.random.default_rng(5)), np.random.default_rng(5).permutation(n))
    assert np.array_equal(grouped_order(n, np.random.default_rng(0).permutation(n), np.random.default_rng(5)),
                          np.random.default_rng(5).permutation(n))
    rng = np.random.default_rng(6)
    per_row = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(4)])
    assert np.array_equal(bootstrap_counts(n, 4, np.random.default_rng(6)), per_row)
    assert np.array_equal(bootstrap_counts(n, 4, np.random.default_rng(6), np.arange(n)[::-1] * 3), per_row)


def test_bootstrap_counts_draw_whole_events():
    rng = np.random.default_rng(2)
    events = _events(200, rng)
    counts = bootstrap_counts(len(events), 50, np.random.default_rng(3), events)
    for label in np.unique(events)[:20]:
        rows = counts[:, events == label]
        assert (rows == rows[:, :1]).all()  # an event's rows are drawn together
    _, first = np.unique(events, return_index=True)
    assert (counts[:, first].sum(axis=1) == 200).all()  # as many events drawn as there are


def test_the_auc_error_of_events_of_identical_objects_is_that_of_the_events():
    """k copies of each row in an event carry the information of one row: the error drawn by event is the
    error of the one-row-per-event sample (to rounding); drawn per row it was about 1/sqrt(k) of it."""
    rng = np.random.default_rng(4)
    n, k = 400, 4
    scores_real, scores_gen = rng.normal(size=n), rng.normal(0.2, 1, n)
    ones = np.ones(n)
    single = bootstrap_auc_error(scores_real, scores_gen, ones, ones, 200, 0)
    copies = lambda values: np.repeat(values, k)  # noqa: E731
    events = np.repeat(np.arange(n), k)
    by_event = bootstrap_auc_error(copies(scores_real), copies(scores_gen), copies(ones), copies(ones), 200, 0,
                                   events, events + n)
    by_row = bootstrap_auc_error(copies(scores_real), copies(scores_gen), copies(ones), copies(ones), 200, 0)
    assert by_event == pytest.approx(single, rel=1e-9)
    assert by_row < 0.7 * single  # 1/sqrt(4) = 0.5 expected, with the scatter of 200 replicas (~5 %)


def test_the_figure_of_merit_of_one_object_events_is_the_per_row_one():
    rng = np.random.default_rng(7)
    real, generated = rng.normal(size=(1500, 3)), rng.normal(0.1, 1, (1500, 3))
    plain = figure_of_merit(real, generated, FomSettings(**SMALL))
    singletons = figure_of_merit(real, generated, FomSettings(**SMALL), real_events=np.arange(1500))
    assert (plain.auc, plain.auc_error) == (singletons.auc, singletons.auc_error)


def test_the_figure_of_merit_error_grows_with_correlated_objects():
    """Events of 4 copies of a row: the evaluation rows are worth a quarter as many, and the error says so."""
    rng = np.random.default_rng(8)
    base_real, base_gen = rng.normal(size=(400, 3)), rng.normal(0.1, 1, (400, 3))
    real, generated, events = np.repeat(base_real, 4, axis=0), np.repeat(base_gen, 4, axis=0), np.repeat(np.arange(400), 4)
    by_row = figure_of_merit(real, generated, FomSettings(**SMALL))
    by_event = figure_of_merit(real, generated, FomSettings(**SMALL), real_events=events)
    assert by_event.auc_error > 1.5 * by_row.auc_error  # 2x expected


def test_halves_share_at_most_one_event():
    rng = np.random.default_rng(9)
    events = _events(700, rng)
    first, second, compared = matched_halves(len(events), len(events), 0, events, paired=True)
    assert len(np.intersect1d(events[first], events[second])) <= 1
    assert np.array_equal(compared, second)
    unpaired = matched_halves(len(events), len(events), 0, events)[2]  # as many rows, drawn: not B's pairs
    assert len(unpaired) == len(second) and not np.array_equal(unpaired, second)


def test_distance_errors_follow_the_events():
    rng = np.random.default_rng(10)
    base_real, base_gen = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    real, generated, events = np.repeat(base_real, 4, axis=0), np.repeat(base_gen, 4, axis=0), np.repeat(np.arange(500), 4)
    by_row = distance_metrics(real, generated, ["a", "b"], None, None, 60, 0)
    by_event = distance_metrics(real, generated, ["a", "b"], None, None, 60, 0, events)
    assert by_event["per_feature"]["a"]["w1"]["error"] > 1.5 * by_row["per_feature"]["a"]["w1"]["error"]
    singletons = distance_metrics(base_real, base_gen, ["a", "b"], None, None, 20, 0, np.arange(500))
    assert singletons == distance_metrics(base_real, base_gen, ["a", "b"], None, None, 20, 0)


def test_event_codes_follow_the_split_keys():
    rows = pd.DataFrame({"source_file": ["a.root", "a.root", "b.root", "b.root"], "entry": [0, 0, 0, 1],
                         "object_index": [0, 1, 0, 0], "run": [1, 1, 1, 2], "event": [5, 5, 5, 5]})
    assert list(event_codes(rows, [], "t")) == [0, 0, 1, 2]  # raw file and entry
    assert list(event_codes(rows, ["run", "event"], "t")) == [0, 0, 0, 1]  # the same event in two files
    with pytest.raises(InputError, match=r"t: columns \['lumi'\] missing"):
        event_codes(rows, ["run", "lumi"], "t")


def test_the_fpd_error_covers_the_scatter_of_independent_samples():
    """Twenty independent real/generated pairs of one distribution: the FPD scatters by sd; its error must
    not understate that. The batch-fit error alone said ~0.5 sd (the Monte Carlo error of the batch
    average); with the whole samples' bootstrap spread it reads ~1.7 sd (the bootstrap of a distance at
    its null adds the resample's own noise). The sd of 20 values is known to ~16 % (1 / sqrt(2 * 19)), so
    0.8-2.5 sd leaves 4 of those errors either side of the 1.7 measured."""
    from pipeline_steps.validate.compare import joint_metrics

    values, errors, fit_errors = [], [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        real, generated = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3))
        replicas = (bootstrap_counts(2000, 50, rng), bootstrap_counts(2000, 50, rng))
        fpd = joint_metrics(real, generated, None, None, seed, list("abc"), replicas)["fpd"]
        values.append(fpd["value"])
        errors.append(fpd["error"])
        fit_errors.append(joint_metrics(real, generated, None, None, seed, list("abc"))["fpd"]["error"])
    scatter = np.std(values, ddof=1)
    assert 0.8 * scatter <= np.mean(errors) <= 2.5 * scatter, (np.mean(errors), scatter)
    assert np.mean(fit_errors) < 0.8 * scatter  # why the spread is added


def test_the_fpd_error_follows_the_events():
    rng = np.random.default_rng(11)
    base_real, base_gen = rng.normal(size=(500, 2)), rng.normal(0.2, 1, (500, 2))
    real, generated, events = np.repeat(base_real, 4, axis=0), np.repeat(base_gen, 4, axis=0), np.repeat(np.arange(500), 4)
    by_row = distance_metrics(real, generated, ["a", "b"], None, None, 60, 0)["fpd"]["error"]
    by_event = distance_metrics(real, generated, ["a", "b"], None, None, 60, 0, events)["fpd"]["error"]
    assert by_event > 1.5 * by_row


def test_the_excess_error_pairs_value_and_floor_replicas():
    """A perfect generator (targets drawn from the real conditional, paired with the real rows): over 25
    samples the W1 excess over the floor scatters by sd; value and floor share half A and B's rows, so
    their errors in quadrature overstated it (3.5x measured over 40 seeds), the spread of the paired
    replicas' difference reads 1.2 sd. The sd of 25 values is known to 14 % (1 / sqrt(2 * 24)), so
    0.6-2 sd leaves more than 3 of those errors either side of 1.2."""
    excess, paired, quadrature = [], [], []
    for seed in range(25):
        rng = np.random.default_rng(seed)
        condition = rng.normal(size=2000)
        real = np.c_[condition, condition + rng.normal(0, 0.3, 2000)]
        generated = np.c_[condition, condition + rng.normal(0, 0.3, 2000)]
        w1 = distance_metrics(real, generated, ["c", "t"], None, None, 50, seed, paired=True)["per_feature"]["t"]["w1"]
        excess.append(w1["value"] - w1["floor"])
        paired.append(w1["excess_error"])
        quadrature.append(np.hypot(w1["error"], w1["floor_error"]))
    scatter = np.std(excess, ddof=1)
    assert 0.6 * scatter <= np.mean(paired) <= 2.0 * scatter, (np.mean(paired), scatter)
    assert np.mean(quadrature) > 2.0 * scatter  # why the replicas are paired


def test_metrics_carry_no_replicas_and_the_verdict_uses_the_paired_error():
    import json

    from pipeline_steps.validate.verdict import Threshold, verdict

    rng = np.random.default_rng(12)
    real, generated = rng.normal(size=(600, 2)), rng.normal(size=(600, 2))
    distances = distance_metrics(real, generated, ["a", "b"], None, None, 20, 0)
    assert "_replicas" not in json.dumps(distances)
    leaf = {"status": "ok", "value": 0.09, "error": 0.04, "floor": 0.02, "floor_error": 0.04}
    document = {"targets": ["a"], "distances": {"per_feature": {"a": {"w1_over_std": {**leaf, "excess_error": 0.005},
                                                                      "ks": leaf}}}}
    rows = {row["metric"]: row for row in verdict(document, {"w1_over_std_max": Threshold(0.05, 0.1),
                                                               "ks_max": Threshold(0.05, 0.1)})["rows"]}
    assert rows["w1_over_std_max"]["verdict"] == "warn" and rows["w1_over_std_max"]["excess_error"] == 0.005
    assert rows["ks_max"]["verdict"] == "not resolved"  # 0.07 +- 0.057 (quadrature) cannot be told from 0.05


def test_the_fpd_and_kpd_excess_errors_pair_their_batches():
    """FPD and KPD draw their batches with one seed, so value and floor (samples of the same sizes) share
    the batch rows. Over 30 perfect-generator samples (measured): FPD excess scatter 0.0018, paired error
    0.0036 (the replicas' spread overstates at the null, see distances.fd_replicas), quadrature 0.015;
    KPD scatter 0.019, paired 0.021, quadrature 0.065. With the sd known to 13 % (1 / sqrt(58)), the
    bounds leave 3 or more of those errors around each measured ratio."""
    fpd, kpd = {"excess": [], "paired": [], "quadrature": []}, {"excess": [], "paired": [], "quadrature": []}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        condition = rng.normal(size=2000)
        real = np.c_[condition, condition + rng.normal(0, 0.5, 2000)]
        generated = np.c_[condition, condition + rng.normal(0, 0.5, 2000)]
        distances = distance_metrics(real, generated, ["c", "t"], None, None, 50, seed, paired=True)
        for name, found in (("fpd", fpd), ("kpd", kpd)):
            leaf = distances[name]
            found["excess"].append(leaf["value"] - leaf["floor"])
            found["paired"].append(leaf["excess_error"])
            found["quadrature"].append(np.hypot(leaf["error"], leaf["floor_error"]))
    for found, (low, high), overstated in ((fpd, (0.8, 3.5), 4.0), (kpd, (0.6, 1.8), 2.0)):
        scatter = np.std(found["excess"], ddof=1)
        assert low * scatter <= np.mean(found["paired"]) <= high * scatter, (np.mean(found["paired"]), scatter)
        assert np.mean(found["quadrature"]) > overstated * scatter


def test_a_weighted_floor_draws_both_halves_by_weight():
    """The floor's second half is real rows with weights: drawn by weight like the first. Ignored, a
    weighted sample's floor compared weighted with unweighted rows (here FPD 3.4 instead of 0.005)."""
    rng = np.random.default_rng(13)
    values = rng.uniform(-3, 3, size=(4000, 2))
    weights = np.exp(-2 * values[:, 0] ** 2) + 0.01  # the weighted distribution is narrow in x
    generated = rng.normal(size=(4000, 2))
    distances = distance_metrics(values, generated, ["x", "y"], weights, None, 10, 0)
    assert distances["fpd"]["floor"] < 0.1, distances["fpd"]
