"""Inference throughput of the exported bundles: ONNX Runtime (CPU) vs the framework's own inference.

Per model kind, in the same run, on the same batch: rows/s of ``model.onnx`` in onnxruntime against
the framework path the workflow itself uses (flow: zuko's inverse transform under ``torch.no_grad``,
FlowModel routing; covariance GAN and CalRatio: Keras ``model(inputs, training=False)``). Models are
built at the config's default sizes (untrained weights: throughput does not depend on their values).
Sessions come from ``run_bundle.open_session`` (the workflow's own settings), in calls of the size the runner
takes on a large input: the fastest of ``CALL_ROWS_TRIED`` (:func:`call_rows_as_the_runner_measures`).

The flow is also put against the CPU's float32 matrix-multiply ceiling, measured in the same run
with the same session settings and threads: achieved GFLOP/s (rows/s x the graph's MatMul/Gemm
FLOPs per row, :func:`matmul_flops_per_row`) over the GFLOP/s of one large ONNX Runtime MatMul
(:func:`matmul_ceiling`). The flow's rows/s for call sizes from 128 to 16384 are written beside its row.
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

from pipeline_steps.export.run_bundle import CALL_ROWS_TRIED  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "results" / "bench" / "export.json"
BATCH_SWEEP = (128, 256, 512, 1024, 2048, 4096, 16384)


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
    from pipeline_steps.export.run_bundle import open_session

    return open_session(path, threads)


def batched(ort_session, feeds: dict, batch_rows: int):
    """One pass over ``feeds`` in even calls of at most ``batch_rows`` rows, as ``Bundle.run_onnx`` splits them."""
    n = len(next(iter(feeds.values())))
    bounds = np.linspace(0, n, -(-n // batch_rows) + 1).astype(int)
    parts = [{name: value[start:stop] for name, value in feeds.items()} for start, stop in zip(bounds[:-1], bounds[1:])]
    return lambda: [ort_session.run(None, part) for part in parts]


def call_rows_as_the_runner_measures(ort_session, feeds: dict, rows: int, repeats: int,
                                     sweep: dict | None = None) -> tuple[int, dict]:
    """The call size ``run_bundle`` takes on a large input, the fastest of ``CALL_ROWS_TRIED`` (here by
    :func:`best_rate` over the benchmark's rows, steadier than the runner's three calls a size), and the
    rows/s of each (``sweep`` when it holds them already)."""
    sweep = sweep or {size: best_rate(batched(ort_session, feeds, size), rows, repeats) for size in CALL_ROWS_TRIED}
    return max(CALL_ROWS_TRIED, key=sweep.get), sweep


def matmul_flops_per_row(path: Path) -> int:
    """Multiply-add FLOPs per row of the graph's MatMul and Gemm nodes: 2 x K x N for each.

    Every such node of the exported flows is a dense layer, a constant ``K x N`` weight times the
    activations (``Gemm(W, h, b)`` on feature-major ``h [K, rows]``, or ``Gemm(h, W, b)`` on rows), so
    the FLOPs per row are twice the weight's size (the activations' batch axis is symbolic, and shape
    inference loses it behind the exporter's dynamic reshapes). Counted: the conditioner networks'
    dense layers (jets-sized flow: 17 couplings x 8 layers). Not counted: bias adds, activations,
    the gating sigmoids and the rational-quadratic splines (softmax, cumulative sums, bin search, the
    quadratic's root: ~30-70 elementwise operations per bin or variable). The count is thus a lower
    bound on the arithmetic done, and the ratio to the MatMul ceiling is the share of the CPU's
    dense-algebra peak that the dense layers alone use at the measured rows/s.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {tensor.name: tuple(tensor.dims) for tensor in model.graph.initializer}
    weights.update({node.output[0]: numpy_helper.to_array(node.attribute[0].t).shape
                    for node in model.graph.node if node.op_type == "Constant" and node.attribute[0].name == "value"})
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        shapes = [weights.get(name) for name in node.input[:2]]
        constant = [shape for shape in shapes if shape is not None]
        if len(constant) != 1 or len(constant[0]) != 2:
            raise ValueError(f"{path}: {node.op_type} {node.name!r} is not activations x one constant 2-D weight "
                             f"(constant operand shapes {shapes}); cannot count its FLOPs per row")
        total += 2 * int(np.prod(constant[0]))
    return total


def matmul_calls(threads: int, sizes=(256, 512, 1024)) -> dict:
    """{n: (call, FLOPs)} of float32 ``[n, n] @ [n, n]`` ONNX Runtime MatMul sessions, same settings and
    threads as the flow's: the best of them is the CPU's dense-algebra ceiling (MLAS, the kernels the
    flow's Gemm nodes run). Sizes from 256 up are compute bound on one core (K = 256 fills MLAS's tiles)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    calls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in ("a", "b")]
            graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul", inputs,
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])])
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), f"{tmp}/matmul{n}.onnx")
            ort_session = session(Path(tmp) / f"matmul{n}.onnx", threads)
            feeds = {"a": rng.normal(size=(n, n)).astype(np.float32), "b": rng.normal(size=(n, n)).astype(np.float32)}
            calls[n] = (lambda s=ort_session, f=feeds: s.run(None, f), 2 * n**3)
    return calls


def interleaved_best_rates(calls: dict, rounds: int) -> dict:
    """{name: work/s of the fastest call} for {name: (call, work)}, the calls taken in turn, ``rounds`` times:
    on a shared machine each best then comes from the same quiet moments, so their ratio holds."""
    best = {name: np.inf for name in calls}
    for call, _ in calls.values():
        call()
    for _ in range(rounds):
        for name, (call, _) in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: work / best[name] for name, (_, work) in calls.items()}


JETS_CONDITIONS, JETS_TARGETS = [f"c{i}" for i in range(8)], [f"t{i}" for i in range(17)]


def jets_size_flow():
    """The jets flow's size (8 conditions, 17 targets, the config's bins, width and blocks) with untrained
    weights moved off the identity (throughput does not depend on their values): the spec and the model."""
    import torch

    from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow

    spec = FlowSpec(JETS_CONDITIONS, JETS_TARGETS, FlowHyperparameters(n_bins=8, hidden_dim=64, n_blocks=2),
                    [FlowPart(None, None, JETS_TARGETS)])
    model = build_flow(spec).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return spec, model


def bench_flow(folder: Path, rows: int, threads: int, repeats: int) -> list[dict]:
    from pipeline_steps.export.torch_export import export_flow_onnx, reference_targets

    _, model = jets_size_flow()
    export_flow_onnx(model, folder / "flow.onnx", 18)
    rng = np.random.default_rng(0)
    c = rng.normal(size=(rows, len(JETS_CONDITIONS))).astype(np.float32)
    z = rng.normal(size=(rows, len(JETS_TARGETS))).astype(np.float32)
    feeds = {"conditions": c, "noise": z}
    ort_session = session(folder / "flow.onnx", threads)
    sweep = {batch: best_rate(batched(ort_session, feeds, batch), rows, repeats) for batch in BATCH_SWEEP}
    call_rows, _ = call_rows_as_the_runner_measures(ort_session, feeds, rows, repeats, sweep)
    flops = matmul_flops_per_row(folder / "flow.onnx")
    matmuls = {n: call for n, call in matmul_calls(threads).items()}
    rates = interleaved_best_rates({"flow": (batched(ort_session, feeds, call_rows), rows), **matmuls}, max(repeats, 5))
    size = max(matmuls, key=rates.get)
    ours, ceiling = rates["flow"], rates[size] / 1e9
    baseline = best_rate(lambda: reference_targets(model, c, z), rows, repeats)
    return [{"name": "flow (jets size) inference", "ours": ours, "baseline": baseline,
             "baseline_label": "torch + zuko eager (CPU)", "unit": "rows/s"},
            {"name": f"flow (jets size) inference, {flops / 1e6:.3f} MFLOP/row of MatMul/Gemm, batch {call_rows}",
             "ours": ours * flops / 1e9, "baseline": ceiling, "unit": "GFLOP/s",
             "baseline_label": f"ONNX Runtime float32 MatMul {size}x{size}x{size}, {threads} thread(s), same run",
             "rows_per_s_by_batch": sweep}]


def bench_gan(folder: Path, rows: int, threads: int, repeats: int) -> dict:
    from pipeline_steps.export.keras_export import export_keras_onnx, keras_predict
    from pipeline_steps.models.covariance_gan import GanArchitecture, build_generator

    architecture = GanArchitecture(n_conditions=11, n_targets=15)  # LHCb sizes: noise 128, hidden 128, 8 steps
    generator = build_generator(architecture)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(rows, 11)).astype(np.float32), rng.normal(size=(rows, 128)).astype(np.float32)]
    export_keras_onnx(generator, inputs, folder / "gan.onnx", 18)
    ort_session = session(folder / "gan.onnx", threads)
    call_rows, sweep = call_rows_as_the_runner_measures(ort_session, {"conditions": inputs[0], "noise": inputs[1]},
                                                        rows, repeats)
    baseline = best_rate(lambda: keras_predict(generator, inputs), rows, repeats)
    return {"name": f"covariance GAN generator inference, batch {call_rows}", "ours": sweep[call_rows],
            "baseline": baseline, "baseline_label": "Keras model(x, training=False) (TensorFlow CPU)", "unit": "rows/s",
            "rows_per_s_by_batch": sweep}


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
    call_rows, sweep = call_rows_as_the_runner_measures(ort_session, inputs, rows, repeats)
    baseline = best_rate(lambda: keras_predict(classifier, inputs), rows, repeats)
    return {"name": f"CalRatio classifier inference, batch {call_rows}", "ours": sweep[call_rows], "baseline": baseline,
            "baseline_label": "Keras model(x, training=False) (TensorFlow CPU)", "unit": "rows/s",
            "rows_per_s_by_batch": sweep}


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
        rows = [*bench_flow(folder, args.rows, args.threads, args.repeats),
                bench_gan(folder, args.rows, args.threads, args.repeats),
                bench_calratio(folder, args.calratio_rows, args.threads, args.repeats)]
    document = {"threads": args.threads, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
