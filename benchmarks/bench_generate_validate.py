"""Benchmark: generation rate with and without the ROOT write, and the figure of merit per classifier.

Plain script (no pytest): prints and writes a JSON of measured pairs from the same run.
  - generation: rows/s of the whole chain (sample -> inverse transform -> physical -> ROOT write)
    vs the same chain without the write, for a NanoAOD-jets-like layout. The sampler is a small
    linear stand-in (the trained models' own rates are in results/generate/<model>/generation.json),
    so this measures the pipeline's overhead around the network. The jets' float fields are float32,
    as NanoAOD stores them (the generated columns take the dtype of the real table's, so the pipeline
    writes float32 for NanoAOD); the same chain with float64 fields (1.5x the bytes to compress and
    write) is reported beside it, and so is the float32 chain with real-length file names (``source_file``
    is written per event: a CMS file's GUID name is 41 bytes, against the 6 of ``0.root``). One more pair
    samples from the pipeline's own spline flow at the jets model's size (random weights, 1 torch thread
    as the generate rule holds it): what a generation job's write costs next to a real network.
  - figure of merit: seconds for GradientBoostingClassifier (the SHiP study's, `exact`) vs
    HistGradientBoostingClassifier (`hist`) on the same rows.
  - validate(): seconds of the whole metrics part of one model's validation (BDT real vs generated,
    the real-vs-real floor, bootstrap errors, per-feature and joint distances, verdict; plots left out)
    at --validate-rows real + as many generated rows, per classifier, with the time of each part.
Usage: python benchmarks/bench_generate_validate.py [--rows 1000000] [--one-block-rows 200000] [--flow-rows 200000] [--fom-rows 5000] [--validate-rows 50000]
       [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import uproot

from pipeline_steps.generate.step import GenerateSettings, generate_to_root, physical_rows
from pipeline_steps.generate.sampling import event_aligned_chunks
from pipeline_steps.preprocess.derived import parse_derived
from pipeline_steps.preprocess.model_transforms import ModelTransforms
from pipeline_steps.preprocess.transforms import fit_variable_transforms
from pipeline_steps.validate.compare import distance_metrics
from pipeline_steps.validate.figure_of_merit import FomSettings, figure_of_merit, matched_to_floor, repeated_floor
from pipeline_steps.validate.verdict import thresholds_from_config, verdict

CONDITIONS = ["gen_pt", "gen_eta", "gen_phi", "PV_npvs"]
TARGETS = ["ptRatio", "eta", "phi", "area", "btagDeepB", "nConstituents"]
TABLE = {
    "collection": {"counter": "nJet", "prefix": "Jet_"},
    "fields": ["pt", "eta", "phi", "area", "btagDeepB", "nConstituents"],
    "event_fields": ["PV_npvs"],
    "match": {"index": "genJetIdx", "collection": {"counter": "nGenJet", "prefix": "GenJet_"},
              "fields": ["pt", "eta", "phi"], "output_prefix": "gen_"},
}


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


class LinearSampler:
    label = "linear stand-in"

    def __init__(self, n_targets):
        self.n_targets = n_targets

    def sample(self, conditions, seed):
        rng = np.random.default_rng(seed)
        return (0.5 * conditions[:, :1] + rng.normal(size=(len(conditions), self.n_targets))).astype(np.float32)


def flow_sampler(config_path: Path = DEFAULT_CONFIG):
    """The pipeline's conditional spline flow with the jets model's hyperparameters (read from the config),
    weights moved off the identity so that every coupling works, sampling on the CPU with the generate
    rule's thread count."""
    import torch
    import yaml

    from pipeline_steps.generate.step import SAMPLING_THREADS
    from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, Sampler, build_flow

    torch.set_num_threads(SAMPLING_THREADS)
    jets = yaml.safe_load(Path(config_path).read_text())["models"]["jets"]
    hyperparameters = FlowHyperparameters.from_config(jets["hyperparameters"],
                                                      f"{config_path}: models.jets.hyperparameters")
    spec = FlowSpec(CONDITIONS, TARGETS, hyperparameters, [FlowPart(None, None, TARGETS)])
    torch.manual_seed(0)
    model = build_flow(spec)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    sampler = Sampler(model, torch.device("cpu"))
    sampler.label = f"jets-size spline flow, {SAMPLING_THREADS} torch thread"
    return sampler


#: A file name as CMS names its NanoAOD files (a GUID): 41 bytes of ``source_file`` per generated event.
CMS_FILE_NAME = "0A1B2C3D-4E5F-6789-ABCD-EF0123456789.root"


