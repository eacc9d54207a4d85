"""What the validation figures draw: shares of all rows, weighted real samples."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pipeline_steps.validate.plots import histograms_with_ratio, quantile_edges, weighted_quantiles  # noqa: E402


def test_rows_beyond_the_range_still_count_and_are_said():
    """30 % of generated rows at x = 50, beyond the real range, had drawn a perfect match: each histogram
    was normalised to its binned rows only."""
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=4000), rng.normal(size=4000)
    generated[:1200] = 50.0
    fig, (top, bottom) = plt.subplots(2)
    histograms_with_ratio(top, bottom, real, generated, np.linspace(-2.5, 2.5, 21))
    real_steps, generated_steps = (patch.get_data().values for patch in top.patches)
    assert generated_steps.sum() == pytest.approx(0.7 * (np.abs(generated[1200:]) < 2.5).mean(), abs=1e-12)
    assert real_steps.sum() == pytest.approx((np.abs(real) < 2.5).mean(), abs=1e-12)
    beyond = 1.0 - generated_steps.sum()
    assert beyond > 0.3 and top.texts[0].get_text().endswith(f"gen {beyond:.1%}")
    plt.close(fig)


def test_weighted_quantiles_are_numpys_inverted_cdf():
    rng = np.random.default_rng(1)
    values, weights = rng.normal(size=1001), rng.uniform(0.1, 5.0, 1001)
    q = [0.16, 0.5, 0.84]
    assert np.array_equal(weighted_quantiles(values, np.ones(1001), q), np.quantile(values, q, method="inverted_cdf"))
    if tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 0):  # numpy 2 has weighted quantiles
        assert np.array_equal(weighted_quantiles(values, weights, q),
                              np.quantile(values, q, weights=weights, method="inverted_cdf"))
    heavy = np.ones(1001)
    heavy[np.argmax(values)] = 1e6  # one row with almost all the weight is every quantile
    assert np.all(weighted_quantiles(values, heavy, q) == values.max())


@pytest.mark.parametrize("low, high, bins, per_bin", [(7, 36, 50, 1), (0, 6, 50, 1), (-5, 21, 50, 1), (0, 999, 50, 20),
                                                     (3, 103, 50, 3)])
def test_integer_samples_get_bins_centred_on_the_integers(low, high, bins, per_bin):
    """nConstituents in 50 equal bins had alternately held one and two integers (or none): a comb of gaps."""
    values = np.arange(low, high + 1, dtype=np.float64).repeat(3)
    edges = quantile_edges(values, bins, tail=0.0)
    assert len(edges) - 1 <= bins and np.allclose(np.diff(edges), per_bin)
    assert edges[0] == low - 0.5 and edges[-1] >= high + 0.5 and np.all(edges % 1 == 0.5)
    counts, _ = np.histogram(np.arange(low, high + 1), edges)
    assert set(counts[:-1].tolist()) == {per_bin}  # every bin but perhaps the last holds step integers


def test_float_samples_keep_equal_bins_over_the_quantile_range():
    values = np.random.default_rng(2).normal(size=1000)
    values[0] = 3.0  # one integer-looking value does not make a sample discrete
    edges = quantile_edges(values, 40, tail=0.005)
    assert len(edges) == 41 and np.allclose(np.diff(edges), np.diff(edges)[0])
    assert edges[0] == pytest.approx(np.quantile(values, 0.005)) and edges[-1] == pytest.approx(np.quantile(values, 0.995))


def test_a_positive_variable_spanning_decades_is_binned_in_log():
    """A covariance diagonal (1e-6..1e-1) in equal bins had 60-90 % of its rows in the first bin."""
    from pipeline_steps.validate.plots import log_edges

    rng = np.random.default_rng(3)
    wide = 10.0 ** rng.uniform(-6, -1, 5000)
    edges = log_edges(wide, 40, 0.005)
    assert len(edges) == 41 and np.allclose(np.diff(np.log(edges)), np.diff(np.log(edges))[0])
    counts, _ = np.histogram(wide, edges)
    assert counts.max() < 3 * counts.mean()  # log-uniform rows spread evenly, not piled in one bin
    narrow, signed, counts_like = rng.uniform(20, 200, 500), rng.normal(size=500), rng.integers(1, 10**4, 500) * 1.0
    zero = np.append(wide, 0.0)
    assert all(log_edges(v, 40, 0.005) is None for v in (narrow, signed, counts_like, zero))


@pytest.mark.parametrize("sentinel", [-3.4e38, 1e19])
def test_an_integer_sample_with_a_huge_sentinel_still_gets_increasing_edges(sentinel):
    """A -FLT_MAX sentinel in 5 % of an integer variable's rows had overflowed the integer bin arithmetic."""
    values = np.r_[np.arange(20.0).repeat(50), np.full(100, sentinel)]
    edges = quantile_edges(values, 50, tail=0.005)
    assert len(edges) == 51 and np.all(np.diff(edges) > 0)
    np.histogram(values, edges)
