"""Flow training throughput: our device-resident loader vs FlashSim's per-row h5py Dataset + DataLoader.

Same run, same data, same model, same optimiser; only the way batches reach the model differs:
  - ours: the split as one contiguous tensor on the device, a device-side ``torch.randperm`` per
    epoch sliced into batches (``pipeline_steps.train.flow.DeviceLoader``);
  - baseline: FlashSim's ``H5Dataset`` re-created (``__getitem__`` reads one row from the HDF5 file
    with h5py, ``np.searchsorted`` over file strides) behind ``torch.utils.data.DataLoader(shuffle=True)``,
    batches copied to the device; ``num_workers=0`` (the machine's cores are shared).
Both are timed for a full training epoch (forward, backward, AdamW step) and for the loading alone.
A third figure is the training rate of the production-size jets model (hidden 298, 10 blocks,
128 bins, 17 targets, 14 conditions, batch 2048) against FlashSim's ~7k rows/s on a V100
(5M rows x 600 epochs in about 5 days). Prints a JSON document; --output writes it too.

    .venv/bin/python benchmarks/bench_flow.py --rows 20000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow, select_device  # noqa: E402
from pipeline_steps.train.devices import describe_device  # noqa: E402
from pipeline_steps.train.flow import DeviceLoader, FlowData  # noqa: E402

N_CONDITIONS, N_TARGETS = 14, 17  # FlashSim's jets model
FLASHSIM_V100_ROWS_PER_SECOND = 5_000_000 * 600 / (5 * 24 * 3600)  # ~6.9k rows/s


class FlashSimH5Dataset(Dataset):
    """FlashSim's muon ``H5Dataset``: one h5py read per row, file found by ``np.searchsorted``."""

    def __init__(self, h5_paths: list[str]) -> None:
        self.h5_paths = h5_paths
        strides = []
        for path in h5_paths:
            with h5py.File(path, "r") as f:
                strides.append(len(f["data"]))
        self.strides = np.cumsum(strides)
        self._archives = None

    @property
    def archives(self):
        if self._archives is None:
            self._archives = [h5py.File(path, "r") for path in self.h5_paths]
        return self._archives

    def __len__(self) -> int:
        return int(self.strides[-1])

    def __getitem__(self, index):
        file_index = np.searchsorted(self.strides, index, side="right")
        in_file = index - (self.strides[file_index - 1] if file_index > 0 else 0)
        row = self.archives[file_index]["data"][in_file]
        return torch.from_numpy(row[N_CONDITIONS:]), torch.from_numpy(row[:N_CONDITIONS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--production-batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = select_device()
    rng = np.random.default_rng(0)
    table = rng.normal(size=(args.rows, N_CONDITIONS + N_TARGETS)).astype(np.float32)
    data = FlowData(table[:, :N_CONDITIONS].copy(), table[:, N_CONDITIONS:].copy(), np.ones(args.rows, np.float32))
    small = FlowHyperparameters(n_bins=8, hidden_dim=64, n_blocks=2)  # config.yaml's jets model
    result = {"device": describe_device("torch"), "rows": args.rows, "batch_size": args.batch_size,
              "threads": args.threads, "model": "jets, config.yaml sizes (8 bins, hidden 64, 2 blocks)"}
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "data.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=table)
        ours = DeviceLoader(data, args.batch_size, device)
        baseline = DataLoader(FlashSimH5Dataset([path]), batch_size=args.batch_size, shuffle=True, num_workers=0)
        loaders = {"ours_device_loader": lambda g: ours.epoch(g),
                   "flashsim_h5_dataloader": lambda g: _baseline_batches(baseline, device)}
        _training_rate(small, lambda g: ours.epoch(g), args.rows, device, max_batches=5)  # warm-up, not timed
        result["loading_only_rows_per_second"] = _interleaved(
            {name: (lambda e=epoch: _loading_rate(e, args.rows, device)) for name, epoch in loaders.items()}, args.repeats)
        result["training_epoch_rows_per_second"] = _interleaved(
            {name: (lambda e=epoch: _training_rate(small, e, args.rows, device)) for name, epoch in loaders.items()},
            args.repeats)
    for key in ("loading_only_rows_per_second", "training_epoch_rows_per_second"):
        pair = result[key]
        pair["ratio"] = pair["ours_device_loader"] / pair["flashsim_h5_dataloader"]
    result["production_size"] = _production_rate(data, device, args.production_batches)
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2))


