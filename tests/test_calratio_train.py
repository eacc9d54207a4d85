"""CalRatio adversarial training: which weights each step moves, metrics, checkpoints, resume."""

import dataclasses
import os

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.models import calratio_rnn as net
from pipeline_steps.train import calratio_rnn as training
from tests.calratio_samples import synthetic_split

HYPER = net.CalRatioHyperparameters(conv_filters=(4,), lstm_units=4, dense_units=(6,), adversary_units=(4,),
                                    adversary_lambda=2.0)


def _samples(n_main=60, n_cr=40):
    return {
        "train": synthetic_split(n_main, "main", seed=1),
        "validation": synthetic_split(n_main // 2, "main", seed=2),
        "cr_train": synthetic_split(n_cr, "cr", seed=3),
        "cr_validation": synthetic_split(n_cr, "cr", seed=4),  # 20 data, 20 MC jets: a KS needs n_eff 10 each
    }


def _cfg(epochs):
    return training.CalRatioTrainingConfig(epochs=epochs, num_splits=2, batch_size=32, seed=7)


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


def test_the_parameterised_classifier_trains_on_unequal_mini_batches_and_predicts_as_eager(tmp_path):
    """The steps and the evaluation run as graphs traced once (``common/traced_once.py``): mini-batches of 21/20
    and 14/13 jets and the extra LLP input must go through them, and the traced inference must give the eager
    call's probabilities. Tolerance: a probability's float32 rounding error grows at most about linearly with
    the ~10^3 sequential operations from input to output (70 LSTM steps of a few each, the convolutions, the
    dense layers), u = 6e-8 each: <= 6e-5; 1e-4."""
    hyper = dataclasses.replace(HYPER, use_llp_parameters=True)
    samples = _samples(n_main=61, n_cr=41)
    cfg = training.CalRatioTrainingConfig(epochs=1, num_splits=3, batch_size=16, seed=7)
    classifier, history = training.train(samples, hyper, cfg, tmp_path)
    assert np.isfinite(history[["loss", "val_loss", "val_main_loss"]].to_numpy()).all()
    validation = samples["validation"]
    eager = [np.asarray(classifier(net.model_inputs(validation, True, slice(start, start + 16)), training=False))
             for start in range(0, len(validation["jets"]), 16)]
    np.testing.assert_allclose(net.predict(classifier, validation, True, 16), np.concatenate(eager), rtol=0, atol=1e-4)


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


def test_learning_rates_per_network_under_training():
    cfg = training.CalRatioTrainingConfig.from_model_config(
        {"training": {"epochs": 1, "batch_size": 8, "learning_rate": {"adversary": 5e-3}}}, seed=1)
    assert (cfg.learning_rate, cfg.adversary_learning_rate) == (2e-3, 5e-3)  # main keeps its default
    trainer = training.build_trainer(_samples(), HYPER, cfg)
    assert float(trainer.adversary_optimizer.learning_rate.numpy()) == pytest.approx(5e-3)


@pytest.mark.parametrize("model, words", [
    ({"training": {"epochs": 1, "batch_size": 8, "checkpoint_every": 2}}, r"training\.checkpoint_every.*calratio_rnn"),
    ({"training": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3}}, r"training\.learning_rate.*mapping"),
    ({"training": {"epochs": 1, "batch_size": 8, "learning_rate": {"classifier": 1e-3}}}, r"learning_rate\.classifier"),
])
def test_unknown_training_key_or_learning_rate_is_a_config_error(model, words):
    with pytest.raises(ConfigError, match=words):
        training.CalRatioTrainingConfig.from_model_config(model, seed=1)


def test_learning_rate_under_hyperparameters_names_its_new_key():
    with pytest.raises(ConfigError, match=r"hyperparameters\.adversary_learning_rate.*training\.learning_rate\.adversary"):
        net.CalRatioHyperparameters.from_config({"adversary_learning_rate": 1e-3})


def test_missing_array_names_split_and_key():
    samples = _samples()
    del samples["cr_train"]["is_data"]
    with pytest.raises(InputError, match="cr_train.*is_data"):
        training.train(samples, HYPER, _cfg(1), "unused")


def test_the_checkpoint_fingerprint_covers_every_input_array_and_early_stopping():
    """Tracks scaled by 3 in an ingest part had resumed the old checkpoint and written the old model
    byte for byte: only the jet features were in the fingerprint. A new early stop must not resume a
    checkpoint trained past it, nor a run that stopped early go on as if it had not."""
    from dataclasses import replace

    samples = _samples()
    base = training._fingerprint(HYPER, _cfg(3), samples)
    assert training._fingerprint(HYPER, _cfg(9), samples) == base  # epochs can grow
    scaled = {split: dict(arrays) for split, arrays in samples.items()}
    scaled["train"]["tracks"] = scaled["train"]["tracks"] * 3
    assert training._fingerprint(HYPER, _cfg(3), scaled) != base
    relabelled = {split: dict(arrays) for split, arrays in samples.items()}
    relabelled["cr_train"]["mc_weight"] = relabelled["cr_train"]["mc_weight"] * 2
    assert training._fingerprint(HYPER, _cfg(3), relabelled) != base
    stopping = replace(_cfg(3), early_stopping={"metric": "val_loss", "patience": 2, "min_delta": 0.0, "mode": "min"})
    assert training._fingerprint(HYPER, stopping, samples) != base


def test_the_loss_of_a_batch_of_cancelling_nlo_weights_stays_within_its_jets_losses():
    """Divided by the weights' sum, an all-negative batch had given a loss of 2e27 and a zero-sum one 1e26,
    finite, so the training ran on; divided by the sum of |w| it is bounded by the per-jet losses."""
    import keras

    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]], np.float32)
    labels = np.array([0, 1, 2, 1])
    per_jet = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
    for weights in ([1.0, -1.0, 1.0, -1.0], [-1.0, -2.0, -0.5, -1.0], [1.0, 1.0, 1.0, 1.0]):
        loss, accuracy = training.classifier_loss(probabilities, labels, np.array(weights, np.float32))
        assert abs(float(loss)) <= per_jet.max() + 1e-6 and abs(float(accuracy)) <= 1.0 + 1e-6, weights
    positive, _ = training.classifier_loss(probabilities, labels, np.ones(4, np.float32))
    assert float(positive) == pytest.approx(per_jet.mean(), rel=1e-6)  # positive weights: the plain mean


def test_more_mini_batches_than_training_jets_is_refused_naming_the_key(tmp_path):
    """287 CR training jets with num_splits 300 had stopped in TensorFlow: 'input depth must be evenly
    divisible by filter depth: 12 vs 32'."""
    import dataclasses

    with pytest.raises(ConfigError, match=r"training.num_splits: 50 mini-batches per epoch, more than the 40 jets "
                                          r"of the calratio cr_train split"):
        training.train(_samples(), HYPER, dataclasses.replace(_cfg(1), num_splits=50), tmp_path)
