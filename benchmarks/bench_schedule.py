"""Cost of the per-update learning-rate schedule in the flow trainer: rows/s with ``training.schedule``
(a LambdaLR stepped after every update, the rate from ``LearningRateSchedule.lr_at``) vs the same
run with the built-in per-epoch cosine scheduler (the baseline), same data, same run.

    .venv/bin/python benchmarks/bench_schedule.py [--rows 20000] [--epochs 3] [--out bench_schedule.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline_steps.models.flow import build_flow, select_device  # noqa: E402
from pipeline_steps.train.flow import FlowData, TrainingSettings, fit, make_spec  # noqa: E402
from pipeline_steps.train.schedule import LearningRateSchedule  # noqa: E402

MODEL = {"conditions": ["c"], "targets": ["y1", "y2"],
         "hyperparameters": {"n_bins": 8, "hidden_dim": 64, "n_blocks": 2, "activation": "relu", "batch_norm": False}}
SCHEDULE = ({"length": 1, "unit": "epochs", "law": "linear", "start": 1e-2, "end": 1e-3},
            {"length": 1, "unit": "epochs", "law": "constant", "start": 1e-3},
            {"length": 1, "unit": "epochs", "law": "polynomial", "start": 1e-3, "end": 1e-6, "degree": 2})


def _data(n: int, seed: int) -> FlowData:
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    y = np.concatenate([2 * c + 0.5 * rng.normal(size=(n, 1)), -c + 0.3 * rng.normal(size=(n, 1))], axis=1)
    return FlowData(c, y.astype(np.float32), np.ones(n, np.float32))


def _rows_per_second(train: FlowData, validation: FlowData, epochs: int, **training) -> float:
    torch.manual_seed(0)
    model = build_flow(make_spec(MODEL, train))
    settings = TrainingSettings(epochs=epochs, batch_size=256, seed=0, checkpoint_every=epochs, **training)
    with tempfile.TemporaryDirectory() as folder:
        history = fit(model, train, validation, settings, folder, select_device())
    return float(np.mean([row["rows_per_second"] for row in history[1:]] or [history[0]["rows_per_second"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="bench_schedule.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, validation = _data(args.rows, 1), _data(2000, 2)
    baseline = _rows_per_second(train, validation, args.epochs, learning_rate=1e-3, scheduler="cosine")
    ours = _rows_per_second(train, validation, args.epochs, schedule=SCHEDULE)
    start = time.perf_counter()
    schedule = LearningRateSchedule.from_config(SCHEDULE, steps_per_epoch=100_000)
    for step in range(100_000):
        schedule.lr_at(step)
    lr_at_us = (time.perf_counter() - start) * 1e6 / 100_000
    result = {"device": str(select_device()), "rows": args.rows, "epochs": args.epochs,
              "flow_rows_per_second": {"ours_schedule_per_update": ours, "baseline_cosine_per_epoch": baseline},
              "lr_at_microseconds_per_call": lr_at_us}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
