"""Learning-rate schedules (pure values per law), early stop on plateau, and resuming mid-schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.models.flow import build_flow
from pipeline_steps.train.flow import FlowData, TrainingSettings, fit, make_spec
from pipeline_steps.train.schedule import EarlyStopping, LearningRateSchedule

torch.set_num_threads(1)

# the event-generator's three-step schedule, scaled down by 1000
EVENT_GENERATOR = [
    {"length": 10, "unit": "steps", "law": "linear", "start": 1e-2, "end": 1e-3},
    {"length": 490, "unit": "steps", "law": "constant", "start": 1e-3},
    {"length": 500, "unit": "steps", "law": "polynomial", "start": 1e-3, "end": 1e-6, "degree": 2},
]


def test_each_law_at_chosen_steps():
    schedule = LearningRateSchedule.from_config(EVENT_GENERATOR, steps_per_epoch=1)
    assert schedule.total_steps == 1000
    assert schedule.lr_at(0) == pytest.approx(1e-2)
    assert schedule.lr_at(5) == pytest.approx(5.5e-3)              # linear half way
    assert schedule.lr_at(10) == pytest.approx(1e-3)               # constant step starts
    assert schedule.lr_at(499) == pytest.approx(1e-3)
    assert schedule.lr_at(500) == pytest.approx(1e-3)              # polynomial at its start
    assert schedule.lr_at(750) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.25)  # (1 - 1/2)^2
    assert schedule.lr_at(999) == pytest.approx(1e-6 + (1e-3 - 1e-6) * (1 / 500) ** 2)
    assert schedule.lr_at(10_000) == pytest.approx(1e-6)           # past the end: the last rate is held


def test_cosine_with_and_without_warm_restarts():
    plain = LearningRateSchedule.from_config([{"length": 100, "law": "cosine", "start": 1.0, "end": 0.0}], 1)
    assert [plain.lr_at(s) for s in (0, 50, 100)] == pytest.approx([1.0, 0.5, 0.0])
    restarts = LearningRateSchedule.from_config(
        [{"length": 4, "unit": "epochs", "law": "cosine", "start": 1.0, "end": 0.0, "period": 2}], steps_per_epoch=10)
    assert restarts.total_steps == 40
    assert restarts.lr_at(10) == pytest.approx(0.5)   # half a 20-update cycle
    assert restarts.lr_at(20) == pytest.approx(1.0)   # restart
    assert restarts.lr_at(30) == pytest.approx(0.5)
    by_count = LearningRateSchedule.from_config([{"length": 40, "law": "cosine", "start": 1.0, "end": 0.0, "restarts": 1}], 1)
    assert by_count.lr_at(20) == pytest.approx(1.0) and by_count.lr_at(10) == pytest.approx(0.5)


def test_epoch_lengths_use_updates_per_epoch():
    schedule = LearningRateSchedule.from_config(
        [{"length": 2, "unit": "epochs", "law": "constant", "start": 0.1},
         {"length": 3, "unit": "steps", "law": "linear", "start": 0.1, "end": 0.0}], steps_per_epoch=7)
    assert schedule.total_steps == 17
    assert schedule.lr_at(13) == pytest.approx(0.1) and schedule.lr_at(14) == pytest.approx(0.1)
    assert schedule.lr_at(15) == pytest.approx(0.1 * 2 / 3)


@pytest.mark.parametrize("entry, words", [
    ({"length": 3, "law": "exponential", "start": 1.0}, "law"),
    ({"length": 3, "law": "linear", "start": 1.0}, "end"),
    ({"length": 3, "law": "constant", "start": 1.0, "unit": "hours"}, "unit"),
    ({"law": "constant", "start": 1.0}, "length"),
])
def test_bad_steps_are_named(entry, words):
    with pytest.raises(ConfigError, match=rf"training\.schedule\[0\].*{words}"):
        LearningRateSchedule.from_config([entry], 1)


def test_early_stopping_on_plateau():
    stopper = EarlyStopping.from_config({"patience": 2, "min_delta": 0.01}, "validation_loss")
    rows = [{"validation_loss": v} for v in (3.0, 2.0, 1.0)]
    assert not stopper.should_stop(rows)
    assert not stopper.should_stop(rows + [{"validation_loss": 0.995}])
    assert stopper.should_stop(rows + [{"validation_loss": 0.995}, {"validation_loss": 1.2}])
    assert not stopper.should_stop(rows + [{"validation_loss": 1.2}, {"validation_loss": 0.5}])
    maximise = EarlyStopping.from_config({"metric": "auc", "patience": 1, "mode": "max"}, "validation_loss")
    assert maximise.should_stop([{"auc": 0.7}, {"auc": 0.6}]) and not maximise.should_stop([{"auc": 0.6}, {"auc": 0.7}])
    with pytest.raises(ConfigError, match="not a history column"):
        stopper.should_stop([{"loss": 1.0}] * 3)


# --- the flow trainer follows the schedule per update and resumes mid-schedule ----------------------

MODEL = {"conditions": ["c"], "targets": ["y1", "y2"],
         "hyperparameters": {"n_bins": 4, "hidden_dim": 16, "n_blocks": 1, "activation": "relu", "batch_norm": False}}
SCHEDULE = [{"length": 1, "unit": "epochs", "law": "linear", "start": 4e-3, "end": 1e-3},
            {"length": 5, "unit": "steps", "law": "cosine", "start": 1e-3, "end": 1e-4, "period": 2}]


def _data(n, seed):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    y = np.concatenate([2 * c + 0.5 * rng.normal(size=(n, 1)), -c + 0.3 * rng.normal(size=(n, 1))], axis=1)
    return FlowData(c, y.astype(np.float32), np.ones(n, np.float32))


def _train(folder, until=None, epochs=4, **training):
    train, validation = _data(256, 1), _data(64, 2)
    spec = make_spec(MODEL, train)
    torch.manual_seed(0)
    model = build_flow(spec)
    settings = TrainingSettings(epochs=epochs, batch_size=64, seed=0, checkpoint_every=1, **training)
    history = fit(model, train, validation, settings, folder, torch.device("cpu"), fingerprint="f", until_epoch=until)
    return model, history


def test_flow_follows_the_schedule_per_update(tmp_path):
    """4 updates per epoch: epoch starts are updates 0, 4, 8, 12 of the schedule."""
    _, history = _train(tmp_path / "a", schedule=tuple(SCHEDULE))
    expected = LearningRateSchedule.from_config(SCHEDULE, steps_per_epoch=4)
    assert [row["learning_rate"] for row in history] == pytest.approx([expected.lr_at(s) for s in (0, 4, 8, 12)])
    assert history[1]["learning_rate"] == pytest.approx(1e-3) and history[3]["learning_rate"] == pytest.approx(1e-4)


def test_flow_resumed_mid_schedule_continues_where_it_was(tmp_path):
    straight, straight_history = _train(tmp_path / "a", schedule=tuple(SCHEDULE))
    _, first = _train(tmp_path / "b", until=2, schedule=tuple(SCHEDULE))
    assert len(first) == 2
    resumed, resumed_history = _train(tmp_path / "b", schedule=tuple(SCHEDULE))
    assert [r["learning_rate"] for r in resumed_history] == [r["learning_rate"] for r in straight_history]
    assert [r["train_loss"] for r in resumed_history] == [r["train_loss"] for r in straight_history]
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, atol=0, rtol=0)


def test_flow_without_schedule_keeps_the_epoch_scheduler(tmp_path):
    _, history = _train(tmp_path / "a", learning_rate=1e-3)
    cosine = [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [r["learning_rate"] for r in history] == pytest.approx(cosine)
    assert "early_stop" not in history[-1]


def test_flow_early_stop_is_recorded_and_survives_a_resume(tmp_path):
    # a learning rate of 0 after the first update: no improvement, the plateau stops the run
    schedule = ({"length": 1, "law": "constant", "start": 1e-3}, {"length": 1, "law": "constant", "start": 0.0})
    stopping = {"patience": 1, "min_delta": 0.0}
    _, history = _train(tmp_path / "a", epochs=6, schedule=schedule, early_stopping=stopping)
    assert len(history) < 6 and history[-1]["early_stop"] == 1
    assert all(row["early_stop"] == 0 for row in history[:-1])
    _, again = _train(tmp_path / "a", epochs=6, schedule=schedule, early_stopping=stopping)
    assert len(again) == len(history)


# --- the TensorFlow trainers ----------------------------------------------------------------------

TF_SCHEDULE = [{"length": 1, "unit": "epochs", "law": "linear", "start": 4e-3, "end": 1e-3},
               {"length": 3, "unit": "steps", "law": "polynomial", "start": 1e-3, "end": 1e-4, "degree": 2}]


class _Interrupt(Exception):
    pass


def test_covariance_gan_resumed_mid_schedule_continues_where_it_was(tmp_path):
    pytest.importorskip("tensorflow")
    from tests.test_covariance_gan import model_slice, splits, weights
    from pipeline_steps.train import covariance_gan as gan

    gan.configure_tensorflow(1)
    train_split, validation_split = splits(n_train=256, n_validation=64)  # 2 updates per epoch of 128
    model = model_slice(epochs=3, checkpoint_every=1, batch_size=128)
    model["training"]["schedule"] = TF_SCHEDULE
    config = gan.GanTrainingConfig.from_model(model, seed=5)

    def interrupt_at_2(epoch, row):
        if epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        gan.train_gan(config, train_split, validation_split, tmp_path / "ckpt", on_epoch_end=interrupt_at_2)
    resumed = gan.train_gan(config, train_split, validation_split, tmp_path / "ckpt")
    straight = gan.train_gan(config, train_split, validation_split, tmp_path / "straight")
    expected = LearningRateSchedule.from_config(TF_SCHEDULE, steps_per_epoch=2)
    rates = [row["learning_rate"] for row in straight.history]
    assert rates == pytest.approx([expected.lr_at(s) for s in (0, 2, 4)])
    assert [row["learning_rate"] for row in resumed.history] == rates
    assert float(resumed.networks.generator_optimizer.learning_rate.numpy()) == pytest.approx(expected.lr_at(5))
    for w1, w2 in zip(weights(resumed), weights(straight), strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_covariance_gan_without_schedule_keeps_its_fingerprint():
    pytest.importorskip("tensorflow")
    from tests.test_covariance_gan import model_slice
    from pipeline_steps.train import covariance_gan as gan

    fingerprint = gan.GanTrainingConfig.from_model(model_slice(epochs=2), seed=5).fingerprint("x")
    assert "schedule" not in fingerprint and "early_stopping" not in fingerprint


def test_covariance_gan_fingerprint_holds_its_early_stopping():
    """Adding patience 2 had resumed a finished 30-epoch model unchanged (from scratch it stops at epoch 4),
    and removing it again kept the 4-epoch model for a config asking for 30."""
    pytest.importorskip("tensorflow")
    from tests.test_covariance_gan import model_slice
    from pipeline_steps.train import covariance_gan as gan

    plain = model_slice(epochs=30)
    stopping = model_slice(epochs=30)
    stopping["training"]["early_stopping"] = {"patience": 2}
    fingerprints = [gan.GanTrainingConfig.from_model(m, seed=5).fingerprint("x") for m in (plain, stopping)]
    assert fingerprints[0] != fingerprints[1] and fingerprints[1]["early_stopping"]["patience"] == 2


@pytest.mark.slow
def test_calratio_resumed_mid_schedule_continues_where_it_was(tmp_path):
    pytest.importorskip("tensorflow")
    from tests.test_calratio_train import HYPER, _samples, _weights
    from pipeline_steps.train import calratio_rnn as calratio

    def cfg(epochs):
        return calratio.CalRatioTrainingConfig(epochs=epochs, num_splits=2, batch_size=32, seed=7,
                                               schedule=tuple(TF_SCHEDULE))

    samples = _samples()
    straight, straight_history = calratio.train(samples, HYPER, cfg(3), tmp_path / "straight")
    calratio.train(samples, HYPER, cfg(2), tmp_path / "interrupted")
    resumed, resumed_history = calratio.train(samples, HYPER, cfg(3), tmp_path / "interrupted")
    expected = LearningRateSchedule.from_config(TF_SCHEDULE, steps_per_epoch=2)
    assert list(straight_history["learning_rate"]) == pytest.approx([expected.lr_at(s) for s in (0, 2, 4)])
    np.testing.assert_allclose(resumed_history.to_numpy(), straight_history.to_numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
