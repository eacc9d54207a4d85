"""`make bench`: run every benchmarks/bench_*.py, gather their rows into one table.

Each benchmark script writes ``results/bench/<name>.json`` holding ``{"rows": [...]}``; a row is a
measured pair taken in the same run: ``{"name", "ours", "baseline", "unit", "baseline_label"}``
(higher is better unless ``"lower_is_better": true``). This harness adds the ratio and the machine
and writes ``results/bench/bench.md`` and ``bench.json``.
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


def run_benchmarks(selected: list[str]) -> list[dict]:
    """Run each script in its own process (peak-memory figures must not mix)."""
    rows = []
    for script in sorted(BENCH_DIR.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if selected and name not in selected:
            continue
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True)
        took = time.perf_counter() - started
        print(f"{script.name}: exit {result.returncode} in {took:.0f} s", flush=True)
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
            continue
        output = OUT_DIR / f"{name}.json"
        if output.exists():
            for row in json.loads(output.read_text())["rows"]:
                rows.append({"benchmark": name, **row})
    return rows


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
    rows = [with_ratio(row) for row in run_benchmarks(argv)]
    (OUT_DIR / "bench.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (OUT_DIR / "bench.md").write_text(markdown(rows, machine))
    print((OUT_DIR / "bench.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
