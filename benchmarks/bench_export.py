"""Inference throughput of the exported bundles: ONNX Runtime (CPU) vs the framework's own inference.

Per model kind, in the same run, on the same batch: rows/s of ``model.onnx`` in onnxruntime against
the framework path the workflow itself uses (flow: zuko's inverse transform under ``torch.no_grad``,
FlowModel routing; covariance GAN and CalRatio: Keras ``model(inputs, training=False)``). Models are
built at the config's default sizes (untrained weights: throughput does not depend on their values).
Writes results/bench/export.json as {"rows": [{"name", "ours", "baseline", "baseline_label", "unit"}]}.

    .venv/bin/python benchmarks/bench_export.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "results" / "bench" / "export.json"


def best_rate(function, rows: int, repeats: int) -> float:
    """Rows/s of the fastest of ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return rows / min(times)


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_flow(folder: Path, rows: int, threads: int, repeats: int) -> dict:
    import torch

    from pipeline_steps.export.torch_export import export_flow_onnx, reference_targets
    from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow

    conditions, targets = [f"c{i}" for i in range(8)], [f"t{i}" for i in range(17)]
    spec = FlowSpec(conditions, targets, FlowHyperparameters(n_bins=8, hidden_dim=64, n_blocks=2),
                    [FlowPart(None, None, targets)])
    model = build_flow(spec).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    export_flow_onnx(model, folder / "flow.onnx", 18)
    rng = np.random.default_rng(0)
    c, z = rng.normal(size=(rows, 8)).astype(np.float32), rng.normal(size=(rows, 17)).astype(np.float32)
    ort_session = session(folder / "flow.onnx", threads)
    ours = best_rate(lambda: ort_session.run(None, {"conditions": c, "noise": z}), rows, repeats)
    baseline = best_rate(lambda: reference_targets(model, c, z), rows, repeats)
    return {"name": "flow (jets size) inference", "ours": ours, "baseline": baseline,
            "baseline_label": "torch + zuko eager (CPU)", "unit": "rows/s"}


def bench_gan(folder: Path, rows: int, threads: int, repeats: int) -> dict:
    from pipeline_steps.export.keras_export import export_keras_onnx, keras_predict
    from pipeline_steps.models.covariance_gan import GanArchitecture, build_generator

    architecture = GanArchitecture(n_conditions=11, n_targets=15)  # LHCb sizes: noise 128, hidden 128, 8 steps
    generator = build_generator(architecture)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(rows, 11)).astype(np.float32), rng.normal(size=(rows, 128)).astype(np.float32)]
    export_keras_onnx(generator, inputs, folder / "gan.onnx", 18)
    ort_session = session(folder / "gan.onnx", threads)
    ours = best_rate(lambda: ort_session.run(None, {"conditions": inputs[0], "noise": inputs[1]}), rows, repeats)
    baseline = best_rate(lambda: keras_predict(generator, inputs), rows, repeats)
    return {"name": "covariance GAN generator inference", "ours": ours, "baseline": baseline,
            "baseline_label": "Keras model(x, training=False) (TensorFlow CPU)", "unit": "rows/s"}


def bench_calratio(folder: Path, rows: int, threads: int, repeats: int) -> dict:
    from pipeline_steps.export.keras_export import export_keras_onnx, keras_predict
    from pipeline_steps.models.calratio_rnn import CalRatioHyperparameters, build_classifier

    features, lengths = {"clusters": 12, "tracks": 13, "muon_segments": 16}, {"clusters": 30, "tracks": 20, "muon_segments": 70}
    classifier = build_classifier(5, features, CalRatioHyperparameters())
    rng = np.random.default_rng(0)
    inputs = {"jets": rng.normal(size=(rows, 5)).astype(np.float32)}
    for name, n_features in features.items():
        padded = rng.normal(size=(rows, lengths[name], n_features)).astype(np.float32)
        real = np.arange(lengths[name])[None, :] < rng.integers(0, lengths[name], rows)[:, None]
        inputs[name] = np.where(real[..., None], padded, 0.0).astype(np.float32)
    export_keras_onnx(classifier, inputs, folder / "calratio.onnx", 18)
    ort_session = session(folder / "calratio.onnx", threads)
    ours = best_rate(lambda: ort_session.run(None, inputs), rows, repeats)
    baseline = best_rate(lambda: keras_predict(classifier, inputs), rows, repeats)
    return {"name": "CalRatio classifier inference", "ours": ours, "baseline": baseline,
            "baseline_label": "Keras model(x, training=False) (TensorFlow CPU)", "unit": "rows/s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--calratio-rows", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(args.threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [bench_flow(folder, args.rows, args.threads, args.repeats),
                bench_gan(folder, args.rows, args.threads, args.repeats),
                bench_calratio(folder, args.calratio_rows, args.threads, args.repeats)]
    document = {"threads": args.threads, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
