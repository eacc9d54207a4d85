"""Generated rows are held to the training support: range clipped, discrete values snapped; real rows
and the exact inverse are untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_steps.export import run_bundle
from pipeline_steps.preprocess.model_transforms import ModelTransforms
from pipeline_steps.preprocess.physical_support import PhysicalSupport, nearest_value
from pipeline_steps.preprocess.transforms import VariableTransforms


def training_rows() -> pd.DataFrame:
    return pd.DataFrame({"jetId": [0, 2, 6, 6, 6], "btagDeepB": [-1.0, -1.0, 0.2, 0.9, 1.0],
                         "muEF": [0.0, 0.0, 0.0, 0.1, 0.4]})


def test_clips_to_the_training_range_and_snaps_discrete_values():
    support = PhysicalSupport.fit(training_rows(), discrete=["jetId"])
    generated = pd.DataFrame({"jetId": [-1.0, 1.0, 1.4, 4.5, 5.0, 10.0], "btagDeepB": [-1.05, -0.9, 0.5, 1.2, 2.7, 0.0],
                              "muEF": [-0.003, 0.0, 0.2, 0.5, 0.05, 1e-4]})
    held = support.apply(generated)
    assert held["jetId"].tolist() == [0, 0, 2, 6, 6, 6]
    assert held["btagDeepB"].tolist() == [-1.0, -0.9, 0.5, 1.0, 1.0, 0.0]
    assert held["muEF"].tolist() == [0.0, 0.0, 0.2, 0.4, 0.05, 1e-4]
    assert generated["jetId"].tolist()[0] == -1.0  # a copy: the input is not modified


def test_nearest_value_ties_go_down_and_single_values_are_constant():
    assert nearest_value(np.array([1.0, 3.0, 5.0]), np.array([0.0, 2.0, 6.0])).tolist() == [0.0, 2.0, 6.0]
    assert nearest_value(np.array([-3.0, 7.0]), np.array([1.0])).tolist() == [1.0, 1.0]


def test_round_trips_through_the_transforms_document_and_the_standalone_runner():
    support = PhysicalSupport.fit(training_rows(), discrete=["jetId"])
    empty = VariableTransforms([])
    document = ModelTransforms(empty, empty, support=support).to_dict()
    reloaded = ModelTransforms.from_dict(document).support
    generated = pd.DataFrame({"jetId": [-1.0, 3.9, 4.1, 9.0], "btagDeepB": [-2.0, 0.3, 3.0, 0.99],
                              "muEF": [-1.0, 0.2, 0.6, 0.3]})
    ours = reloaded.apply(generated)
    standalone = run_bundle.within_support(document, {name: generated[name].to_numpy() for name in generated})
    for name in generated.columns:
        np.testing.assert_array_equal(ours[name].to_numpy(), standalone[name])


def test_an_empty_support_changes_nothing():
    generated = pd.DataFrame({"x": [-1e9, 0.5, 1e9]})
    pd.testing.assert_frame_equal(PhysicalSupport().apply(generated), generated)


def _nano_precision(values: np.ndarray, bits: int) -> np.ndarray:
    """float32 truncated to ``bits`` mantissa bits, the way the toy (and NanoAOD) stores a float."""
    mask = np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)
    return (np.asarray(values, np.float32).view(np.uint32) & mask).view(np.float32)


def test_reduced_precision_is_detected_and_generated_values_land_on_its_lattice():
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"chHEF": _nano_precision(rng.uniform(0, 1, 500), 6),
                         "eta": _nano_precision(rng.normal(0, 2, 500), 12),
                         "pt": rng.exponential(40, 500).astype(np.float32) + 15})  # full float32 precision
    support = PhysicalSupport.fit(rows)
    assert support.mantissa_bits == {"chHEF": 6, "eta": 12}
    generated = pd.DataFrame({"chHEF": rng.uniform(0, 1, 1000), "eta": rng.normal(0, 2, 1000),
                              "pt": rng.exponential(40, 1000) + 15})
    held = support.apply(generated)
    for name, bits in support.mantissa_bits.items():
        values = held[name].to_numpy(np.float32)
        np.testing.assert_array_equal(values, _nano_precision(values, bits))  # on the lattice
        spacing = np.abs(generated[name].to_numpy()) * 2.0 ** -bits  # one unit in the last kept place
        assert np.all(np.abs(held[name] - generated[name].clip(*support.ranges[name])) <= spacing)
        assert len(np.unique(values)) < len(np.unique(generated[name]))
    assert held["pt"].equals(generated["pt"].clip(*support.ranges["pt"]))
    document = ModelTransforms(VariableTransforms([]), VariableTransforms([]), support=support).to_dict()
    standalone = run_bundle.within_support(document, {name: generated[name].to_numpy() for name in generated})
    for name in generated.columns:
        np.testing.assert_array_equal(held[name].to_numpy(), standalone[name])


def test_rounding_to_fewer_mantissa_bits_is_to_the_nearest_lattice_value():
    from pipeline_steps.preprocess.physical_support import round_mantissa

    assert round_mantissa(np.array([0.5313, 0.53, -0.5313, 1.99999, 0.0]), 6).tolist() == [0.53125, 0.53125, -0.53125,
                                                                                          2.0, 0.0]


def _fractions(n: int, rng: np.random.Generator, bits: int = 6) -> pd.DataFrame:
    """Energy fractions as the toy and NanoAOD store them: parts of 1, each truncated to ``bits`` mantissa bits."""
    parts = rng.dirichlet([6.0, 2.0, 1.0, 3.0], n)
    return pd.DataFrame({name: _nano_precision(parts[:, i], bits) for i, name in enumerate(["chHEF", "neHEF",
                                                                                              "chEmEF", "neEmEF"])})


def test_a_bounded_sum_holds_generated_fractions_below_the_training_sum_after_rounding():
    """Generated fractions drawn one by one sum past 1; held, no row's rounded sum passes the training's
    largest, the rows below it are untouched, and the parts of a scaled row keep their ratios."""
    rng = np.random.default_rng(4)
    names = ["chHEF", "neHEF", "chEmEF", "neEmEF"]
    support = PhysicalSupport.fit(_fractions(2000, rng), bounded_sums=[names])
    (group, bound), = support.sums
    assert group == tuple(names) and 0.98 < bound <= 1.0
    generated = _fractions(5000, rng).astype(np.float64) * rng.uniform(0.9, 1.25, (5000, 1))
    before = generated[names].sum(axis=1).to_numpy()
    assert (before > bound).mean() > 0.3  # the case the bound is for
    held = support.apply(generated)
    after = held[names].sum(axis=1).to_numpy()
    assert after.max() <= bound
    low = before < 0.95 * bound  # far below: no scaling, only the stored precision's rounding
    np.testing.assert_allclose(held.loc[low, names], generated.loc[low, names], rtol=2.0 ** -7)
    inside = np.all([generated[name].between(*support.ranges[name]) for name in names], axis=0)  # none clipped
    scaled = (before > 1.1 * bound) & inside  # ratios kept up to the rounding of each part (2^-7 with 6 bits)
    assert scaled.sum() > 100
    ratio = held.loc[scaled, "chHEF"] / held.loc[scaled, "neHEF"]
    np.testing.assert_allclose(ratio, generated.loc[scaled, "chHEF"] / generated.loc[scaled, "neHEF"], rtol=2 ** -6)
    document = ModelTransforms(VariableTransforms([]), VariableTransforms([]), support=support).to_dict()
    standalone = run_bundle.within_support(document, {name: generated[name].to_numpy() for name in names})
    for name in names:  # the exported bundle holds them the same way, to the last bit
        np.testing.assert_array_equal(held[name].to_numpy(), standalone[name])


def test_a_bounded_sum_refuses_parts_that_are_negative_in_training():
    """The one check that needs the training values; names and discrete parts are planning's
    (``model_variables.check_bounded_sums``, tests/test_foundation_config.py)."""
    import pytest

    from pipeline_steps.common.errors import ConfigError

    rows = pd.DataFrame({"a": [0.1, 0.5], "b": [-0.2, 0.3]})
    with pytest.raises(ConfigError, match=r"\['b'\] take negative values in the training split \(minimum -0.2\)"):
        PhysicalSupport.fit(rows, bounded_sums=[["a", "b"]])


def test_a_bounded_sum_holds_at_every_stored_precision_and_after_the_float32_cast():
    """The target leaves room for both roundings, to float32 and to the stored bits: with 22-bit parts a
    target that counted the stored bits alone left 3587 of 10^6 rows above the bound (by up to 4e-8)."""
    rng = np.random.default_rng(6)
    names = ["a", "b", "c", "d", "e"]
    for bits in (6, 12, 20, 22, 23):
        training = pd.DataFrame(rng.dirichlet(np.ones(5), 500), columns=names).astype(np.float32)
        if bits < 23:
            training = training.apply(lambda column: _nano_precision(column.to_numpy(), bits))
        support = PhysicalSupport.fit(training, bounded_sums=[names])
        (_, bound), = support.sums
        generated = pd.DataFrame(rng.dirichlet(np.ones(5), 200_000) * rng.uniform(0.99, 1.3, (200_000, 1)),
                                 columns=names)
        held = support.apply(generated).astype(np.float32)  # as generation casts to the file's float32
        assert held.to_numpy(np.float64).sum(axis=1).max() <= bound, bits
