"""Generated rows are held to the training support: range clipped, discrete values snapped; real rows
and the exact inverse are untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_steps.export import run_bundle
from pipeline_steps.preprocess.transforms import ModelTransforms, PhysicalSupport, VariableTransforms, nearest_value


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
