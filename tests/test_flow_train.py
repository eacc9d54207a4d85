"""Flow training: learns a known conditional law, resumes bit-for-bit, is deterministic, and the rule's
entry point writes loadable outputs from real Parquet splits (SHiP categories and weights included)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.models.flow import Sampler, build_flow, load_sampler
from pipeline_steps.train.flow import DeviceLoader, FlowData, TrainingSettings, fit, make_spec, read_split, run

torch.set_num_threads(1)
CPU = torch.device("cpu")
MODEL = {"conditions": ["c"], "targets": ["y1", "y2"],
         "hyperparameters": {"n_bins": 8, "hidden_dim": 32, "n_blocks": 1, "activation": "relu", "batch_norm": False}}


def _gaussian_data(n: int, seed: int) -> FlowData:
    """y1 ~ N(2c, 0.5), y2 ~ N(-c, 0.3), c ~ U(-1, 1)."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    y = np.concatenate([2 * c + 0.5 * rng.normal(size=(n, 1)), -c + 0.3 * rng.normal(size=(n, 1))], axis=1)
    return FlowData(c, y.astype(np.float32), np.ones(n, np.float32))


def _train(tmp_path, epochs=3, seed=0, until=None, data_rows=600, checkpoint="ckpt", batch_norm=False):
    train, validation = _gaussian_data(data_rows, 1), _gaussian_data(200, 2)
    model_config = {**MODEL, "hyperparameters": {**MODEL["hyperparameters"], "batch_norm": batch_norm}}
    spec = make_spec(model_config, train)
    torch.manual_seed(seed)
    model = build_flow(spec)
    settings = TrainingSettings(epochs=epochs, batch_size=128, seed=seed, learning_rate=3e-3, checkpoint_every=1)
    history = fit(model, train, validation, settings, tmp_path / checkpoint, CPU, fingerprint="f", until_epoch=until)
    return model, history


def test_training_learns_the_conditional_means_and_widths(tmp_path):
    """Per bin of c the generated mean is within 0.1 of the truth and the width within 15 %."""
    train, validation = _gaussian_data(4000, 1), _gaussian_data(500, 2)
    torch.manual_seed(0)
    model = build_flow(make_spec(MODEL, train))
    settings = TrainingSettings(epochs=12, batch_size=256, seed=0, learning_rate=3e-3, checkpoint_every=100)
    history = fit(model, train, validation, settings, tmp_path / "ckpt", CPU)
    # the optimum is the entropy of the two Gaussians: 0.726 + 0.215 = 0.941 nats per row
    assert history[0]["validation_loss"] > 1.1 > 1.0 > history[-1]["validation_loss"]
    sampler = Sampler(model, CPU)
    for c in (-0.75, -0.25, 0.25, 0.75):
        generated = sampler.sample(np.full((4000, 1), c, np.float32), seed=5)
        np.testing.assert_allclose(generated.mean(axis=0), [2 * c, -c], atol=0.1)
        np.testing.assert_allclose(generated.std(axis=0), [0.5, 0.3], rtol=0.15)


def test_a_flow_whose_loss_is_nan_stops_at_its_epoch_naming_the_losses(tmp_path):
    """Weights gone NaN (as in a diverged run; zuko's bounded splines keep this small flow finite even at a
    learning rate of 1e30, so the NaN is put in by hand): the run stops after epoch 1, nothing checkpointed."""
    train, validation = _gaussian_data(600, 1), _gaussian_data(200, 2)
    torch.manual_seed(0)
    model = build_flow(make_spec(MODEL, train))
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    settings = TrainingSettings(epochs=3, batch_size=128, seed=0, learning_rate=3e-3, checkpoint_every=1)
    with pytest.raises(InputError, match=r"epoch 1/3: the training diverged, train_loss = nan, validation_loss = nan"):
        fit(model, train, validation, settings, tmp_path / "ckpt", CPU)
    assert not any((tmp_path / "ckpt").glob("*"))


def test_resume_after_interruption_gives_the_uninterrupted_run(tmp_path):
    straight, straight_history = _train(tmp_path, epochs=4, checkpoint="a")
    _, first_half = _train(tmp_path, epochs=4, checkpoint="b", until=2)
    assert len(first_half) == 2 and (tmp_path / "b" / "checkpoint.pt").exists()
    resumed, resumed_history = _train(tmp_path, epochs=4, checkpoint="b", seed=0)
    assert [r["train_loss"] for r in resumed_history] == [r["train_loss"] for r in straight_history]
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, atol=0, rtol=0)


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    _train(tmp_path, epochs=2, checkpoint="c")
    train, validation = _gaussian_data(600, 1), _gaussian_data(200, 2)
    model = build_flow(make_spec(MODEL, train))
    settings = TrainingSettings(epochs=2, batch_size=128, seed=0, learning_rate=3e-3)
    history = fit(model, train, validation, settings, tmp_path / "c", CPU, fingerprint="other")
    assert len(history) == 2 and history[0]["epoch"] == 1


