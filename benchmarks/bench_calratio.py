"""CalRatio RNN training throughput (jets/s) here vs the 2019 trainer's quoted figure.

The trainer's README: "Typical training takes about 40 minutes on the full dataset, 100 epochs"
(on a GPU). It does not give the dataset size; we ASSUME ``--assumed-dataset-jets`` main-sample
training jets (default 1,000,000, an order-of-magnitude guess for the 2019 CalRatio training
sample) plus as many control-region jets, so its rate is assumed_jets * 100 / 2400 s.
Ours: the configured network sizes (config/config.yaml models.calratio) on synthetic jets with the
configured padding lengths and the ingest feature counts, alternating adversary + main steps
exactly as in training; the first epoch (graph tracing) is not timed.

    .venv/bin/python benchmarks/bench_calratio.py [--jets 2000] [--epochs 3] [--out bench_calratio.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from pipeline_steps.models import calratio_rnn as net  # noqa: E402
from tests.calratio_samples import synthetic_split  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=2000, help="main training jets (CR: half as many)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (+1 untimed warm-up)")
    parser.add_argument("--num-splits", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--assumed-dataset-jets", type=int, default=1_000_000)
    parser.add_argument("--out", default="bench_calratio.json")
    args = parser.parse_args()

    device = net.configure_tensorflow(args.threads)
    from pipeline_steps.train import calratio_rnn as training

    config = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("config/config.yaml").read_text())
    model = config["models"]["calratio"]
    tables = config["datasets"][model["dataset"]]["tables"][model["table"]]["sequences"]
    lengths = tuple(model["preprocessing"]["sequence_lengths"][name] for name in net.SEQUENCE_NAMES)
    features = tuple(len(tables[name]["fields"]) for name in net.SEQUENCE_NAMES)
    shape = dict(lengths=lengths, n_features=features, n_jet_features=len(model["conditions"]))
    samples = {
        "train": synthetic_split(args.jets, "main", 1, **shape),
        "cr_train": synthetic_split(args.jets // 2, "cr", 2, **shape),
    }
    hyper = net.CalRatioHyperparameters.from_config(model["hyperparameters"])
    cfg = training.CalRatioTrainingConfig(epochs=args.epochs + 1, num_splits=args.num_splits, seed=1)
    trainer = training.build_trainer(samples, hyper, cfg)
    training.train_epoch(trainer, samples, 0, cfg)  # warm-up: traces the two tf.functions
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        training.train_epoch(trainer, samples, epoch, cfg)
    seconds = time.perf_counter() - start

    ours = args.jets * args.epochs / seconds
    reference = args.assumed_dataset_jets * 100 / (40 * 60)
    result = {
        "device": device,
        "threads": args.threads,
        "main_jets_per_epoch": args.jets,
        "cr_jets_per_epoch": args.jets // 2,
        "num_splits": args.num_splits,
        "timed_epochs": args.epochs,
        "seconds": seconds,
        "ours_main_jets_per_s": ours,
        "reference_main_jets_per_s": reference,
        "reference_assumption": f"{args.assumed_dataset_jets} main jets x 100 epochs in 40 min (trainer README, GPU)",
        "ratio_ours_over_reference": ours / reference,
        "ours_100_epochs_of_assumed_dataset_hours": args.assumed_dataset_jets * 100 / ours / 3600,
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
