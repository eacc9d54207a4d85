"""The standalone bundle runner (``run_bundle.py``) on a 1x and a 4x input: peak memory and rows/s, read a
step at a time against the whole file at once.

A jets-size flow (8 conditions, 17 targets, the ``bench_export`` flow's size, untrained weights perturbed
from the identity) is exported as a full bundle by the workflow's own export step, its transforms fitted on
synthetic jets. The 1x input is one runner step (``STEP_ROWS``, 262,144 rows), the 4x input four; each run is
a fresh process that reports its own peak RSS (VmHWM, imports included). The 4x input is run with the
runner's default step and with one step the size of the file, which is what the runner did before it
streamed (the same values: ``tests/test_export_standalone.py``); interleaved, ``REPEATS`` times, the faster
run of each kept (a shared machine only slows a run; peak memory barely moves between runs).

Rows: the 4x input's peak RSS streamed against whole (lower is better), its rows/s streamed against whole,
and the growth of the streamed peak RSS from the 1x to the 4x input against the ingestion's flat-memory goal
(``MAX_GROWTH``: within 1.5x), as a ratio above 1 where it grows less. Then a dataset of ``MANY_FILES`` small
files (``MANY_FILE_ROWS`` rows each, as a skim or a private production leaves them): one run of them all
(``--output-dir``) against one runner process per file, the loop or the batch job a file that a user writes,
in rows/s of the processes' wall time (imports, session, checks, inference and writing: what the user waits for).
Writes results/bench/runner.json as {"rows": [...]}.

    .venv/bin/python benchmarks/bench_runner.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench_export import JETS_CONDITIONS, JETS_TARGETS, jets_size_flow  # noqa: E402
from pipeline_steps.export.run_bundle import STEP_ROWS  # noqa: E402

OUT = REPO / "results" / "bench" / "runner.json"
REPEATS = 2
MAX_GROWTH = 1.5  # issue 19's "peak RSS of the 10x file within 1.5x of the 1x file", for the ingestion
SCALE = 4
MANY_FILES, MANY_FILE_ROWS = 20, 20_000

CHILD = textwrap.dedent("""
    import json, runpy, sys, time
    runner, *arguments = sys.argv[1:]
    sys.argv = [runner, *arguments]
    start = time.perf_counter()
    try:
        runpy.run_path(runner, run_name="__main__")
    except SystemExit as stop:
        if stop.code:
            raise
    seconds = time.perf_counter() - start
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    print(json.dumps({"seconds": seconds, "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024}))
""")


def export_bundle(folder: Path) -> Path:
    """A jets-size flow bundle, exported and verified by ``pipeline_steps.export.step.run``."""
    import torch

    from pipeline_steps.export.step import run
    from pipeline_steps.preprocess.model_transforms import ModelTransforms, save_transforms
    from pipeline_steps.preprocess.transforms import fit_variable_transforms
    from pipeline_steps.provenance.raw_checksums import write_part_checksums

    rows = synthetic_rows(5000, seed=1)
    standard = dict.fromkeys(JETS_CONDITIONS, "standard")
    transforms = ModelTransforms(fit_variable_transforms(rows, standard),
                                 fit_variable_transforms(rows, dict.fromkeys(JETS_TARGETS, "standard")), model="bench")
    save_transforms(transforms, folder / "transforms.json")
    split, forward = rows.copy(), transforms.conditions.forward(rows[JETS_CONDITIONS])
    for i, name in enumerate(JETS_CONDITIONS):
        split[f"cond__{name}"] = forward[:, i]
    split.to_parquet(folder / "test.parquet")
    spec, model = jets_size_flow()
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(spec.to_json())
    raw = folder / "raw.root"
    raw.write_bytes(b"synthetic: hashed for the manifest's provenance only")
    write_part_checksums([str(raw)], folder / "raw_checksums.json")  # what rule checksum_raw gives an export
    bundle = folder / "bundle"
    model = {"kind": "flow", "conditions": JETS_CONDITIONS, "targets": JETS_TARGETS}
    settings = {"model_name": "bench", "model": model,
                "tree": "Events", "export": {"opset": 18, "tolerance": 1.0e-4, "c": False}}
    run([str(folder / "model.pt"), str(folder / "model.json")], str(folder / "transforms.json"),
        str(folder / "test.parquet"), str(bundle), settings, [str(folder / "raw_checksums.json")])
    return bundle


def synthetic_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(JETS_CONDITIONS) + len(JETS_TARGETS))).astype(np.float32),
                        columns=JETS_CONDITIONS + JETS_TARGETS)


def write_input(path: Path, n: int, seed: int = 2) -> None:
    import uproot

    rows = synthetic_rows(n, seed=seed)
    with uproot.recreate(path) as sink:
        sink.mktree("Events", {name: np.float32 for name in JETS_CONDITIONS})
        for start in range(0, n, 500_000):
            sink["Events"].extend({name: rows[name].to_numpy()[start:start + 500_000] for name in JETS_CONDITIONS})


def run_once(bundle: Path, source: Path, output: Path, step_rows: int | None, child: Path) -> dict:
    arguments = ["--step-rows", str(step_rows)] if step_rows else []
    result = subprocess.run([sys.executable, str(child), str(bundle / "run_bundle.py"), str(bundle), str(source),
                             str(output), *arguments], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(bundle: Path, folder: Path, rows: int) -> dict:
    """The faster run of each case, the cases interleaved; every run's figures beside it."""
    child = folder / "child.py"
    child.write_text(CHILD)
    cases = {"streamed_x1": (1, None), f"streamed_x{SCALE}": (SCALE, None), f"whole_x{SCALE}": (SCALE, SCALE * rows)}
    for scale in (1, SCALE):
        write_input(folder / f"x{scale}.root", rows * scale)
    runs: dict[str, list[dict]] = {case: [] for case in cases}
    for _ in range(REPEATS):
        for case, (scale, step_rows) in cases.items():
            runs[case].append(run_once(bundle, folder / f"x{scale}.root", folder / "out.root", step_rows, child))
    return {case: {**min(found, key=lambda run: run["seconds"]), "rows": rows * cases[case][0], "all": found}
            for case, found in runs.items()}


def measure_many_files(bundle: Path, folder: Path, files: int, rows: int) -> dict:
    """Wall seconds of one runner process per file against one run of every file (``--output-dir``), interleaved,
    the faster of ``REPEATS`` each kept."""
    sources = [folder / "many" / f"part_{index}.root" for index in range(files)]
    sources[0].parent.mkdir()
    for index, source in enumerate(sources):
        write_input(source, rows, seed=100 + index)
    runner = [sys.executable, str(bundle / "run_bundle.py"), str(bundle)]
    runs: dict[str, list[float]] = {"one_run": [], "a_process_per_file": []}
    for repeat in range(REPEATS):
        (folder / f"one_{repeat}").mkdir()
        runs["one_run"].append(_wall([runner + [*map(str, sources), "--output-dir", str(folder / f"one_{repeat}")]]))
        runs["a_process_per_file"].append(_wall([runner + [str(source), str(folder / f"each_{repeat}_{source.name}")]
                                                 for source in sources]))
    return {case: {"seconds": min(found), "all": found, "rows": files * rows, "files": files}
            for case, found in runs.items()}


def _wall(commands: list) -> float:
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return time.perf_counter() - start


def table_rows(measured: dict, rows: int) -> list[dict]:
    streamed, whole, small = measured[f"streamed_x{SCALE}"], measured[f"whole_x{SCALE}"], measured["streamed_x1"]
    many = measured["many_files"]
    label = f"{rows * SCALE} rows, jets-size flow"
    return [
        {"name": f"standalone runner peak RSS, {SCALE}x input ({label})", "ours": streamed["peak_rss_mib"],
         "baseline": whole["peak_rss_mib"], "baseline_label": "the whole file at once (--step-rows = the file)",
         "unit": "MiB", "lower_is_better": True},
        {"name": f"standalone runner rows/s, {SCALE}x input ({label})", "ours": streamed["rows"] / streamed["seconds"],
         "baseline": whole["rows"] / whole["seconds"], "baseline_label": "the whole file at once", "unit": "rows/s"},
        {"name": f"standalone runner peak RSS growth, 1x ({rows} rows, one step, {small['peak_rss_mib']:.1f} MiB) -> "
                 f"{SCALE}x ({streamed['peak_rss_mib']:.1f} MiB)",
         "ours": streamed["peak_rss_mib"] / small["peak_rss_mib"],
         "baseline": MAX_GROWTH, "baseline_label": "the ingestion's flat-memory goal", "unit": "x",
         "lower_is_better": True},
        {"name": f"standalone runner rows/s, {many['one_run']['files']} files of "
                 f"{many['one_run']['rows'] // many['one_run']['files']} rows in one run (--output-dir)",
         "ours": many["one_run"]["rows"] / many["one_run"]["seconds"],
         "baseline": many["a_process_per_file"]["rows"] / many["a_process_per_file"]["seconds"],
         "baseline_label": "one runner process per file", "unit": "rows/s"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=STEP_ROWS, help="rows of the 1x input (default: one step)")
    parser.add_argument("--many-files", type=int, default=MANY_FILES, help="files of the many-files case")
    parser.add_argument("--many-file-rows", type=int, default=MANY_FILE_ROWS, help="rows of each of those files")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bundle = export_bundle(folder)
        measured = {**measure(bundle, folder, args.rows),
                    "many_files": measure_many_files(bundle, folder, args.many_files, args.many_file_rows)}
    document = {"rows_1x": args.rows, "runs": measured, "rows": table_rows(measured, args.rows)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document["rows"], indent=1))


if __name__ == "__main__":
    main()
