"""CalRatio epoch choice: KS candidates, best metric, the reason, the chosen weights."""

import os

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import json

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.train import calratio_selection as selection

HISTORY = pd.DataFrame({
    "epoch": [1, 2, 3, 4, 5],
    "ks_bib": [0.50, 0.25, 0.10, 0.40, 0.20],
    "val_loss": [0.10, 0.80, 0.60, 0.05, 0.70],
    "val_main_acc": [0.9, 0.5, 0.6, 0.95, 0.7],
})


def test_best_candidate_wins_even_if_a_non_candidate_is_better():
    choice = selection.choose_epoch(HISTORY, 0.3, "val_loss")
    assert choice["epoch"] == 3  # epochs 1 and 4 have lower loss but fail the BIB KS cut
    assert choice["candidates"] == [2, 3, 5]
    assert not choice["fallback"]
    assert "lowest val_loss" in choice["reason"] and "ks_bib < 0.3" in choice["reason"]


def test_accuracy_metric_is_maximised():
    choice = selection.choose_epoch(HISTORY, 0.3, "val_main_acc")
    assert choice["epoch"] == 5 and choice["direction"] == "max"


def test_no_candidate_falls_back_to_best_overall_and_says_so():
    choice = selection.choose_epoch(HISTORY, 0.05, "val_loss")
    assert choice["epoch"] == 4 and choice["fallback"] and choice["candidates"] == []
    assert "NO epoch" in choice["reason"]


def test_the_adversarys_own_metrics_run_the_other_way():
    """val_adv_acc had been maximised: the epoch where the adversary told data from MC best was kept."""
    history = HISTORY.assign(val_adv_acc=[0.5, 0.9, 0.55, 0.6, 0.7], val_adv_loss=[0.7, 0.2, 0.65, 0.6, 0.5])
    assert selection.choose_epoch(history, 0.3, "val_adv_acc")["epoch"] == 3  # candidates 2, 3, 5
    assert selection.choose_epoch(history, 0.3, "val_adv_loss")["epoch"] == 3
    assert [selection.metric_direction(m) for m in ("val_loss", "loss", "val_main_acc", "disc_loss")] == [
        "min", "min", "max", "max"]


def test_a_ks_that_no_epoch_could_compute_is_said_as_such():
    choice = selection.choose_epoch(HISTORY.assign(ks_bib=np.nan), 0.3, "val_loss")
    assert choice["fallback"] and "ks_bib could not be computed in any epoch" in choice["reason"]


def test_an_epoch_whose_classifier_collapsed_to_one_answer_is_never_chosen():
    """A diverged run's constant output has KS 0 and, here, the lowest loss: it had been kept."""
    history = HISTORY.assign(val_signal_spread=[0.9, 0.8, 0.0, 0.7, 0.6])
    history.loc[2, "val_loss"] = -74.8
    choice = selection.choose_epoch(history, 0.3, "val_loss")
    assert choice["epoch"] == 5 and choice["candidates"] == [2, 5]
    with pytest.raises(InputError, match="in every epoch the classifier gives all validation jets one signal"):
        selection.choose_epoch(history.assign(val_signal_spread=0.0), 0.3, "val_loss")


def test_unknown_metric_names_the_column():
    with pytest.raises(ConfigError, match="val_auc"):
        selection.choose_epoch(HISTORY, 0.3, "val_auc")


