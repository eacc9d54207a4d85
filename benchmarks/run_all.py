"""`make bench`: run every benchmarks/bench_*.py, gather their rows into one table.

Each benchmark script writes ``results/bench/<name>.json`` in its own shape; a small converter per
script turns it into rows, each a measured pair taken in the same run: ``{"name", "ours",
"baseline", "unit", "baseline_label"}`` (higher is better unless ``"lower_is_better": true``). The
harness adds the ratio and the machine and writes ``results/bench/bench.md`` and ``bench.json``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = REPO / "results" / "bench"


def machine_description() -> dict:
    description = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        description["cpu"] = model
    except (OSError, StopIteration):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            description["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return description


def _row(name, ours, baseline, unit, label, lower_is_better=False) -> dict:
    return {"name": name, "ours": ours, "baseline": baseline, "unit": unit, "baseline_label": label,
            "lower_is_better": lower_is_better}


def _ingest_rows(result: dict) -> list[dict]:
    """Medians of the interleaved runs: ours against the plain baseline (pyarrow's default encoding) and
    against the same baseline writing with ours' encoding; memory whole and above each side's imports."""
    runs = {(r["mode"], r["scale"]): r for r in result["runs"]}
    plain_label, encoded_label = "uproot.concatenate + pyarrow", "the same, writing with ours' Parquet encoding"
    rows = []
    for scale in sorted({scale for _, scale in runs}):
        ours, plain, encoded = (runs[(mode, scale)] for mode in ("ours", "baseline", "baseline_our_encoding"))
        spread = f"medians of {len(ours['all_seconds'])}"
        rows += [_row(f"ingest {unit}, {scale}x file ({spread})", ours[key], baseline[key], unit, label)
                 for unit, key in (("rows/s", "rows_per_s"), ("MB/s", "mb_per_s"))
                 for baseline, label in ((plain, plain_label), (encoded, encoded_label))]
        rows += [_row(f"ingest peak RSS{what}, {scale}x file", ours[key], plain[key], "MiB", plain_label, True)
                 for what, key in (("", "peak_rss_mib"), (" above imports", "own_peak_mib"))]
    lzma = {r["mode"]: r for r in result.get("lzma_runs", [])}
    if lzma:
        name = f"ingest MB/s, {lzma['ours']['scale']}x file in LZMA-9 (NanoAOD's compression; medians of " \
               f"{len(lzma['ours']['all_seconds'])})"
        rows += [_row(f"{name}, 2 read threads", lzma["ours_2_threads"]["mb_per_s"], lzma["ours"]["mb_per_s"], "MB/s",
                      "the same, 1 read thread"),
                 _row(f"{name}, 1 read thread", lzma["ours"]["mb_per_s"], lzma["baseline"]["mb_per_s"], "MB/s", plain_label)]
    return rows


def _gan_rows(result: dict) -> list[dict]:
    ours = result["ours_tf_function"]["rows_per_second"]
    rows = [_row(f"GAN training ({result['device']})", ours, result["lhcb_published"]["rows_per_second"], "rows/s", "LHCb published (GPU)")]
    if "baseline_eager" in result:
        rows.append(_row("GAN training, tf.function vs eager", ours, result["baseline_eager"]["rows_per_second"], "rows/s", "same epoch, eager"))
    if "ours_vs_keras_fit" in result:
        fit = result["ours_vs_keras_fit"]
        rows.append(_row("GAN training, ours vs plain Keras fit", fit["ours_epoch_runner"]["rows_per_second"],
                         fit["baseline_keras_fit"]["rows_per_second"], "rows/s",
                         f"keras.Model.fit, same networks and updates ({fit['model']}, batch {fit['batch_size']})"))
    return rows


def _flow_rows(result: dict) -> list[dict]:
    loading, epoch = result["loading_only_rows_per_second"], result["training_epoch_rows_per_second"]
    production = result["production_size"]
    rows = [
        _row("flow loader, loading only", loading["ours_device_loader"], loading["flashsim_h5_dataloader"], "rows/s", "FlashSim per-row h5py Dataset"),
        _row("flow training epoch (config size)", epoch["ours_device_loader"], epoch["flashsim_h5_dataloader"], "rows/s", "FlashSim per-row h5py Dataset"),
    ]
    rows.append(_row(f"flow training, production size ({result['device']})", production["ours_rows_per_second"],
                     production["flashsim_v100_rows_per_second"], "rows/s", "FlashSim on a V100"))
    return rows


def _calratio_rows(result: dict) -> list[dict]:
    return [_row(f"CalRatio training ({result['device']})", result["ours_main_jets_per_s"], result["reference_main_jets_per_s"], "jets/s", "2019 trainer (GPU, assumed 1M jets)")]


def _generate_rows(result: dict) -> list[dict]:
    fom = result["figure_of_merit"]
    generation_rows = [
        _row(f"generation incl. ROOT write, {g['rows']} rows ({g['blocks']} blocks, {g['float_fields']} fields, "
             f"{g['sampler']}, {g['file_name_bytes']}-byte file names; pairs {g['pair_ratios'][0]:.2f}-{g['pair_ratios'][-1]:.2f} in {g['repeats']})",
             g["rows_per_s_with_root_write"], g["rows_per_s_without_write"], "rows/s", "same, without the write")
        for g in (result["generation"], result["generation_one_block"], result["generation_float64"],
                  result["generation_cms_names"], result["generation_flow"])]
    return [
        *generation_rows,
        _row(f"figure of merit, {fom['rows_per_class_train']}+{fom['rows_per_class_train']} rows", fom["seconds_hist"], fom["seconds_exact"], "s", "exact GradientBoosting (ours = hist)", True),
        _validate_row(result["validate"]),
    ]


def _validate_row(validate: dict) -> dict:
    """validate() of one model, configured classifier, against the issue's one-minute budget."""
    label = (f"validate {validate['rows_real']}+{validate['rows_generated']} rows, {validate['features']} features, "
             f"{validate['floor_repeats']} floor halvings, {validate['configured_classifier']} BDT "
             f"(exact: {validate['seconds_validate_exact']:.0f} s)")
    return _row(label, validate[f"seconds_validate_{validate['configured_classifier']}"], 60.0, "s",
                "target: one minute on 2 cores", True)


def _rows_as_written(result: dict) -> list[dict]:
    return result["rows"]


# name -> (arguments that point the script's JSON at `{out}`, converter to table rows)
BENCHMARKS = {
    "ingest": ([], _ingest_rows),
    "covariance_gan": (["--output", "{out}"], _gan_rows),
    "flow": (["--output", "{out}"], _flow_rows),
    "calratio": (["--out", "{out}"], _calratio_rows),
    "generate_validate": (["--out", "{out}"], _generate_rows),
    "export": ([], _rows_as_written),
    "runner": ([], _rows_as_written),
    "planning": ([], _rows_as_written),
}


def run_benchmarks(selected: list[str]) -> tuple[list[dict], list[str]]:
    """Run each script in its own process (peak-memory figures must not mix): the rows, and the scripts that failed.

    A failing script leaves its rows out and the others still run, so one broken benchmark does not cost
    the whole run; ``main`` then exits non-zero, so that ``make bench`` never reports success with rows missing.
    """
    rows, failed = [], []
    for name, (arguments, to_rows) in BENCHMARKS.items():
        script = BENCH_DIR / f"bench_{name}.py"
        if (selected and name not in selected) or not script.exists():
            continue
        output = OUT_DIR / f"{name}.json"
        command = [sys.executable, str(script), *(a.format(out=output) for a in arguments)]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        print(f"{script.name}: exit {result.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
            failed.append(script.name)
            continue
        rows += [{"benchmark": name, **row} for row in to_rows(json.loads(output.read_text()))]
    return rows, failed


def with_ratio(row: dict) -> dict:
    ours, baseline = row.get("ours"), row.get("baseline")
    if ours and baseline:
        ratio = baseline / ours if row.get("lower_is_better") else ours / baseline
        row["ratio"] = round(ratio, 3)
    return row


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores" + (f", GPU {machine['gpu']}" if "gpu" in machine else ", no GPU"),
        "",
        "| benchmark | measurement | ours | baseline | unit | ratio (>1 = ours better) |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for row in rows:
        baseline = f"{row['baseline']:.4g} ({row.get('baseline_label', '')})" if row.get("baseline") is not None else "-"
        lines.append(
            f"| {row['benchmark']} | {row['name']} | {row['ours']:.4g} | {baseline} | {row.get('unit', '')} | {row.get('ratio', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    measured, failed = run_benchmarks(argv)
    rows = [with_ratio(row) for row in measured]
    (OUT_DIR / "bench.json").write_text(json.dumps({"machine": machine, "rows": rows, "failed": failed}, indent=2))
    (OUT_DIR / "bench.md").write_text(markdown(rows, machine))
    print((OUT_DIR / "bench.md").read_text())
    if failed:
        sys.exit(f"make bench: {', '.join(failed)} failed (output above); their rows are missing from bench.md")


if __name__ == "__main__":
    main(sys.argv[1:])
