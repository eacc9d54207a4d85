"""CalRatio network: shapes, padding masks, safe-mode reload."""

import os

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.models import calratio_rnn as net
from tests.calratio_samples import synthetic_split

HYPER = net.CalRatioHyperparameters(conv_filters=(6, 4), lstm_units=5, dense_units=(8,), adversary_units=(4,))
FEATURES = {"clusters": 4, "tracks": 3, "muon_segments": 5}


@pytest.fixture(scope="module")
def classifier():
    import keras

    keras.utils.set_random_seed(1)
    return net.build_classifier(5, FEATURES, HYPER, pad_value=0.0)


def _pad(sample, extra):
    """The same jets with ``extra`` more padding slots in every sequence."""
    padded = dict(sample)
    for name in net.SEQUENCE_NAMES:
        n, _, f = sample[name].shape
        padded[name] = np.concatenate([sample[name], np.zeros((n, extra, f), np.float32)], axis=1)
    return padded


def test_output_is_a_probability_per_class_and_adversary_one_per_jet(classifier):
    sample = synthetic_split(7, "main", seed=0)
    probabilities = net.predict(classifier, sample, False, batch_size=3)
    assert probabilities.shape == (7, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    adversary = net.build_adversary(HYPER)
    assert np.asarray(adversary(probabilities)).shape == (7, 1)


def test_padding_does_not_change_a_jets_output(classifier):
    sample = synthetic_split(9, "main", seed=1)
    short = net.predict(classifier, sample, False, batch_size=9)
    long = net.predict(classifier, _pad(sample, 11), False, batch_size=9)
    np.testing.assert_allclose(short, long, atol=1e-6)


def test_real_objects_do_change_the_output(classifier):
    sample = synthetic_split(4, "main", seed=2)
    changed = dict(sample)
    changed["clusters"] = sample["clusters"].copy()
    changed["clusters"][:, 0, :] += 3.0  # the first object is always real (>= 1 object per jet)
    assert not np.allclose(net.predict(classifier, sample, False, 4), net.predict(classifier, changed, False, 4))


def test_llp_parameters_are_an_extra_input():
    hyper = net.CalRatioHyperparameters(conv_filters=(3,), lstm_units=2, dense_units=(4,), use_llp_parameters=True)
    model = net.build_classifier(5, FEATURES, hyper)
    assert net.LLP_INPUT in model.input
    sample = synthetic_split(6, "main", seed=3)
    parameters = net.llp_parameters(sample)
    assert np.isfinite(parameters).all() and parameters.shape == (6, 2)
    assert net.predict(model, sample, True, 6).shape == (6, 3)


def test_keras_file_reloads_in_safe_mode_with_same_outputs(classifier, tmp_path):
    import keras

    path = tmp_path / "model.keras"
    classifier.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    sample = synthetic_split(5, "main", seed=4)
    np.testing.assert_allclose(net.predict(reloaded, sample, False, 5), net.predict(classifier, sample, False, 5), atol=1e-6)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ConfigError, match="lstm_size"):
        net.CalRatioHyperparameters.from_config({"lstm_size": 3})
