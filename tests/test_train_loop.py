"""The shared epoch loop: checkpoint cadence, early stop recorded and honoured on resume, resume point."""

from pipeline_steps.train.loop import run_epochs
from pipeline_steps.train.schedule import EarlyStopping


def _run(history, losses, epochs, checkpoint_every=1, stopper=None, until_epoch=None):
    saved = []
    rows = run_epochs(history, epochs=epochs, checkpoint_every=checkpoint_every, stopper=stopper,
                      run_epoch=lambda epoch, history: {"epoch": epoch, "loss": losses[epoch - 1]},
                      save=lambda rows: saved.append(len(rows)), until_epoch=until_epoch)
    return rows, saved


def test_checkpoints_every_n_epochs_and_after_the_last():
    rows, saved = _run([], [5, 4, 3, 2, 1], epochs=5, checkpoint_every=2)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5] and saved == [2, 4, 5]


def test_resume_continues_after_the_restored_epochs_and_until_epoch_checkpoints():
    first, saved = _run([], [5, 4, 3, 2], epochs=4, checkpoint_every=10, until_epoch=2)
    assert [r["epoch"] for r in first] == [1, 2] and saved == [2]
    rows, _ = _run(first, [5, 4, 3, 2], epochs=4)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]


def test_early_stop_is_recorded_checkpointed_and_not_trained_past_on_resume():
    stopper = EarlyStopping(metric="loss", patience=2)
    rows, saved = _run([], [3, 1, 2, 2, 0], epochs=5, checkpoint_every=10, stopper=stopper)
    assert [r["early_stop"] for r in rows] == [0, 0, 0, 1] and saved == [4]
    again, saved = _run(rows, [3, 1, 2, 2, 0], epochs=5, stopper=stopper)
    assert len(again) == 4 and saved == []


def test_a_loss_that_is_not_finite_stops_the_run_at_its_epoch_without_a_checkpoint():
    import math

    import pytest

    from pipeline_steps.common.errors import InputError

    saved = []
    with pytest.raises(InputError, match=r"epoch 3/5: the training diverged, loss = inf; lower the learning rate"):
        run_epochs([], epochs=5, checkpoint_every=1, stopper=None, finite=("loss",),
                   run_epoch=lambda epoch, history: {"epoch": epoch, "loss": [2.0, 1.0, math.inf, 0.5, 0.1][epoch - 1]},
                   save=lambda rows: saved.append(len(rows)))
    assert saved == [1, 2]  # the diverged epoch is never checkpointed; a rerun resumes before it
