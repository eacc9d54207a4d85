"""Ingestion throughput and peak memory vs a plain uproot.concatenate + pyarrow.parquet.write_table.

Builds a NanoAOD-like file (the config's `nanoaod` jets mapping) at 1x and 10x the toy size, then runs,
each in a fresh subprocess, REPEATS times interleaved: ours = pipeline_steps.ingest.step.run; baseline =
uproot.concatenate of the same branches, ak.flatten of the jet fields, one write_table with pyarrow's
defaults; and the same baseline writing with ours' Parquet encoding (dictionaries for integers and
names only, `ingest/writer.py`). Writes results/bench/ingest.json (every run, and the medians the table
uses) and prints it.  Usage: python benchmarks/bench_ingest.py [entries]

Each side imports what it needs before its timer starts (ours pipeline_steps.ingest, the baselines
pandas, which pa.table(dict) imports on first use: 0.17-0.21 s that had counted against the baseline
alone and made ours look 1.5x faster than the same work warm). The baseline's default encoding is the
plain one the issue names; it dictionary-encodes every float column, which alone cost 0.16 s against
0.04 s per write at 10x, so the second baseline shows what the encoding is worth.

Not the same work: the baselines read the same branches but the nJet/nGenJet counters, match nothing
and write the 23 jet, identity and event columns for every jet (125k at 10x); ours checks every branch
against its counter, matches Jet_genJetIdx into GenJet, adds source_file/entry/object_index and the 6
gen_ columns (32 columns) and drops the ~20% unmatched jets (100k rows), in one row group per
step_size. rows/s counts rows written on each side, so MB/s (input file per second) is the like-for-like
rate.

LZMA: real NanoAOD is written with LZMA level 9 (CMSSW's NANOAODSIMEventContent), whose decompression is most
of reading it. The 10x file is written once more with LZMA-9 (~7 s) and ingested by ours on one and on two read
threads (``datasets.<d>.read_threads``: uproot decompresses baskets at once) and by the plain baseline, each
REPEATS times interleaved (``lzma_runs``).

Memory: ``peak_rss_mib`` is the child's VmHWM (its own high-water mark: ru_maxrss of a child started by
subprocess carries over its parent's), imports included; ``own_peak_mib`` is that peak above the
process's size once its imports were done, the memory the ingestion itself needs. The toy's 1x file
(2,500 entries) is below one step_size (20,000), so only 10x reads in steps; the 100x point of the
README's memory note comes from a run with ``--scales 1 10 100``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())["datasets"]["nanoaod"]
MAPPING = CONFIG["tables"]["jets"]


def make_file(path: Path, n_entries: int, seed: int = 1, compression=None) -> None:
    """Write a NanoAOD-like Events tree with n_entries, ~5 jets and ~4 gen jets per entry (``compression``:
    uproot's default, ZLIB level 1, unless given)."""
    rng = np.random.default_rng(seed)
    with uproot.recreate(path, **({"compression": compression} if compression else {})) as file:
        tree = None
        for start in range(0, n_entries, 20000):
            n = min(20000, n_entries - start)
            n_jet, n_gen = rng.poisson(5, n), rng.poisson(4, n) + 1
            jets = {f: ak.unflatten(rng.normal(size=n_jet.sum()).astype(np.float32), n_jet) for f in MAPPING["fields"]}
            jets["genJetIdx"] = ak.unflatten(np.minimum(rng.integers(-1, 4, n_jet.sum()), np.repeat(n_gen - 1, n_jet)).astype(np.int32), n_jet)
            gen = {f: ak.unflatten(rng.normal(size=n_gen.sum()).astype(np.float32), n_gen) for f in MAPPING["match"]["fields"]}
            data = {"run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
                    "event": np.arange(start, start + n, dtype=np.uint64),
                    "fixedGridRhoFastjetAll": rng.random(n).astype(np.float32), "PV_npvs": rng.integers(1, 60, n).astype(np.int32),
                    "Jet": ak.zip(jets), "GenJet": ak.zip(gen)}
            if tree is None:
                tree = file.mktree("Events", {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
            tree.extend(data)


MODES = ("ours", "baseline", "baseline_our_encoding")
LZMA_MODES = ("ours", "ours_2_threads", "baseline")
LZMA_SCALE = 10
REPEATS = 3


def _status_mib(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_one(mode: str, raw: str, out: str) -> dict:
    """Child process: one ingestion, timed after its imports; returns rows, seconds, peak RSS (MiB)."""
    from pipeline_steps.ingest.writer import dictionary_columns  # ours' encoding (the second baseline's too)

    if mode.startswith("ours"):
        from pipeline_steps.ingest.step import run
    else:
        import pandas  # noqa: F401  pa.table(dict) imports it on first use
    rss_after_imports = _status_mib("VmRSS")
    start = time.perf_counter()
    if mode.startswith("ours"):
        reading = {k: CONFIG[k] for k in ("tree", "step_size", "empty_tree", "identity")}
        threads = 2 if mode == "ours_2_threads" else 1
        rows = run([raw], out, out + ".json", reading, MAPPING, "jets", "nanoaod", threads=threads)[0]["rows_out"]
    else:
        branches = [f"Jet_{f}" for f in MAPPING["fields"]] + ["run", "luminosityBlock", "event"] + MAPPING["event_fields"]
        gen_branches = ["Jet_genJetIdx", *(f"GenJet_{f}" for f in MAPPING["match"]["fields"])]  # read, as ours does
        arrays = uproot.concatenate({raw: "Events"}, branches + gen_branches, library="ak")
        counts = ak.to_numpy(ak.num(arrays["Jet_pt"]))
        columns = {b: (ak.to_numpy(ak.flatten(arrays[b])) if b.startswith("Jet_") else np.repeat(ak.to_numpy(arrays[b]), counts)) for b in branches}
        table = pa.table(columns)
        encoding = {"use_dictionary": dictionary_columns(table.schema)} if mode == "baseline_our_encoding" else {}
        pq.write_table(table, out, compression="zstd", **encoding)
        rows = int(counts.sum())
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM")
    return {"rows": int(rows), "seconds": seconds, "peak_rss_mib": peak, "rss_after_imports_mib": rss_after_imports,
            "own_peak_mib": peak - rss_after_imports}


def _interleaved(raw: Path, scale: int, modes: tuple[str, ...], tmp: Path, each: list[dict]) -> list[dict]:
    """REPEATS runs of every mode on ``raw``, interleaved (a slow minute of a shared machine hits every side),
    each in a fresh process; the median run of each mode."""
    size_mb = raw.stat().st_size / 1e6
    measured = {mode: [] for mode in modes}
    for repeat in range(REPEATS):
        for mode in modes:
            output = tmp / f"{raw.stem}_{mode}_{repeat}.parquet"
            child = subprocess.run([sys.executable, __file__, "--child", mode, str(raw), str(output)],
                                   capture_output=True, text=True, check=True, cwd=REPO)
            run = json.loads(child.stdout.strip().splitlines()[-1])
            run.update(mode=mode, scale=scale, file=raw.name, file_mb=size_mb, output_mb=output.stat().st_size / 1e6,
                       rows_per_s=run["rows"] / run["seconds"], mb_per_s=size_mb / run["seconds"])
            measured[mode].append(run)
            each.append(run)
    return [_median_run(runs) for runs in measured.values()]


def _median_run(runs: list[dict]) -> dict:
    """The run of median seconds, with every run's seconds beside it."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [run["seconds"] for run in runs]}


def main(base_entries: int, scales: tuple[int, ...] = (1, 10)) -> dict:
    results = {"base_entries": base_entries, "repeats": REPEATS, "runs": [], "lzma_runs": [], "each": []}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            raw = Path(tmp) / f"x{scale}.root"
            make_file(raw, base_entries * scale)
            results["runs"] += _interleaved(raw, scale, MODES, Path(tmp), results["each"])
        raw = Path(tmp) / f"x{LZMA_SCALE}_lzma.root"
        make_file(raw, base_entries * LZMA_SCALE, compression=uproot.LZMA(9))
        results["lzma_runs"] = _interleaved(raw, LZMA_SCALE, LZMA_MODES, Path(tmp), results["each"])
    out = REPO / "results/bench/ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(run_one(*sys.argv[2:5])))
    else:
        arguments = sys.argv[1:]
        scales = (1, 10)
        if "--scales" in arguments:
            at = arguments.index("--scales")
            scales, arguments = tuple(int(a) for a in arguments[at + 1:]), arguments[:at]
        report = main(int(arguments[0]) if arguments else CONFIG["toy"]["entries_per_file"], scales)
        for r in report["runs"] + report["lzma_runs"]:
            print(f"{r['mode']:22s} {r['file']:14s} {r['rows']:>9d} rows {r['rows_per_s']:>12.0f} rows/s "
                  f"{r['mb_per_s']:>7.1f} MB/s peak {r['peak_rss_mib']:>7.0f} MiB (own {r['own_peak_mib']:>5.0f}) "
                  f"out {r['output_mb']:.1f} MB; seconds {', '.join(f'{t:.3f}' for t in r['all_seconds'])}")
