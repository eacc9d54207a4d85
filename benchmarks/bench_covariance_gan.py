"""Covariance GAN training throughput (rows/s) on this machine vs LHCb's published figure.

LHCb's notebook: 3000 epochs of 352,612 rows, batch 10k, at 1.16 s per epoch on their GPU, i.e.
about 304k rows/s. We time the same networks (15 conditions, 15 targets, noise 128, hidden 128,
8 residual steps, 7 discriminator layers, three updates per batch) on synthetic rows:
ours = the compiled ``tf.function`` step fed by ``tf.data``; baseline in the same run = the same
step executed eagerly (no graph compilation). Prints a JSON document and writes it with --output.

    .venv/bin/python benchmarks/bench_covariance_gan.py --rows 50000 --epochs 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipeline_steps.train import covariance_gan as training  # noqa: E402
from pipeline_steps.train.devices import describe_device  # noqa: E402

LHCB_ROWS, LHCB_SECONDS_PER_EPOCH = 352_612, 1.16
LHCB_MODEL = {
    "conditions": [f"c{i}" for i in range(15)],
    "targets": [f"cov_{i}" for i in range(15)],
    "hyperparameters": {"noise_dim": 128, "hidden": 128, "generator_residual_steps": 8, "discriminator_layers": 7,
                        "generator_learning_rate": 1e-4, "discriminator_learning_rate": 1e-4,
                        "referee_learning_rate": 1e-3, "label_smoothing": 0.1},
    "training": {"epochs": 1, "batch_size": 10_000},
}


def measure(rows: int, epochs: int, batch_size: int, eager: bool) -> dict:
    """Seconds per epoch and rows/s after one warm-up epoch (graph tracing excluded)."""
    import tensorflow as tf

    model = dict(LHCB_MODEL, training={"epochs": 1, "batch_size": batch_size})
    config = training.GanTrainingConfig.from_model(model, seed=1)
    rng = np.random.default_rng(0)
    with tf.device("/CPU:0"):
        conditions = tf.constant(rng.normal(size=(rows, 15)).astype(np.float32))
        targets = tf.constant(rng.normal(size=(rows, 15)).astype(np.float32))
    networks = training.build_networks(config)
    step = training.make_train_step(networks, config)
    if eager:
        step = step.python_function
    training.run_epoch(step, training.epoch_batches(conditions, targets, batch_size, 1, 0))
    began = time.perf_counter()
    for epoch in range(1, epochs + 1):
        training.run_epoch(step, training.epoch_batches(conditions, targets, batch_size, 1, epoch))
    seconds = (time.perf_counter() - began) / epochs
    return {"seconds_per_epoch": seconds, "rows_per_second": rows / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-eager", action="store_true", help="do not time the eager baseline")
    parser.add_argument("--output", type=Path)
    arguments = parser.parse_args()
    training.configure_tensorflow(arguments.threads)
    lhcb = LHCB_ROWS / LHCB_SECONDS_PER_EPOCH
    ours = measure(arguments.rows, arguments.epochs, arguments.batch_size, eager=False)
    result = {
        "device": describe_device("tensorflow"),
        "rows": arguments.rows, "batch_size": arguments.batch_size, "threads": arguments.threads,
        "ours_tf_function": ours,
        "lhcb_published": {"rows_per_second": lhcb, "seconds_per_epoch": LHCB_SECONDS_PER_EPOCH,
                           "rows": LHCB_ROWS},
        "ours_over_lhcb": ours["rows_per_second"] / lhcb,
        "lhcb_epoch_seconds_at_our_rate": LHCB_ROWS / ours["rows_per_second"],
    }
    if not arguments.skip_eager:
        eager = measure(arguments.rows, max(1, arguments.epochs // 2), arguments.batch_size, eager=True)
        result["baseline_eager"] = eager
        result["tf_function_speedup_over_eager"] = ours["rows_per_second"] / eager["rows_per_second"]
    text = json.dumps(result, indent=2)
    print(text)
    if arguments.output:
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
