"""CalRatio adversarial training: KS, which weights each step moves, metrics, checkpoints, resume."""

import os

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest
from scipy import stats

from pipeline_steps.common.errors import InputError
from pipeline_steps.models import calratio_rnn as net
from pipeline_steps.train import calratio_rnn as training

HYPER = net.CalRatioHyperparameters(conv_filters=(4,), lstm_units=4, dense_units=(6,), adversary_units=(4,),
                                    adversary_lambda=2.0)


def _samples(n_main=60, n_cr=40):
    return {
        "train": training.synthetic_split(n_main, "main", seed=1),
        "validation": training.synthetic_split(n_main // 2, "main", seed=2),
        "cr_train": training.synthetic_split(n_cr, "cr", seed=3),
        "cr_validation": training.synthetic_split(n_cr // 2, "cr", seed=4),
    }


def _cfg(epochs):
    return training.CalRatioTrainingConfig(epochs=epochs, num_splits=2, batch_size=32, seed=7, threads=1)


def test_unweighted_ks_equals_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(0.3, 1.2, size=150)
    assert training.weighted_ks(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    ties_a, ties_b = rng.integers(0, 5, 100).astype(float), rng.integers(0, 6, 80).astype(float)
    assert training.weighted_ks(ties_a, ties_b) == pytest.approx(stats.ks_2samp(ties_a, ties_b).statistic, abs=1e-12)


def test_integer_weights_equal_repeated_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.normal(0.5, size=40)
    weights_a, weights_b = rng.integers(1, 4, 50), rng.integers(1, 4, 40)
    expected = stats.ks_2samp(np.repeat(a, weights_a), np.repeat(b, weights_b)).statistic
    assert training.weighted_ks(a, b, weights_a, weights_b) == pytest.approx(expected, abs=1e-12)


def test_ks_per_output_separates_data_from_mc():
    probabilities = np.array([[0.1, 0.2, 0.7], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    ks = training.ks_per_output(probabilities, np.array([1, 1, 0, 0]), np.ones(4))
    assert ks == {"ks_sig": 0.0, "ks_qcd": 1.0, "ks_bib": 1.0}


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _changed(before, after):
    return any(not np.array_equal(b, a) for b, a in zip(before, after))


def test_adversary_step_moves_only_the_adversary_and_main_step_only_the_classifier():
    samples = _samples()
    trainer = training.build_trainer(samples, HYPER, _cfg(1))
    cr, main = samples["cr_train"], samples["train"]
    cr_inputs = net.model_inputs(cr, False)
    classifier_before, adversary_before = _weights(trainer.classifier), _weights(trainer.adversary)
    trainer.adversary_step(cr_inputs, cr["is_data"], cr["weight"])
    assert not _changed(classifier_before, _weights(trainer.classifier))
    assert _changed(adversary_before, _weights(trainer.adversary))
    adversary_after = _weights(trainer.adversary)
    trainer.main_step(net.model_inputs(main, False), main["label"], main["mc_weight"], cr_inputs, cr["is_data"], cr["weight"])
    assert _changed(classifier_before, _weights(trainer.classifier))
    assert not _changed(adversary_after, _weights(trainer.adversary))


def test_training_writes_whole_epoch_metrics_and_a_checkpoint_per_epoch(tmp_path):
    _, history = training.train(_samples(), HYPER, _cfg(2), tmp_path)
    assert list(history["epoch"]) == [1, 2]
    for column in ("loss", "main_loss", "adv_loss", "disc_loss", "main_acc", "val_loss", "val_main_acc", "ks_sig", "ks_qcd", "ks_bib"):
        assert np.isfinite(history[column]).all(), column
    np.testing.assert_allclose(history["loss"], history["main_loss"] - HYPER.adversary_lambda * history["adv_loss"], rtol=1e-6)
    assert ((history[["ks_sig", "ks_qcd", "ks_bib"]] >= 0) & (history[["ks_sig", "ks_qcd", "ks_bib"]] <= 1)).all().all()
    assert training.epoch_weights_path(tmp_path, 1).exists() and training.epoch_weights_path(tmp_path, 2).exists()


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted_training(tmp_path):
    samples = _samples()
    straight, straight_history = training.train(samples, HYPER, _cfg(3), tmp_path / "straight")
    training.train(samples, HYPER, _cfg(2), tmp_path / "interrupted")
    resumed, resumed_history = training.train(samples, HYPER, _cfg(3), tmp_path / "interrupted")
    assert list(resumed_history["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(resumed_history.to_numpy(), straight_history.to_numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_missing_array_names_split_and_key():
    samples = _samples()
    del samples["cr_train"]["is_data"]
    with pytest.raises(InputError, match="cr_train.*is_data"):
        training.train(samples, HYPER, _cfg(1), "unused")