@pytest.mark.parametrize("training, words", [
    ({"epochs": 2, "batch_size": 8, "learnin_rate": 1e-3}, r"training\.learnin_rate.*kind flow"),
    ({"epochs": 2, "batch_size": 8, "num_splits": 4}, r"training\.num_splits.*kind flow"),
    ({"epochs": 2, "batch_size": 8, "learning_rate": {"main": 1e-3}}, r"training\.learning_rate.*positive number"),
])
def test_unknown_training_key_or_a_rate_per_network_is_a_config_error(training, words):
    with pytest.raises(ConfigError, match=words):
        TrainingSettings.from_config(training, seed=0)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    first, history = _train(tmp_path, epochs=2, checkpoint="d1")
    second, _ = _train(tmp_path, epochs=2, checkpoint="d2")
    third, _ = _train(tmp_path, epochs=2, checkpoint="d3", seed=1)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, atol=0, rtol=0)
    assert any(not torch.equal(third.state_dict()[k], v) for k, v in first.state_dict().items() if v.is_floating_point())
    assert history[1]["validation_loss_last5"] == pytest.approx(np.mean([h["validation_loss"] for h in history]))


def test_batch_norm_variant_trains_and_samples(tmp_path):
    model, history = _train(tmp_path, epochs=2, checkpoint="bn", batch_norm=True, data_rows=257)  # last batch: 1 row
    assert np.isfinite([h["train_loss"] for h in history]).all()
    assert np.isfinite(Sampler(model, CPU).sample(np.zeros((10, 1), np.float32), seed=0)).all()


def test_device_loader_visits_every_row_once_per_epoch():
    data = FlowData(np.arange(10, dtype=np.float32)[:, None], np.arange(10, dtype=np.float32)[:, None] * 2,
                    np.ones(10, np.float32))
    loader = DeviceLoader(data, batch_size=3, device=CPU)
    batches = list(loader.epoch(torch.Generator().manual_seed(0)))
    assert [len(b[0]) for b in batches] == [3, 3, 3, 1]
    conditions = torch.cat([b[0] for b in batches])[:, 0]
    assert sorted(conditions.tolist()) == list(range(10)) and conditions.tolist() != list(range(10))
    torch.testing.assert_close(torch.cat([b[1] for b in batches])[:, 0], 2 * conditions)


# --- the rule's entry point on real Parquet splits -------------------------------------------------

SHIP = {"conditions": ["category"], "targets": ["StartX", "StartY", "StartZ", "Px", "Py", "Pz"],
        "categorised": True, "weight": "weight",
        "hyperparameters": {"n_bins": 4, "hidden_dim": 8, "n_blocks": 1, "activation": "relu", "batch_norm": False},
        "training": {"epochs": 2, "batch_size": 64, "learning_rate": 1e-3, "weight_decay": 1e-5,
                     "scheduler": "cosine_warm_restarts", "checkpoint_every": 1}}


def _ship_split(path, n, seed):
    """SHiP-like split: categories 1-2 have StartX = StartY = 0, targets in [-1, 1], weights > 0."""
    rng = np.random.default_rng(seed)
    category = rng.integers(1, 5, n).astype(np.int8)
    frame = pd.DataFrame({"source_file": "0.root", "entry": np.arange(n), "object_index": 0, "category": category})
    targets = rng.uniform(-1, 1, (n, 6)).astype(np.float32)
    targets[category <= 2, :2] = 0.0
    frame["weight"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
    frame["cond__category"] = category.astype(np.float32)
    for index, name in enumerate(SHIP["targets"]):
        frame[f"targ__{name}"] = targets[:, index]
    frame.to_parquet(path)


def test_run_writes_loadable_outputs_for_the_ship_categories(tmp_path):
    _ship_split(tmp_path / "train.parquet", 400, 0)
    _ship_split(tmp_path / "validation.parquet", 80, 1)
    (tmp_path / "transforms.json").write_text("{}")
    out = tmp_path / "train"
    run(train=str(tmp_path / "train.parquet"), validation=str(tmp_path / "validation.parquet"),
        transforms=str(tmp_path / "transforms.json"), model_pt=str(out / "model.pt"), model_json=str(out / "model.json"),
        history=str(out / "history.csv"), loss_plot=str(out / "loss.png"), checkpoint_dir=str(tmp_path / "ckpt"),
        model=SHIP, seed=3, log=str(tmp_path / "train.log"))
    description = json.loads((out / "model.json").read_text())
    parts = {p["key"]: p for p in description["parts"]}
    assert parts[1]["fill"] == {"StartX": 0.0, "StartY": 0.0} and parts[1]["modelled"] == ["StartZ", "Px", "Py", "Pz"]
    assert parts[3]["fill"] == {} and len(parts[3]["modelled"]) == 6
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2] and np.isfinite(history["validation_loss_last5"]).all()
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "trains on CPU" in (tmp_path / "train.log").read_text()
    generated = load_sampler(out, device="cpu").sample(np.array([[1.0], [2.0], [3.0], [4.0]] * 50, np.float32), seed=0)
    np.testing.assert_array_equal(generated[0::4, :2], 0.0)
    np.testing.assert_array_equal(generated[1::4, :2], 0.0)
    assert (generated[2::4, :2] != 0).all()


def test_missing_column_is_named(tmp_path):
    _ship_split(tmp_path / "train.parquet", 20, 0)
    with pytest.raises(InputError, match=r"missing columns \['targ__Energy'\]"):
        read_split(tmp_path / "train.parquet", ["category"], ["Px", "Energy"], "weight", "category")


def test_nan_targets_are_refused(tmp_path):
    _ship_split(tmp_path / "train.parquet", 20, 0)
    frame = pd.read_parquet(tmp_path / "train.parquet")
    frame.loc[3, "targ__Px"] = np.nan
    frame.to_parquet(tmp_path / "train.parquet")
    with pytest.raises(InputError, match=r"targ__Px.*NaN"):
        read_split(tmp_path / "train.parquet", ["category"], ["Px"], "weight", "category")