def _interleaved(measurements: dict, repeats: int) -> dict:
    """Median of ``repeats`` runs of each measurement, taken in turn (a shared machine drifts)."""
    values = {name: [] for name in measurements}
    for _ in range(repeats):
        for name, measure in measurements.items():
            values[name].append(measure())
    return {name: float(np.median(v)) for name, v in values.items()} | {"repeats": repeats}


def _baseline_batches(loader: DataLoader, device: torch.device):
    for targets, conditions in loader:
        yield conditions.to(device), targets.to(device), torch.ones(len(targets), device=device)


def _loading_rate(epoch, rows: int, device: torch.device) -> float:
    """Rows/s of one epoch of batches, touching each batch so nothing is lazily skipped."""
    generator = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    checksum = torch.zeros((), device=device)
    for conditions, targets, _ in epoch(generator):
        checksum += conditions[0, 0] + targets[0, 0]
    float(checksum)
    return rows / (time.perf_counter() - start)


def _training_rate(hp: FlowHyperparameters, epoch, rows: int, device: torch.device,
                   max_batches: int | None = None) -> float:
    """Rows/s of one full training epoch (NLL, backward, AdamW) of a freshly built model."""
    model = _model(hp).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=device).manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    for index, (conditions, targets, weights) in enumerate(epoch(generator)):
        if max_batches is not None and index >= max_batches:
            break
        loss = (weights * -model.log_prob(targets, conditions)).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return rows / (time.perf_counter() - start)


def _production_rate(data: FlowData, device: torch.device, batches: int) -> dict:
    """FlashSim's production jets model, batch 2048: training rows/s over a few batches (after one warm-up)."""
    hp = FlowHyperparameters(n_bins=128, hidden_dim=298, n_blocks=10, activation="relu", batch_norm=True)
    batch_size = 2048
    rows = min(len(data), batch_size * (batches + 1))
    subset = FlowData(data.conditions[:rows], data.targets[:rows], data.weights[:rows])
    loader = DeviceLoader(subset, batch_size, device, drop_single=True)
    model = _model(hp).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    timed_rows, seconds = 0, 0.0
    for index, (conditions, targets, weights) in enumerate(loader.epoch(torch.Generator(device=device).manual_seed(0))):
        _sync(device)
        start = time.perf_counter()
        loss = (weights * -model.log_prob(targets, conditions)).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if index > 0:  # the first batch warms up allocators and kernels
            timed_rows += len(targets)
            seconds += time.perf_counter() - start
    rate = timed_rows / seconds if seconds else float("nan")
    return {"model": "FlashSim jets: 128 bins, hidden 298, 10 blocks, batch norm, batch 2048",
            "parameters": sum(p.numel() for p in model.parameters()), "timed_rows": timed_rows,
            "ours_rows_per_second": rate, "flashsim_v100_rows_per_second": FLASHSIM_V100_ROWS_PER_SECOND,
            "ratio": rate / FLASHSIM_V100_ROWS_PER_SECOND}


def _model(hp: FlowHyperparameters):
    torch.manual_seed(0)
    targets = [f"t{i}" for i in range(N_TARGETS)]
    spec = FlowSpec(conditions=[f"c{i}" for i in range(N_CONDITIONS)], targets=targets, hyperparameters=hp,
                    parts=[FlowPart(None, None, targets)])
    return build_flow(spec)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