def test_run_writes_selection_and_chosen_model_with_that_epochs_weights(tmp_path):
    import keras

    from pipeline_steps.models import calratio_rnn as net
    from pipeline_steps.train.calratio_rnn import epoch_weights_path

    hyper = net.CalRatioHyperparameters(conv_filters=(2,), lstm_units=2, dense_units=(3,))
    features = {"clusters": 2, "tracks": 2, "muon_segments": 2}
    keras.utils.set_random_seed(0)
    epoch_model = net.build_classifier(3, features, hyper)
    (tmp_path / "ckpt").mkdir()
    epoch_model.save_weights(epoch_weights_path(tmp_path / "ckpt", 3))
    final_model = net.build_classifier(3, features, hyper)  # other random weights
    final_model.save(tmp_path / "final.keras")
    HISTORY.to_csv(tmp_path / "history.csv", index=False)
    selection.run(history=tmp_path / "history.csv", final_model=tmp_path / "final.keras",
                  selection=tmp_path / "selection.json", chosen_model=tmp_path / "chosen.keras",
                  model={"training": {"ks_threshold": 0.3, "selection_metric": "val_loss"}}, checkpoint_dir=tmp_path / "ckpt")
    assert json.loads((tmp_path / "selection.json").read_text())["epoch"] == 3
    chosen = keras.saving.load_model(tmp_path / "chosen.keras", safe_mode=True)
    for a, b in zip(chosen.get_weights(), epoch_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_of_another_architecture_are_refused_naming_the_checkpoint(tmp_path):
    """The archive is assembled without Keras: a checkpoint of other layer sizes must not slip into it."""
    import keras

    from pipeline_steps.models import calratio_rnn as net

    features = {"clusters": 2, "tracks": 2, "muon_segments": 2}
    keras.utils.set_random_seed(0)
    net.build_classifier(3, features, net.CalRatioHyperparameters(conv_filters=(2,), lstm_units=2, dense_units=(3,))
                         ).save(tmp_path / "final.keras")
    other = net.build_classifier(3, features, net.CalRatioHyperparameters(conv_filters=(2,), lstm_units=3,
                                                                           dense_units=(3,)))
    other.save_weights(tmp_path / "epoch_004.weights.h5")
    with pytest.raises(InputError, match=r"epoch_004.weights.h5: its variables are not those of .*final.keras"):
        selection.save_chosen_model(tmp_path / "final.keras", tmp_path / "epoch_004.weights.h5",
                                    tmp_path / "chosen.keras")
    assert not (tmp_path / "chosen.keras").exists()


def test_a_damaged_checkpoint_or_archive_is_an_input_error_naming_it(tmp_path):
    import keras

    from pipeline_steps.models import calratio_rnn as net

    keras.utils.set_random_seed(0)
    model = net.build_classifier(3, {"clusters": 2, "tracks": 2, "muon_segments": 2},
                                 net.CalRatioHyperparameters(conv_filters=(2,), lstm_units=2, dense_units=(3,)))
    model.save(tmp_path / "final.keras")
    model.save_weights(tmp_path / "epoch_002.weights.h5")
    whole = (tmp_path / "epoch_002.weights.h5").read_bytes()
    (tmp_path / "epoch_002.weights.h5").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    arguments = (tmp_path / "final.keras", tmp_path / "epoch_002.weights.h5", tmp_path / "chosen.keras")
    with pytest.raises(InputError, match=r"epoch_002.weights.h5: cannot be read as Keras weights"):
        selection.save_chosen_model(*arguments)
    (tmp_path / "epoch_002.weights.h5").write_bytes(whole)
    (tmp_path / "final.keras").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"final.keras: cannot be read as a .keras archive"):
        selection.save_chosen_model(*arguments)
    assert not (tmp_path / "chosen.keras").exists()


def test_missing_checkpoint_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="epoch_004"):
        selection.save_chosen_model(tmp_path / "final.keras", tmp_path / "epoch_004.weights.h5", tmp_path / "chosen.keras")


def test_a_scan_ranked_by_validation_loss_reads_the_selected_epoch_and_never_a_collapsed_one():
    import math

    from pipeline_steps.scan.ranking import metric_value

    history = HISTORY.assign(val_signal_spread=[0.9, 0.8, 0.0, 0.7, float("nan")])
    history.loc[2, "val_loss"] = -74.8  # the collapsed epoch
    chosen = selection.choose_epoch(history, 0.3, "val_loss")["epoch"]
    assert chosen == 5  # a missing spread is kept
    value, _, score = metric_value("validation_loss", "calratio_rnn", {}, history, kept_epoch=chosen)
    assert (value, score) == (0.70, 0.70)  # the kept model's loss, not the history's best (-74.8 or 0.05)
    assert math.isnan(metric_value("validation_loss", "calratio_rnn", {}, history, kept_epoch=3)[0])