def _jets(n_rows, seed=0, float_type=np.float32, file_name="0.root"):
    """NanoAOD-like jets; ``float_type`` is the dtype of the reco-level float fields (NanoAOD's: float32),
    ``file_name`` every row's ``source_file``."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_rows // 3 + 1)
    event = np.repeat(np.arange(len(counts)), counts)[:n_rows]
    n = len(event)
    df = pd.DataFrame({
        "source_file": file_name, "entry": event.astype(np.int64),
        "object_index": np.concatenate([np.arange(c) for c in counts])[:n].astype(np.int32),
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32), "event": event.astype(np.uint64),
        "gen_pt": rng.uniform(20, 300, n).astype(np.float32), "gen_eta": rng.normal(0, 2, n).astype(np.float32),
        "gen_phi": rng.uniform(-3, 3, n).astype(np.float32), "PV_npvs": rng.integers(5, 50, n).astype(np.int32),
        "ptRatio": rng.normal(1, 0.1, n).astype(float_type), "eta": rng.normal(0, 2, n).astype(float_type),
        "phi": rng.uniform(-3, 3, n).astype(float_type), "area": rng.uniform(0.3, 0.6, n).astype(float_type),
        "btagDeepB": rng.random(n).astype(float_type), "nConstituents": rng.integers(2, 50, n).astype(np.int32),
    })
    transforms = ModelTransforms(fit_variable_transforms(df, {c: "standard" for c in CONDITIONS}),
                                 fit_variable_transforms(df, {t: "standard" for t in TARGETS}),
                                 parse_derived({"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]}}))
    cond = transforms.conditions.forward(df)
    return df.assign(**{f"cond__{c}": cond[:, i] for i, c in enumerate(CONDITIONS)}), transforms


def bench_generation(n_rows: int, repeats: int = 7, float_type=np.float32, sampler=None,
                     file_name: str = "0.root") -> dict:
    """Seconds of the chain with and without the ROOT write, each the median of ``repeats`` runs.

    The writer overlaps a block's write with the sampling of the next (``root_io._BlockWriter``), so
    the ratio depends on the number of blocks: at one block (200k rows) nothing can overlap, which the
    second call in ``main`` shows; production sizes are millions of rows.

    Each run writes a path that does not exist, as in the workflow, where Snakemake deletes a job's
    outputs before the job starts (``Job.remove_existing_output``). Renaming the finished file over
    the previous run's instead made ext4 (``auto_da_alloc``) allocate the new file's blocks inside the
    rename: 25 ms for 48 MB on this machine's disk against 0.04 ms onto a free name, a cost that no
    generate job pays. The pairs scatter: on this machine (2 cores) a single pair's ratio lay anywhere in
    0.45-0.59 at 1M rows, float32 or float64, in three calls of seven pairs whose ratios of medians were
    0.48-0.54. So each side is the median of seven runs (with five, two ``make bench`` tables of the same
    code were 0.03 apart), and ``pair_ratios`` (every pair's own ratio, sorted) goes into the table's
    label: the spread stands next to the ratio of the medians.
    """
    rows, transforms = _jets(n_rows, float_type=float_type, file_name=file_name)
    settings = GenerateSettings.from_params({
        "model_name": "bench", "seed": 1, "validation": {"generated_events": n_rows},
        "model": {"kind": "flow", "conditions": CONDITIONS, "targets": TARGETS},
        "dataset": {"tree": "Events", "identity": ["run", "luminosityBlock", "event"], "table": TABLE}})
    sampler = sampler or LinearSampler(len(TARGETS))
    # A first call's costs (a flow's allocations and kernel choices: 0.76 against 0.96 measured first) belong
    # to neither side of the pair.
    first_chunk = rows.iloc[event_aligned_chunks(rows, settings.chunk_rows)[0]]
    sampler.sample(first_chunk[[f"cond__{c}" for c in CONDITIONS]].to_numpy(np.float32), 0)
    with_write, without_write = [], []
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "g.root"
        for _ in range(repeats):
            output.unlink(missing_ok=True)  # outside the timing, as Snakemake does before a job
            started = time.perf_counter()
            generate_to_root(sampler, transforms, rows, settings, output)
            with_write.append(time.perf_counter() - started)
            without_write.append(_seconds_without_write(sampler, transforms, rows, settings))
        size = output.stat().st_size
        blocks = uproot.open(output)["Events"]["nJet"].num_baskets  # as written, not assumed
    return {"rows": len(rows), "blocks": blocks, "repeats": repeats,
            "float_fields": np.dtype(float_type).name, "sampler": sampler.label,
            "file_name_bytes": len(file_name.encode("utf-8")),
            "rows_per_s_with_root_write": len(rows) / float(np.median(with_write)),
            "rows_per_s_without_write": len(rows) / float(np.median(without_write)), "root_bytes": size,
            "pair_ratios": sorted(alone / written for alone, written in zip(without_write, with_write))}


def _seconds_without_write(sampler, transforms, rows: pd.DataFrame, settings: GenerateSettings) -> float:
    """The same chunks through sampling and ``physical_rows``, the rows then dropped."""
    started = time.perf_counter()
    cond_columns = [f"cond__{c}" for c in CONDITIONS]
    carried_columns = ["source_file", "entry", "object_index", "run", "luminosityBlock", "event", *CONDITIONS]
    for index, part in enumerate(event_aligned_chunks(rows, settings.chunk_rows)):
        chunk = rows.iloc[part]
        generated = sampler.sample(chunk[cond_columns].to_numpy(np.float32), index)
        physical_rows(generated, chunk[carried_columns], transforms, settings, rows, None)
    return time.perf_counter() - started


def bench_fom(n_per_class: int) -> dict:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2 * n_per_class, 10))
    generated = rng.normal(size=(2 * n_per_class, 10)) * 1.05
    result = {"rows_per_class_train": n_per_class, "rows_per_class_eval": n_per_class, "features": 10}
    for classifier in ("exact", "hist"):
        settings = FomSettings(classifier=classifier, n_train_per_class=n_per_class, n_eval_per_class=n_per_class, bins=50)
        started = time.perf_counter()
        fom = figure_of_merit(real, generated, settings)
        result[f"seconds_{classifier}"] = time.perf_counter() - started
        result[f"auc_{classifier}"] = fom.auc
    result["speedup_hist_over_exact"] = result["seconds_exact"] / result["seconds_hist"]
    return result


def bench_validate(n_rows: int, bootstrap: int = 100, features: int = 25) -> dict:
    """validate()'s metrics at n_rows real + n_rows generated, as config.yaml asks (50k + 50k, its
    floor halvings); 25 features = the jets model's 8 conditions + 17 targets, the widest flow."""
    import yaml

    validation = yaml.safe_load(Path("config/config.yaml").read_text())["validation"]
    rng = np.random.default_rng(1)
    real, generated = rng.normal(size=(n_rows, features)), rng.normal(size=(n_rows, features)) * 1.05
    result = {"rows_real": n_rows, "rows_generated": n_rows, "features": features, "bootstrap": bootstrap,
              "floor_repeats": int(validation["floor_repeats"]), "configured_classifier": validation["classifier"]}
    for classifier in ("exact", "hist"):
        settings = FomSettings(classifier=classifier, bootstrap=bootstrap,
                               floor_repeats=int(validation["floor_repeats"]))  # 50k + 50k asked, as config.yaml
        started = time.perf_counter()
        floor = repeated_floor(real, settings)
        after_floor = time.perf_counter()
        fom = figure_of_merit(real, generated, matched_to_floor(settings, floor.first))
        after_fom = time.perf_counter()
        result[f"seconds_floor_{classifier}"] = after_floor - started
        result[f"seconds_real_vs_generated_{classifier}"] = after_fom - after_floor
        result[f"auc_{classifier}"], result[f"floor_auc_{classifier}"] = fom.auc, floor.auc
    started = time.perf_counter()
    distances = distance_metrics(real, generated, [f"x{i}" for i in range(features)], None, None, bootstrap, 0)
    result["seconds_distances"] = time.perf_counter() - started
    judged = verdict({"auc": fom.auc, "auc_minus_floor": fom.auc - floor.auc, "floor": {"auc": floor.auc},
                      "n_eval_per_class": fom.n_eval_per_class, "distances": distances},
                     thresholds_from_config(validation))
    result["verdict"] = judged["overall"]
    for classifier in ("exact", "hist"):
        result[f"seconds_validate_{classifier}"] = (result[f"seconds_floor_{classifier}"] + result["seconds_distances"]
                                                    + result[f"seconds_real_vs_generated_{classifier}"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--one-block-rows", type=int, default=200_000)
    parser.add_argument("--flow-rows", type=int, default=200_000)
    parser.add_argument("--fom-rows", type=int, default=5_000)
    parser.add_argument("--validate-rows", type=int, default=50_000)
    parser.add_argument("--out", default="benchmarks/results/bench_generate_validate.json")
    args = parser.parse_args()
    report = {"generation": bench_generation(args.rows), "generation_one_block": bench_generation(args.one_block_rows),
              "generation_float64": bench_generation(args.rows, float_type=np.float64),
              "generation_cms_names": bench_generation(args.rows, file_name=CMS_FILE_NAME),
              "figure_of_merit": bench_fom(args.fom_rows),
              "validate": bench_validate(args.validate_rows)}
    # last: torch.set_num_threads(1) could hold the OpenMP runtime that scikit-learn's BDTs share
    report["generation_flow"] = bench_generation(args.flow_rows, sampler=flow_sampler())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
