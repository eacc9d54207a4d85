"""Ingestion throughput and peak memory vs a plain uproot.concatenate + pyarrow.parquet.write_table.

Builds a NanoAOD-like file (the config's `nanoaod` jets mapping) at 1x and 10x the toy size, then runs,
each in a fresh subprocess (so ru_maxrss is that run's peak): ours = pipeline_steps.ingest.step.run,
baseline = uproot.concatenate of the same branches, ak.flatten of the jet fields, one write_table.
Writes results/bench/ingest.json and prints it.  Usage: python benchmarks/bench_ingest.py [entries]

Not the same work: the baseline reads the same branches but the nJet/nGenJet counters, matches
nothing and writes the 23 jet, identity and event columns for every jet (125k at 10x); ours checks
every branch against its counter, matches Jet_genJetIdx into GenJet, adds source_file/entry/
object_index and the 6 gen_ columns (32 columns) and drops the ~20% unmatched jets (100k rows), in
one row group per step_size. rows/s counts rows written on each side, so MB/s (input file per second)
is the like-for-like rate. Ours imports pipeline_steps.ingest inside the timed region (~0.05-0.1 s).
"""

from __future__ import annotations

import json
import resource
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


def make_file(path: Path, n_entries: int, seed: int = 1) -> None:
    """Write a NanoAOD-like Events tree with n_entries, ~5 jets and ~4 gen jets per entry."""
    rng = np.random.default_rng(seed)
    with uproot.recreate(path) as file:
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


def run_one(mode: str, raw: str, out: str) -> dict:
    """Child process: one ingestion, timed; returns rows, seconds, peak RSS (MiB)."""
    start = time.perf_counter()
    if mode == "ours":
        from pipeline_steps.ingest.step import run

        reading = {k: CONFIG[k] for k in ("tree", "step_size", "empty_tree", "identity")}
        rows = run([raw], out, out + ".json", reading, MAPPING, "jets", "nanoaod")[0]["rows_out"]
    else:
        branches = [f"Jet_{f}" for f in MAPPING["fields"]] + ["run", "luminosityBlock", "event"] + MAPPING["event_fields"]
        gen_branches = ["Jet_genJetIdx", *(f"GenJet_{f}" for f in MAPPING["match"]["fields"])]  # read, as ours does
        arrays = uproot.concatenate({raw: "Events"}, branches + gen_branches, library="ak")
        counts = ak.to_numpy(ak.num(arrays["Jet_pt"]))
        columns = {b: (ak.to_numpy(ak.flatten(arrays[b])) if b.startswith("Jet_") else np.repeat(ak.to_numpy(arrays[b]), counts)) for b in branches}
        pq.write_table(pa.table(columns), out, compression="zstd")
        rows = int(counts.sum())
    seconds = time.perf_counter() - start
    return {"rows": int(rows), "seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(base_entries: int) -> dict:
    results = {"base_entries": base_entries, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 10):
            raw = Path(tmp) / f"x{scale}.root"
            make_file(raw, base_entries * scale)
            size_mb = raw.stat().st_size / 1e6
            for mode in ("ours", "baseline"):
                child = subprocess.run([sys.executable, __file__, "--child", mode, str(raw), str(Path(tmp) / f"{mode}{scale}.parquet")],
                                       capture_output=True, text=True, check=True, cwd=REPO)
                measured = json.loads(child.stdout.strip().splitlines()[-1])
                measured.update(mode=mode, scale=scale, file_mb=size_mb, rows_per_s=measured["rows"] / measured["seconds"],
                                mb_per_s=size_mb / measured["seconds"])
                results["runs"].append(measured)
    out = REPO / "results/bench/ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(run_one(*sys.argv[2:5])))
    else:
        report = main(int(sys.argv[1]) if len(sys.argv) > 1 else CONFIG["toy"]["entries_per_file"])
        for r in report["runs"]:
            print(f"{r['mode']:8s} x{r['scale']:<3d} {r['rows']:>9d} rows {r['rows_per_s']:>12.0f} rows/s "
                  f"{r['mb_per_s']:>7.1f} MB/s peak {r['peak_rss_mib']:>7.0f} MiB")
