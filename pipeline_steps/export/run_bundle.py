#!/usr/bin/env python3
"""Standalone reference runner of an exported bundle: numpy + onnxruntime + uproot (and its awkward), nothing else.

Usage:  python run_bundle.py BUNDLE_DIR INPUT.root OUTPUT.root [--tree NAME] [--seed N] [--empty-tree empty_output]
        python run_bundle.py BUNDLE_DIR INPUT.root [INPUT.root ...] --output-dir DIR [options]   (or @LIST)

It reads ``bundle.json`` and ``transforms.json`` (+ ``.npz``), applies the preprocessing exactly as
the manifest describes, runs ``model.onnx`` and writes the result in physical units to a ROOT file.
This file deliberately does not import the project that made the bundle: it is the proof that the
bundle is complete, and a template for deploying it elsewhere.

Inputs per kind (branch names in the input tree; a column the workflow renamed is read from, and written
back to, its branch: ``bundle.json`` -> ``io.branches``):
- ``covariance_gan`` / ``flow``: one row per object, one flat branch per *physical* condition
  (``bundle.json`` -> ``variables.conditions``); SHiP-style categorised flows read ``category`` (1-4).
  A NanoAOD-like file keeps its objects as jagged collections (``Jet_pt``...): flatten them to one row
  per object first (the README's "Using a bundle elsewhere" shows how). Output: the conditions plus every
  generated target in physical units, in the branch types of the real table (``io.dtypes``).
- ``calratio_rnn``: the jet features (flat) and each sequence's fields as jagged branches
  (``<prefix><field>``). Output: the jet features plus ``prob_<class>`` per class.

Before it runs, it checks every file against ``bundle.json``'s sha256 checksums, onnxruntime's version,
and that every condition is present, one finite number per row that its transform takes (a log kind's x +
offset > 0), and a SHiP category one of the four:
a bad input stops with one line naming the branch and entry, never a file of NaN or unconverted rows.
It then reads, runs and writes the input a step of rows at a time (``--step-rows``), so that its memory
does not grow with the file; the values do not depend on the step.
The noise is numpy's (``--seed``), not the workflow's torch or TensorFlow generator: a bundle's rows match
the workflow's generated file in distribution, not row by row. Each file's random streams are seeded by
``--seed`` and a digest of the file's values, so that files run with the same ``--seed`` (a loop, a batch job
per file) do not repeat each other's noise, and the same values give the same rows in any file.

With ``--output-dir`` it runs many files in one process, each output named as its input; the bundle is loaded
once (~0.55 s a file otherwise), and a file's output is the one it gets alone. ``--skip-existing`` leaves out the
files whose outputs are newer than they and the bundle: a list stopped by a time limit goes on where it stopped.

Exit status: 0 written; 2 a bad input or bundle (one line on stderr); 143 stopped by SIGTERM (a batch time
limit, scancel) and 130 by Ctrl-C, with no output of the file under way and no temporary left (one a SIGKILL left
is removed by the next run of its output on that host, or named on stderr from another host). A file of more
than one step logs its progress on stderr after the first step, then at most every 30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np

DEQUANTIZE_MARGIN = 1e-3
LOG_KINDS = ("log_standard", "log10_quantile_normal")  # the kinds that take params.offset
BATCH_ROWS = 2048  # rows per ONNX Runtime call on an input too small to measure on: see open_session
CALL_ROWS_TRIED = (512, 1024, 2048, 4096)  # the call sizes measured on a large input: see CallSizeMeasurement
MEASURING_ROUNDS = 3  # calls of each size, interleaved; the first of each pays ONNX Runtime's allocations
# 92,160: the measured calls (23,040 rows) are a quarter or less. Their cost, with the Xeon's rates relative to the
# fastest size (jets 0.97 / 1 / 0.85 / 0.71 for 512-4096; SHiP 0.89 / 0.94 / 1 / 0.93): where 2048 is the fastest,
# they take the time of 24,350 rows at 2048 instead of 23,040, 1.4 % more for an input of 92,160 rows; where 1024
# is, the time of 2,084 rows more than 2048 would, repaid by the rest at 1024 after 11,800 rows (0.176 of a row's
# time saved a row), so an input of 92,160 rows runs ~9 % faster than at 2048, a larger one up to 15 %.
MEASURE_FROM_ROWS = 4 * MEASURING_ROUNDS * sum(CALL_ROWS_TRIED)
MIN_CALL_ROWS = 8  # fewer rows per call take another matrix kernel path: see Bundle.run_onnx
MIN_ONNXRUNTIME = (1, 20, 1)  # 1.18 to 1.20.0 round a flow's output by batch size: see Bundle.run_onnx
MIN_ONNXRUNTIME_PYTHON = (3, 10)  # PyPI has no onnxruntime 1.20.1 or later for Python 3.9 (1.19.2 the last)
BUNDLE_FORMAT = 2  # the bundle.json "format" this runner reads: pipeline_steps/export/manifest.py FORMAT_VERSION


class BundleError(ValueError):
    """A bad input or a changed bundle: ``main`` prints it as one line, without a traceback."""


def check_onnxruntime_version(version: str, python: tuple = tuple(sys.version_info[:2])) -> None:
    """Refuse an onnxruntime before :data:`MIN_ONNXRUNTIME` (1.20.0 gave 191 of 293 jets another pt). On Python
    3.9 (EL9's system ``python3``) pip finds 1.19.2 at most, :data:`MIN_ONNXRUNTIME_PYTHON`: say so, or the
    advice to install a newer one cannot be followed."""
    found = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    if found < MIN_ONNXRUNTIME:
        wanted = ".".join(map(str, MIN_ONNXRUNTIME))
        python_too = "" if python >= MIN_ONNXRUNTIME_PYTHON else (
            f" (its wheels need Python {'.'.join(map(str, MIN_ONNXRUNTIME_PYTHON))} or later; this is Python "
            f"{'.'.join(map(str, python))})")
        raise BundleError(f"onnxruntime {version} rounds a model's output by batch size; install "
                          f"onnxruntime>={wanted}{python_too}")


# ------------------------------------------------------------------------------------ ONNX Runtime
def open_session(path, threads: int = 1, providers=("CPUExecutionProvider",)):
    """An ONNX Runtime session with the settings every session of the workflow uses.

    Here, in the standalone runner, because the runner must import nothing of the project; the
    project's own sessions (export verification, the C export's check, benchmarks) call this one.
    ``threads``: the cores the job was given (Snakemake ``threads``; 1 for the export rule's
    verification batch). One inter-op thread and sequential execution: the graphs are chains, with
    no independent branches worth a second pool. All graph optimisations (constant folding,
    Gemm + activation fusion, common subexpressions; ONNX Runtime's default, stated so that it stays):
    1.8x the basic level on the flow graph as zuko's code traces, no measurable difference on the
    feature-major graph exported now (13-21k rows/s either way). Worker threads do not spin between operators: with 2 threads on 2 busy shared
    cores the jets-sized flow ran 9-12k rows/s without spinning, 4-8k with (1 thread: no workers,
    no difference).
    Rows per call: smaller calls pay the per-operator cost (~2000 operators a call for the jets-sized flow)
    more often, larger ones leave the caches, and where the best lies depends on the CPU and the model:
    on an AMD EPYC 2048 rows were the fastest of 128-16384 for the jets-sized flow (an older graph; 10.8k,
    20.2k and 10.5k rows/s, ahead of 1024 and 4096 by 5-50 %), on an Intel Xeon 1024 (2048 slower by
    12-15 %) for four of the five toy bundles and 2048 for SHiP's (2026-12-06). So a large input's call
    size is measured where it runs (:class:`CallSizeMeasurement`); ``--batch-rows`` fixes it, and the values
    do not depend on it (``Bundle.run_onnx``).
    """
    import onnxruntime as ort

    check_onnxruntime_version(ort.__version__)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=list(providers))


# ------------------------------------------------------------------------------------ bundle files
def read_manifest(folder: Path) -> dict:
    """``bundle.json``, refused in one line when ``folder`` is not a bundle this runner reads (a parent folder
    or a mistyped one had stopped with FileNotFoundError's traceback)."""
    path = folder / "bundle.json"
    if not path.is_file():
        raise BundleError(f"{folder}: no bundle.json; name a bundle folder, one export wrote (results/export/<model>/)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: not a bundle manifest ({type(error).__name__}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{path}: bundle format {found}; this runner reads format {BUNDLE_FORMAT}: run the "
                          f"run_bundle.py inside that bundle")
    return manifest


def load_json_with_arrays(path: Path) -> dict:
    """A transforms JSON with its ``{"npz": key}`` references replaced by the npz arrays."""
    document = json.loads(path.read_text())
    npz_path = path.with_name(document.get("arrays_file", path.with_suffix(".npz").name))
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return _insert(document, arrays)


def _insert(value, arrays):
    if isinstance(value, dict):
        if set(value) == {"npz"}:
            return arrays[value["npz"]]
        return {k: _insert(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_insert(v, arrays) for v in value]
    return value


class Bundle:
    """The manifest, the transforms document, the ONNX session (CPU) and SHiP categories if any."""

    def __init__(self, folder: str | Path, providers=("CPUExecutionProvider",), threads: int = 1,
                 batch_rows: int | None = None) -> None:
        if batch_rows is not None and batch_rows < 2 * MIN_CALL_ROWS:
            raise BundleError(f"--batch-rows {batch_rows}: at least {2 * MIN_CALL_ROWS} rows a call, so that every "
                              f"call of an evenly split file holds {MIN_CALL_ROWS} or more (see Bundle.run_onnx)")
        self.batch_rows = None if batch_rows is None else int(batch_rows)  # None: measured on the first large input
        self.rows_per_s_by_call: dict[int, float] = {}  # what that measurement found
        self.measurement: CallSizeMeasurement | None = None  # under way: its timed calls may span inputs
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        files = self.manifest["files"]
        self.transforms = load_json_with_arrays(self.folder / files["transforms"])
        categories = files.get("categories")
        self.categories = json.loads((self.folder / categories).read_text()) if categories else None
        self.session = open_session(self.folder / files["onnx"], threads, providers)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def measure_call_rows(self) -> None:
        """Measure the call size on the inputs to come (unless it is fixed or known): ``run_file`` calls it for
        a file of :data:`MEASURE_FROM_ROWS` rows or more, whose steps may each be shorter than the timed calls
        (a CalRatio step of 9,614 jets against 23,040 timed rows); :meth:`run_onnx` for such an input."""
        if self.batch_rows is None and self.measurement is None:
            self.measurement = CallSizeMeasurement()

    def run_onnx(self, feeds: dict, batch_rows: int | None = None) -> np.ndarray:
        """The model's single output for named float32 inputs, in calls of at most ``batch_rows`` rows (the
        bundle's ``batch_rows`` when not given; when neither is, measured (:class:`CallSizeMeasurement`) from
        the first input of :data:`MEASURE_FROM_ROWS` rows or more, or from :meth:`measure_call_rows` on, and
        kept; :data:`BATCH_ROWS` until it is known).

        The calls share the rows evenly (no short last call): ONNX Runtime's matrix kernels take
        another path for fewer than 8 rows, which moves a flow's output by float32 rounding; with
        calls of 8 rows or more the output does not depend on how the rows were split (ONNX Runtime
        1.20.1 and later, hence the pin; 1.18 to 1.20.0 rounded by batch size), so neither does it depend
        on the measured calls. Fewer rows than :data:`MIN_CALL_ROWS` are repeated up to it and the copies
        dropped, so a row alone in its call gets the values it gets inside any larger call (it had differed by
        5e-6 GeV in pt). No rows give no rows, of the output's width (``--empty-tree empty_output``).
        """
        batch_rows = self.batch_rows if batch_rows is None else batch_rows
        feeds = {name: np.asarray(value, dtype=np.float32) for name, value in feeds.items()}
        n = len(next(iter(feeds.values())))
        if n == 0:  # ONNX Runtime fails in the graph's first Reshape on no rows; the width is the graph's
            return np.zeros((0, *self.session.get_outputs()[0].shape[1:]), np.float32)
        if 0 < n < MIN_CALL_ROWS:
            repeated = {name: value[np.resize(np.arange(n), MIN_CALL_ROWS)] for name, value in feeds.items()}
            return self.run_onnx(repeated, batch_rows)[:n]
        pieces, done = [], 0
        if batch_rows is None:
            if n >= MEASURE_FROM_ROWS:
                self.measure_call_rows()
            if self.measurement is not None:
                pieces, done = self.measurement.run_some(self.session, feeds)
                if not self.measurement.planned:
                    self.rows_per_s_by_call, self.measurement = self.measurement.rates, None
                    self.batch_rows = batch_rows = max(self.rows_per_s_by_call, key=self.rows_per_s_by_call.get)
        batch_rows = BATCH_ROWS if batch_rows is None else batch_rows
        bounds = np.linspace(done, n, -(-(n - done) // batch_rows) + 1 if n > done else 2).astype(int)
        pieces += [self.session.run(None, _rows(feeds, start, stop))[0] for start, stop in zip(bounds[:-1], bounds[1:])]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _rows(feeds: dict, start: int, stop: int) -> dict:
    """One call's inputs: rows ``start:stop`` of each feed, contiguous as ONNX Runtime reads them."""
    return {name: np.ascontiguousarray(value[start:stop]) for name, value in feeds.items()}


class CallSizeMeasurement:
    """Calls of each of ``sizes`` rows, ``rounds`` times interleaved, each timed: each size's rows/s in its
    fastest call (``rates``), once every planned call has run.

    The fastest size differs by CPU and by model (:func:`open_session`), by 10-30 % among these four, so
    it is measured on the input itself, whose rows are needed anyway: on an input of
    :data:`MEASURE_FROM_ROWS` rows the timed calls are a quarter of it. The fastest call of each size
    is the one least disturbed by whatever else the machine runs, and the first call of a size pays ONNX
    Runtime's allocations for that shape; the rounds alternate their order so that neither a warming nor
    a slowing machine favours one end of ``sizes``. The calls run in order over as many inputs as they need
    (:meth:`run_some`): the runner's steps may be shorter than all of them.
    """

    def __init__(self, sizes=CALL_ROWS_TRIED, rounds: int = MEASURING_ROUNDS, clock=time.perf_counter) -> None:
        self.planned = [size for round_ in range(rounds) for size in (sizes if round_ % 2 == 0 else sizes[::-1])]
        self.rates: dict[int, float] = {}
        self.clock = clock

    def run_some(self, session, feeds: dict) -> tuple[list, int]:
        """The next planned calls on the first rows of ``feeds``, while the next one fits and leaves no rows
        or :data:`MIN_CALL_ROWS` or more after it (fewer would take another kernel path: ``Bundle.run_onnx``):
        their outputs, in row order, and the rows they cover."""
        n = len(next(iter(feeds.values())))
        outputs, done = [], 0
        while self.planned and (n - done - self.planned[0] == 0 or n - done - self.planned[0] >= MIN_CALL_ROWS):
            size = self.planned.pop(0)
            call = _rows(feeds, done, done + size)
            start = self.clock()
            outputs.append(session.run(None, call)[0])
            self.rates[size] = max(self.rates.get(size, 0.0), size / max(self.clock() - start, 1e-9))
            done += size
        return outputs, done


# ------------------------------------------------------------------------------------ transforms
def _piecewise(x, knots_in, knots_out):
    y = np.interp(x, knots_in, knots_out)
    low = (knots_out[1] - knots_out[0]) / (knots_in[1] - knots_in[0])
    high = (knots_out[-1] - knots_out[-2]) / (knots_in[-1] - knots_in[-2])
    below, above = x < knots_in[0], x > knots_in[-1]
    y[below] = knots_out[0] + (x[below] - knots_in[0]) * low
    y[above] = knots_out[-1] + (x[above] - knots_in[-1]) * high
    return y


def variable_forward(variable: dict, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One variable, physical -> transformed (float64); dequantisation noise from ``rng``.

    Order: dequantise, clip to [clip_low, clip_high] (when stored), log(x + offset) / log10(x + offset)
    (offset 0 when not stored), then the kind's scaling.
    """
    kind, p = variable["kind"], variable["params"]
    x = np.asarray(x, dtype=np.float64)
    if variable.get("dequantize"):
        x = np.floor(x) + rng.uniform(DEQUANTIZE_MARGIN, 1.0 - DEQUANTIZE_MARGIN, size=x.shape)
    x = _clipped(p, x)
    edge = {key: x == p[key] for key in ("point_mass_low", "point_mass_high") if key in p}
    if kind in LOG_KINDS:
        offset = p.get("offset", 0.0)
        shifted = x + offset
        if np.any(shifted <= 0):
            raise ValueError(f"transform {kind} of {variable['name']!r}: expected values > {0.0 - offset:g} "
                             f"(log of x + offset, offset {offset:g}), found minimum {np.min(x):g}")
        x = np.log(shifted) if kind == "log_standard" else np.log10(shifted)
    elif kind == "signed_log_standard":
        x = np.sign(x) * np.log1p(np.abs(x))
    for key, at_edge in edge.items():  # targets: an edge point mass spread over a block beyond the edge
        x = x.copy()
        x[at_edge] += (-1.0 if key == "point_mass_low" else 1.0) * p["point_mass_width"] * rng.uniform(
            DEQUANTIZE_MARGIN, 1.0, size=int(at_edge.sum()))
    if kind == "passthrough":
        return x.copy()
    if kind == "minmax":
        return 2.0 * (x - p["low"]) / (p["high"] - p["low"]) - 1.0
    if kind in ("standard", "log_standard", "signed_log_standard"):
        return (x - p["mean"]) / p["std"]
    if kind in ("quantile_normal", "log10_quantile_normal"):
        return _piecewise(x, p["x_knots"], p["z_knots"])
    raise ValueError(f"transform kind {kind!r} of {variable['name']!r} is not known to this runner")


def _clipped(params: dict, x: np.ndarray) -> np.ndarray:
    """``x`` held to the stored [clip_low, clip_high] (either may be absent); unchanged without both."""
    low, high = params.get("clip_low"), params.get("clip_high")
    if low is None and high is None:
        return x
    return np.clip(x, -np.inf if low is None else low, np.inf if high is None else high)


def variable_inverse(variable: dict, y: np.ndarray) -> np.ndarray:
    """One variable, transformed -> physical (exp(x) - offset for the log kinds), dequantisation undone,
    cast to the branch dtype. A clip is not undone: a clipped value comes back as its bound."""
    kind, p = variable["kind"], variable["params"]
    y = np.asarray(y, dtype=np.float64)
    if kind == "minmax":
        x = (y + 1.0) * 0.5 * (p["high"] - p["low"]) + p["low"]
    elif kind in ("standard", "log_standard", "signed_log_standard"):
        x = y * p["std"] + p["mean"]
    elif kind in ("quantile_normal", "log10_quantile_normal"):
        x = _piecewise(y, p["z_knots"], p["x_knots"])
    elif kind == "passthrough":
        x = y.copy()
    else:
        raise ValueError(f"transform kind {kind!r} of {variable['name']!r} is not known to this runner")
    if kind == "log_standard":
        x = np.exp(x) - p.get("offset", 0.0)
    elif kind == "log10_quantile_normal":
        x = np.power(10.0, x) - p.get("offset", 0.0)
    elif kind == "signed_log_standard":
        x = np.sign(x) * np.expm1(np.abs(x))
    if "point_mass_low" in p:  # the block a point mass was spread over, beyond the edge, is the edge value
        x = np.maximum(x, p["point_mass_low"])
    if "point_mass_high" in p:
        x = np.minimum(x, p["point_mass_high"])
    if variable.get("dequantize"):
        x = np.floor(x)
    return _to_dtype(x, np.dtype(variable.get("dtype", "float64")))


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.bool_:
        return x >= 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def variable_rngs(section: dict, seed: int | None = None) -> list:
    """One generator per variable of a set, seeded ``[seed, i]`` (the set's stored ``seed`` unless given)."""
    seed = int(section.get("seed", 0)) if seed is None else seed
    return [np.random.default_rng([seed, i]) for i in range(len(section["variables"]))]


def set_forward(section: dict, columns: dict, seed: int | None = None, rngs: list | None = None) -> np.ndarray:
    """A variable set (conditions or targets), physical columns -> float32 [n, k]. ``rngs``: the variables'
    generators carried on from the rows before (:class:`RandomStreams`), fresh ones (:func:`variable_rngs`) if
    not given."""
    variables = section["variables"]
    rngs = variable_rngs(section, seed) if rngs is None else rngs
    n = len(next(iter(columns.values()))) if columns else 0
    pieces = [variable_forward(v, columns[v["name"]], rng) for v, rng in zip(variables, rngs)]
    x = np.column_stack(pieces) if pieces else np.zeros((n, 0))
    decorrelation = section.get("decorrelation")
    if decorrelation is not None:
        x = (x - decorrelation["mean"]) @ np.asarray(decorrelation["matrix"]).T
    return x.astype(np.float32)


def set_inverse(section: dict, array: np.ndarray) -> dict:
    """A variable set, float [n, k] transformed -> {name: physical column}."""
    y = np.asarray(array, dtype=np.float64)
    decorrelation = section.get("decorrelation")
    if decorrelation is not None:
        y = y @ np.asarray(decorrelation["inverse_matrix"]).T + decorrelation["mean"]
    return {v["name"]: variable_inverse(v, y[:, i]) for i, v in enumerate(section["variables"])}


def _wrap_phi(angle):
    return np.pi - np.mod(np.pi - np.asarray(angle, dtype=np.float64), 2.0 * np.pi)


UPPER_ROWS, UPPER_COLS = np.triu_indices(5)
DIAGONAL = UPPER_ROWS == UPPER_COLS


def from_covariance_representation(values: np.ndarray, representation: str) -> np.ndarray:
    """[n, 15] values -> [n, 15] covariance elements (row-major upper triangle)."""
    values = np.asarray(values, dtype=np.float64)
    if representation == "elements":
        return values.copy()
    if representation == "logdiag_corr":
        sigma = np.exp(0.5 * values[:, DIAGONAL])
        rho = np.ones_like(values)
        rho[:, ~DIAGONAL] = np.tanh(values[:, ~DIAGONAL])
        return rho * sigma[:, UPPER_ROWS] * sigma[:, UPPER_COLS]
    if representation == "cholesky":
        factors = values.copy()
        factors[:, DIAGONAL] = np.exp(factors[:, DIAGONAL])
        lower = np.zeros((len(values), 5, 5))
        lower[:, UPPER_COLS, UPPER_ROWS] = factors
        return (lower @ np.swapaxes(lower, 1, 2))[:, UPPER_ROWS, UPPER_COLS]
    raise ValueError(f"target_representation {representation!r} is not known to this runner")


def targets_to_physical(document: dict, targets: dict, conditions: dict) -> dict:
    """Model-space targets -> physical: covariance representation and derived variables undone
    (ratio: a = r * b, or r * max(b, floor) when ``derived.<name>.floor`` is stored)."""
    names = [v["name"] for v in document["targets"]["variables"]]
    representation = document.get("target_representation", "elements")
    if representation != "elements":
        elements = from_covariance_representation(np.column_stack([targets[n] for n in names]), representation)
        targets = {n: elements[:, i] for i, n in enumerate(names)}
    out = {}
    for name in names:
        spec = document.get("derived", {}).get(name)
        if spec is None:
            out[name] = targets[name]
            continue
        source, reference = spec["of"]
        d, b = np.asarray(targets[name], np.float64), np.asarray(conditions[reference], np.float64)
        if spec["op"] == "ratio":
            out[source] = d * (b if spec.get("floor") is None else np.maximum(b, spec["floor"]))
        else:
            out[source] = d + b if spec["op"] == "difference" else _wrap_phi(d + b)
    return out


def within_support(document: dict, physical: dict, stored_precision: bool = True) -> dict:
    """Generated physical targets clipped to the training range; groups of parts of one whole (``sums``:
    energy fractions) scaled down together where their sum passes the training's largest; discrete ones
    snapped to seen values; reduced-precision ones rounded to their stored mantissa bits (unless
    ``stored_precision`` is False)."""
    support = document.get("support") or {}
    out = dict(physical)
    for name, (low, high) in support.get("ranges", {}).items():
        if name in out:
            out[name] = np.clip(np.asarray(out[name], np.float64), low, high)
    bits_of = support.get("mantissa_bits", {})
    for entry in support.get("sums", []):
        # scaled below high by the rounding to float32 and to the stored bits: those cannot lift it above high
        bits = min(int(bits_of.get(n, 23)) for n in entry["columns"])
        target = float(entry["high"]) / ((1.0 + 2.0 ** -(bits + 1)) * (1.0 + 2.0 ** -24))
        total = np.sum([out[name] for name in entry["columns"]], axis=0)
        scale = np.where(total > target, target / np.where(total > 0, total, 1.0), 1.0)
        out.update({name: out[name] * scale for name in entry["columns"]})
    for name in support.get("ranges", {}):
        if name not in out:
            continue
        x = out[name]
        allowed = np.asarray(support.get("values", {}).get(name, []), np.float64)
        if len(allowed) == 1:
            x = np.full_like(x, allowed[0])
        elif len(allowed) > 1:
            above = np.clip(np.searchsorted(allowed, x), 1, len(allowed) - 1)
            x = np.where(np.abs(allowed[above] - x) < np.abs(x - allowed[above - 1]), allowed[above], allowed[above - 1])
        bits = support.get("mantissa_bits", {}).get(name) if stored_precision else None
        if bits is not None:  # the stored precision: nearest float32 with that many mantissa bits
            shift = 23 - int(bits)
            as_int = x.astype(np.float32).view(np.uint32)
            x = ((as_int + np.uint32(1 << (shift - 1))) & np.uint32((0xFFFFFFFF << shift) & 0xFFFFFFFF)).view(
                np.float32).astype(np.float64)
        out[name] = x
    return out


def ship_denormalise(categories: dict, targets: dict, category: np.ndarray) -> dict:
    """SHiP: normalised (and broadened) per-category targets, held to [-1, 1] where every real row lies,
    -> physical; StartX/Y = 0 from the target."""
    out = {name: np.asarray(values, np.float64).copy() for name, values in targets.items()}
    for key, info in categories["categories"].items():
        rows = np.asarray(category) == int(key)
        if not rows.any():  # a category without rows here (or without muons in any file: no range)
            continue
        for name in info["variables"]:
            if name not in out or name == "weight":
                continue
            if name not in info["min"]:
                raise BundleError(f"category {key} has no {name} range in categories.json (no muons of it in the "
                                  f"training files), so its {int(rows.sum())} rows cannot be given physical values")
            values = np.clip(out[name][rows], -1.0, 1.0)
            if name in info["broadening"]:
                b = info["broadening"][name]
                widened = b["min"] + (values + 1.0) * 0.5 * (b["max"] - b["min"]) - b["mean"]
                values = np.sign(widened) * widened * widened + b["mean"]
            low, high = info["min"][name], info["max"][name]
            out[name][rows] = low + (values + 1.0) * 0.5 * (high - low)
        if info["from_target"]:
            for name in ("StartX", "StartY"):
                if name in out:
                    out[name][rows] = 0.0
    return out


def physical_outputs(bundle: Bundle, generated: np.ndarray, conditions: dict, stored_precision: bool = True) -> dict:
    """Generated targets (transformed, as the ONNX model returns them) -> physical columns.

    ``stored_precision=False`` skips only the final rounding to stored mantissa bits (verification)."""
    model_space = set_inverse(bundle.transforms["targets"], generated)
    if bundle.categories is not None:
        return ship_denormalise(bundle.categories, model_space, conditions["category"])
    return within_support(bundle.transforms, targets_to_physical(bundle.transforms, model_space, conditions),
                          stored_precision)


# ------------------------------------------------------------------------------------ running
class RandomStreams:
    """The seeded generators of one input file, carried on from step to step: the noise (``--seed``) and each
    condition's dequantisation (the transforms' stored seed), each seed keyed by the file's values
    (:func:`keyed_seed`, :class:`InputKey`). numpy's generators fill arrays in order, so rows drawn a step at a
    time get the values they get drawn at once: the output does not depend on ``--step-rows``."""

    def __init__(self, bundle: Bundle, seed: int, key: int = 0) -> None:
        self.noise = np.random.default_rng(keyed_seed(seed, key))
        section = bundle.transforms["conditions"]
        self.conditions = variable_rngs(section, keyed_seed(int(section.get("seed", 0)), key))


SEED_LIMIT = 2**64  # --seed and the transforms' stored seeds lie below it; a file's key is added above it


def keyed_seed(seed: int, key: int) -> int:
    """``seed + 2**64 * key``: a seed of its own for each (seed, input) pair, ``seed`` itself for the key 0.

    Seeded by ``--seed`` alone, every input file had drawn the same noise rows: row i of any two files got the
    same noise vector, and the jets' response pt / gen_pt of row i in two files of independent jets had a rank
    correlation of 0.84 (20,000 rows each), so a sample merged from N files held N near-copies of one set of
    fluctuations. numpy's ``SeedSequence`` takes the whole integer, so distinct pairs give distinct streams."""
    if not 0 <= seed < SEED_LIMIT:
        raise BundleError(f"--seed {seed}: expected a whole number from 0 to 2**64 - 1")
    return seed + SEED_LIMIT * key


class InputKey:
    """A 128-bit digest of every value the bundle reads from an input file (:func:`input_branches`), which keys
    the file's random streams (:class:`RandomStreams`): two files of other values never share noise, while the
    same values give the same rows whichever file holds them (a copy, a rewrite with other baskets or
    compression, an RNTuple), as the workflow's outputs follow from its inputs. The digest takes each branch's
    values, in its type, in entry order, fed a step at a time (a jagged branch's counts and contents apart), so
    it does not depend on ``--step-rows``. BLAKE2b: 28 ms for the jets bundle's 8 branches of 1M jets (Xeon), in
    a run of 27 s."""

    def __init__(self, branches: list[str]) -> None:
        self.parts = {branch: (hashlib.blake2b(digest_size=16), hashlib.blake2b(digest_size=16))
                      for branch in branches}

    def update(self, arrays) -> None:
        """Add a step's values (awkward arrays by branch, as :func:`input_steps` reads them)."""
        import awkward as ak  # uproot's own dependency

        for branch, (counts, contents) in self.parts.items():
            values = arrays[branch]
            if values.ndim > 1:
                counts.update(_little_endian(ak.to_numpy(ak.num(values, axis=1)).astype(np.int64)))
                values = ak.flatten(values)
            contents.update(_little_endian(ak.to_numpy(values)))

    def value(self) -> int:
        whole = hashlib.blake2b(digest_size=16)
        for branch, (counts, contents) in self.parts.items():
            whole.update(branch.encode() + b"\0" + counts.digest() + contents.digest())
        return int.from_bytes(whole.digest(), "little")


def _little_endian(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))


def generate(bundle: Bundle, conditions: dict, streams: RandomStreams) -> dict:
    """Physical conditions -> physical generated targets (noise: seeded standard normal, float32)."""
    x = set_forward(bundle.transforms["conditions"], conditions, rngs=streams.conditions)
    noise = bundle.manifest["noise"]
    z = streams.noise.standard_normal((len(x), int(noise["dim"]))).astype(np.float32)
    generated = bundle.run_onnx({"conditions": x, noise["input"]: z})
    return physical_outputs(bundle, generated, conditions)


def padded_sequence(fields: list, length: int, mean, std, pad_value: float) -> np.ndarray:
    """One sequence's fields (awkward lists per jet, of one length per jet: :func:`read_rows` checks it) ->
    [n, length, fields] float32: each jet's first ``length`` entries standardised per field in float64 from
    their float32 values, ``pad_value`` after. Only the real entries are computed, by numpy over the flat
    values: a Python loop per jet and float64 arithmetic over the whole padded tensor had taken 4.8 s for 50k
    toy jets, longer than the classifier."""
    import awkward as ak  # uproot's own dependency

    counts = ak.to_numpy(ak.num(fields[0], axis=1)).astype(np.int64)
    position = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)  # within its jet
    kept = position < length
    jets, slots = np.repeat(np.arange(len(counts)), counts)[kept], position[kept]
    padded = np.full((len(counts), length, len(fields)), pad_value, dtype=np.float32)
    for k, field in enumerate(fields):
        values = ak.to_numpy(ak.flatten(field, axis=1)).astype(np.float32)[kept].astype(np.float64)
        padded[jets, slots, k] = (values - float(mean[k])) / float(std[k])
    return padded


def calratio_inputs(bundle: Bundle, jets: dict, sequences: dict, rngs: list | None = None) -> dict:
    """Jet features (physical) + jagged sequence fields -> the classifier's named inputs."""
    section = bundle.transforms["calratio"]
    feeds = {"jets": set_forward(bundle.transforms["conditions"], jets, rngs=rngs)}
    for name, spec in section["sequences"].items():
        fields = [sequences[f"{spec['prefix']}{field}"] for field in spec["fields"]]
        feeds[name] = padded_sequence(fields, spec["length"], spec["mean"], spec["std"], section["pad_value"])
    return feeds


def classify(bundle: Bundle, jets: dict, sequences: dict, rngs: list | None = None) -> dict:
    probabilities = bundle.run_onnx(calratio_inputs(bundle, jets, sequences, rngs))
    return {f"prob_{name}": probabilities[:, i] for i, name in enumerate(bundle.manifest["variables"]["outputs"])}


def check_checksums(folder: Path, manifest: dict) -> None:
    """Every file ``bundle.json`` lists has its recorded sha256: an edited transforms.json or a rescaled
    weight had run without a word."""
    for name, expected in manifest.get("checksums", {}).items():
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in bundle.json but missing; the bundle is incomplete")
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise BundleError(f"{path}: sha256 {digest.hexdigest()[:12]}... is not the {expected[:12]}... bundle.json "
                              f"records: the file was changed after export; export the model again")


def _entries(start: int, stop: int) -> str:
    return f"entries {start}-{stop - 1}"


def check_categories(categories: dict, category: np.ndarray, where: str, start: int = 0) -> None:
    """SHiP: every row's category is one categories.json describes (a 7 or a 2.5 had come out unconverted).
    ``start``: the file's entry of the first row."""
    allowed = sorted(int(key) for key in categories["categories"])
    bad = ~np.isin(np.asarray(category, dtype=np.float64), allowed)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise BundleError(f"{where}: entry {start + first} has category {category[first]}; expected one of {allowed} "
                          f"({int(bad.sum())} of {_entries(start, start + len(category))} are not)")


def read_flat(arrays, branch: str, where: str, start: int, check: bool = True) -> np.ndarray:
    """One number per entry from ``branch`` of a step's arrays (the step's first entry is the file's
    ``start``), finite: the named error otherwise."""
    import awkward as ak  # uproot's own dependency

    values = arrays[branch]
    content = values.type.content
    if not isinstance(content, ak.types.NumpyType):
        what = "a list" if content.parameter("__array__") is None and values.ndim > 1 else str(content)
        raise BundleError(f"{where}: branch {branch!r} holds {what} per entry; this bundle reads one number per "
                          f"entry, one row per object: flatten a collection first (README, 'Using a bundle elsewhere')")
    values = ak.to_numpy(values)
    if check and values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(values))
        raise BundleError(f"{where}: branch {branch!r} entry {start + int(bad[0])} is {values[bad[0]]}; the model "
                          f"needs finite values ({len(bad)} of {_entries(start, start + len(values))} are not)")
    return values


def check_transform_domain(section: dict, conditions: dict, branches: dict, where: str, start: int) -> None:
    """Every condition in its transform's domain: a log kind takes only x + offset > 0 after the stored clip (the
    least a dequantised integer can become, floor(x) + the margin, for one that is dequantised). Its training had
    no value outside (preprocessing refuses one and asks for ``log_offset`` or a ``clip``), so the model was never
    shown one; a gen pt or a track momentum of 0 or below is a bad entry, not an extrapolation. The forward
    transform had stopped on it with a traceback naming neither the file nor the entry. ``branches``: each
    condition's input branch."""
    for variable in section["variables"]:
        if variable["kind"] not in LOG_KINDS:
            continue
        params, name = variable["params"], variable["name"]
        x = np.asarray(conditions[name], dtype=np.float64)
        least = np.floor(x) + DEQUANTIZE_MARGIN if variable.get("dequantize") else x
        offset = params.get("offset", 0.0)
        bad = ~(_clipped(params, least) + offset > 0)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise BundleError(f"{where}: branch {branches[name]!r} entry {start + first} is {conditions[name][first]}; "
                              f"this bundle's {variable['kind']} transform of {name!r} takes values above "
                              f"{0.0 - offset:g} only (its training had no other; {int(bad.sum())} of "
                              f"{_entries(start, start + len(x))} are not)")


def read_jagged(arrays, branch: str, where: str, start: int, check: bool = True):
    """A CalRatio sequence field of a step's arrays: a list per jet (an awkward array), of finite numbers."""
    import awkward as ak  # uproot's own dependency

    values = arrays[branch]
    if not check:
        return values
    if values.ndim != 2:
        raise BundleError(f"{where}: branch {branch!r} holds {values.type.content} per entry; this bundle reads one "
                          f"list of numbers per jet")
    bad = ak.to_numpy(ak.any(~np.isfinite(values), axis=1))
    if bad.any():
        raise BundleError(f"{where}: branch {branch!r} entry {start + int(np.argmax(bad))} holds a non-finite value; "
                          f"the model needs finite values ({int(bad.sum())} of {_entries(start, start + len(values))} "
                          f"do)")
    return values


def cast_outputs(columns: dict, dtypes: dict) -> dict:
    """Generated columns in the real table's branch types (``io.dtypes``): integers rounded, flags from 0.5."""
    return {name: _to_dtype(np.asarray(values, np.float64), np.dtype(dtypes[name])) if name in dtypes else values
            for name, values in columns.items()}


EMPTY_TREE = ("error", "empty_output")  # --empty-tree, as the workflow's datasets.<d>.empty_tree: error | empty_table
STEP_ROWS = 1 << 18
"""The most input rows read, run and written at a time (``--step-rows`` sets another; :func:`default_step_rows`).
The whole file at once had held ~620 bytes a row at its peak for the jets bundle (the conditions in float64
and float32, the noise, the outputs before and after the inverse transforms, the written columns): 0.78 GB for
1M rows and 3.3 GB for 5M (Xeon), past a batch job's usual 2-4 GB. A step of 262,144 such rows holds ~140 MB
above the imports' ~140 MB (280 MB peak) and writes baskets of 1 MB a float32 branch (uproot advises 100 kB or
more; ROOT reads one basket whole); it is above :data:`MEASURE_FROM_ROWS`, so a large file's first step
measures the ONNX call size."""
STEP_INPUT_BYTES = 64 << 20
"""The most model input (float32) a step holds. Rows are not all as wide: the jets flow reads 25 values a row,
the LHCb GAN 139 (its noise is 128 wide, drawn in float64), a CalRatio jet 1745 (its padded clusters, tracks
and segments). At 25 values :data:`STEP_ROWS` holds 26 MB of it; the GAN's step is 120,699 rows, CalRatio's
9,614 jets. Peak RSS on the Xeon, imports included: 1M LHCb tracks 459 MB (1.75 GB at once), 50k toy CalRatio
jets 386 MB (2.09 GB at once: 42 kB a jet). A CalRatio step is shorter than the call-size measurement's timed
calls; a file of :data:`MEASURE_FROM_ROWS` rows or more still measures them, over its first steps
(``Bundle.measure_call_rows``)."""


def default_step_rows(bundle: Bundle) -> int:
    """:data:`STEP_ROWS`, or fewer where a row's model input is wide (:data:`STEP_INPUT_BYTES`)."""
    conditions = len(bundle.manifest["variables"]["conditions"])
    if bundle.kind == "calratio_rnn":
        sequences = bundle.transforms["calratio"]["sequences"].values()
        values = conditions + sum(spec["length"] * len(spec["fields"]) for spec in sequences)
    else:
        values = conditions + int(bundle.manifest["noise"]["dim"])
    return max(1, min(STEP_ROWS, STEP_INPUT_BYTES // (4 * values)))


def run_file(bundle_dir: str, input_root: str, output_root: str, tree: str | None = None, seed: int = 0,
             batch_rows: int | None = None, empty_tree: str = "error", step_rows: int | None = None) -> int:
    """Read the input tree, run the bundle, write ``output_root`` (tree of the same name); returns the rows
    written. :func:`run_files` for one file."""
    return sum(run_files(bundle_dir, [(input_root, output_root)], tree, seed, batch_rows, empty_tree, step_rows))


def run_files(bundle_dir: str, pairs: list, tree: str | None = None, seed: int = 0, batch_rows: int | None = None,
              empty_tree: str = "error", step_rows: int | None = None, output_dir: str | None = None):
    """Check the run, load the bundle, and return a generator that runs it on each ``(input, output)`` of ``pairs``
    in turn, yielding each file's rows once its output is written.

    The options, the outputs and the local inputs are checked for every file before the bundle is loaded, and the
    bundle once for all (its checksums, the ONNX session, the call size measured on the first large file): the
    imports and the session cost ~0.55 s a file (Xeon, warm caches; more where Python is read from a network file
    system), what the jets-size flow takes for ~20,000 rows, so a job of many small files is one run
    (``--output-dir``): 20 files of 20,000 rows took 9.7 s in one run against 21.0 s a process each. A file's
    output does not depend on the other files (its streams are keyed by its own values: :class:`RandomStreams`);
    a bad file stops the run, after the files before it are written whole.

    A tree without entries is refused (``empty_tree="error"``), as the workflow refuses one by default: ONNX
    Runtime had stopped on it with a traceback from inside the graph. A skim can leave files empty on purpose;
    ``empty_tree="empty_output"`` then writes the output tree with its branches and types and no entries, so
    that a loop over files gives one output per input and ``hadd`` merges them.

    ``output_dir`` (``--output-dir``, the folder of every output) is made once the options are known good
    (:func:`make_output_dir`).
    """
    if empty_tree not in EMPTY_TREE:
        raise BundleError(f"--empty-tree {empty_tree!r}: expected one of {list(EMPTY_TREE)}")
    keyed_seed(seed, 0)  # a seed out of range is refused before anything runs
    if step_rows is not None and step_rows < 1:
        raise BundleError(f"--step-rows {step_rows}: expected 1 or more rows a step")
    if output_dir is not None:
        make_output_dir(output_dir)
    pairs = [(str(input_root), check_output(str(input_root), str(output_root))) for input_root, output_root in pairs]
    check_inputs_and_outputs(pairs)
    check_checksums(Path(bundle_dir), read_manifest(Path(bundle_dir)))  # before any file of the bundle is loaded
    bundle = Bundle(bundle_dir, batch_rows=batch_rows)
    return _each_file(bundle, pairs, tree or bundle.manifest["io"]["tree"], seed, empty_tree,
                      step_rows or default_step_rows(bundle))


def _each_file(bundle: Bundle, pairs: list, tree: str, seed: int, empty_tree: str, step_rows: int):
    so_far = RunSoFar()
    for input_root, output_root in pairs:
        measured = bool(bundle.rows_per_s_by_call)
        rows = run_input(bundle, input_root, output_root, tree, seed, empty_tree, step_rows, so_far)
        so_far.rows += rows
        if bundle.rows_per_s_by_call and not measured:  # measured on this input: what this CPU preferred
            rates = ", ".join(f"{size}: {rate:.0f}" for size, rate in bundle.rows_per_s_by_call.items())
            print(f"ONNX Runtime calls of {bundle.batch_rows} rows, the fastest measured here (rows/s {rates})",
                  file=sys.stderr)
        yield rows


class RunSoFar:
    """What a run of several files knows of the files before the current one: their rows (the call size is
    measured from the file that brings them to :data:`MEASURE_FROM_ROWS`: a list of small files measures it
    too, its calls spanning files), and the first file of each :class:`InputKey`."""

    def __init__(self) -> None:
        self.rows = 0
        self.first_with_key: dict = {}

    def same_values(self, input_root: str, key: int, entries: int) -> str | None:
        """The file before ``input_root`` that holds the same values, if any (files without entries aside)."""
        first = self.first_with_key.setdefault(key, input_root) if entries else input_root
        return None if first == input_root else first


def run_input(bundle: Bundle, input_root: str, output_root: Path, tree: str, seed: int, empty_tree: str,
              step_rows: int, so_far: RunSoFar) -> int:
    """One file: its rows written to ``output_root``; ``so_far``: the files before it in the run.

    The input is read twice, ``step_rows`` entries at a time: first to check every branch (a NaN in the last
    entry stops the run before any inference; reading is ~1 % of the time) and take the key of its values that
    seeds its random streams (:func:`check_input`), then to run and write each step, so that memory does not grow
    with the file (:data:`STEP_ROWS`, :data:`STEP_INPUT_BYTES`). The output does not depend on the step: ONNX
    Runtime's values do not depend on the call (``Bundle.run_onnx``), and the random streams carry on
    (:class:`RandomStreams`)."""
    with open_input(input_root) as source:
        events, where = input_tree(bundle, source, input_root, tree, empty_tree)
        if so_far.rows + events.num_entries >= MEASURE_FROM_ROWS:  # steps shorter than the timed calls
            bundle.measure_call_rows()
        key = check_input(bundle, events, where, step_rows)
        same = so_far.same_values(input_root, key, events.num_entries)
        if same:  # a SHiP list of categories written twice: another seed gives another sample
            print(f"{input_root} holds the values of {same}, every branch the bundle reads: its output repeats "
                  f"that file's rows (pass it another --seed for another sample)", file=sys.stderr)
        streams = RandomStreams(bundle, seed, key)
        progress = Progress(events.num_entries)
        with OutputTree(output_root, tree) as output:
            for start, arrays in input_steps(events, input_branches(bundle), step_rows):
                output.write(run_rows(bundle, *read_rows(bundle, arrays, where, start, check=False), streams))
                progress.step_written(start + len(arrays))
        return events.num_entries


def check_output(input_root: str, output_root: str) -> Path:
    """The output's path on this machine, once it is known not to be a URL nor the input, and its folder to
    exist: before the model runs, not after."""
    if remote(output_root):
        raise BundleError(f"{output_root}: the output must be a path on this machine, not a URL: it is written "
                          f"under a temporary name and renamed once complete; write it here and copy it (xrdcp), "
                          f"or name a mounted path (/eos/...)")  # it had read "no folder <cwd>/root:/eos..."
    output = local_path(output_root)
    if output.resolve() == local_path(input_root).resolve():
        raise BundleError(f"{output}: the output would replace the input file; name another output")
    if not output.resolve().parent.is_dir():
        raise BundleError(f"{output}: no folder {output.resolve().parent} to write the output into")
    return output


def make_output_dir(output_dir: str) -> None:
    """Make ``--output-dir`` and its parents where they are missing, said on stderr: the jobs of an array given
    one new folder had each stopped with "no folder ... to write the output into", a resubmission of them all
    (many jobs making it at once is fine). A URL is left to :func:`check_output`, which refuses it."""
    if remote(output_dir):
        return
    folder = local_path(output_dir)
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file of that name, no permission, a read-only filesystem
        raise BundleError(f"--output-dir {output_dir}: cannot be made a folder ({error.strerror or error})") from None
    print(f"made the output folder {output_dir}", file=sys.stderr)


def check_inputs_and_outputs(pairs: list) -> None:
    """Every local input exists, and no two inputs write one output (two ``nano_1.root`` of other folders into
    one ``--output-dir``), before the first file runs: a typo in a list of 1,000 files had been found after the
    999 before it."""
    written_by: dict = {}
    for input_root, output in pairs:
        if not (remote(input_root) or local_path(input_root).is_file()):
            raise BundleError(f"{input_root}: no such file")
        first = written_by.setdefault(output.resolve(), input_root)
        if first != input_root:
            raise BundleError(f"{output}: both {first} and {input_root} would write it; give the inputs distinct "
                              f"names, or run them apart")


def without_repeats(pairs: list) -> list:
    """``pairs`` without a file listed again for the same output, each repeat named on stderr: two lists merged
    (``cat``, a dataset query run twice) had run a file twice to one output, and the file under a relative and an
    absolute path had stopped the run as two files writing one output. A file run to two outputs runs twice."""
    first: dict = {}
    for input_root, output_root in pairs:
        key = (_file_of(input_root), _file_of(output_root))
        if key in first:
            print(f"{input_root} is listed again (as {first[key][0]}): run once, to {first[key][1]}", file=sys.stderr)
        first.setdefault(key, (input_root, output_root))
    return list(first.values())


def without_existing(pairs: list, manifest: Path) -> list:
    """``pairs`` without those whose output is newer than its input and ``manifest`` (``--skip-existing``), said
    in one line on stderr. An output appears only once whole, under its name (:class:`OutputTree`), so one that
    exists is complete; newer than both, it was written from this input by this bundle, as ``make`` reads
    times: a bundle exported again or copied (``cp`` without ``-p``) makes every output older. A URL's input
    has no time here, so its output is compared with the bundle only; a missing or unreadable input or bundle
    keeps nothing (the run then names it). Kept outputs are not read: one of another ``--seed`` or ``--tree`` is kept too."""
    def kept(input_root: str, output_root: str) -> bool:
        try:
            written = os.stat(local_path(output_root)).st_mtime_ns
            sources = [os.stat(manifest), *([] if remote(input_root) else [os.stat(local_path(input_root))])]
        except OSError:  # missing, or not to be read here: the run says which
            return False
        return all(written > source.st_mtime_ns for source in sources)

    is_kept = [kept(*pair) for pair in pairs]
    outputs = [output for (_, output), done in zip(pairs, is_kept) if done]
    if outputs:
        print(f"--skip-existing: kept {len(outputs)} of {len(pairs)} outputs, each newer than its input and the "
              f"bundle ({outputs[0]}{', ...' if len(outputs) > 1 else ''}); {len(pairs) - len(outputs)} to run",
              file=sys.stderr)
    return [pair for pair, done in zip(pairs, is_kept) if not done]


def _file_of(path: str) -> str:
    """What a path names, for comparing paths: a local one resolved (links, ``..``, relative), a URL as written."""
    return path if remote(path) else os.path.realpath(local_path(path))


def output_name(input_root: str) -> str:
    """The output's name in ``--output-dir``: the input's own file name (of a URL's path too)."""
    if URL.match(input_root):
        from urllib.parse import urlparse

        return Path(urlparse(input_root).path).name
    return Path(input_root).name


def check_input(bundle: Bundle, events, where: str, step_rows: int) -> int:
    """Read the input once, a step at a time: every value checked (:func:`read_rows`), and its
    :class:`InputKey` returned."""
    key = InputKey(input_branches(bundle))
    for start, arrays in input_steps(events, input_branches(bundle), step_rows):
        read_rows(bundle, arrays, where, start, check=True)
        key.update(arrays)
    return key.value()


class Progress:
    """One stderr line after a file's first step, then at most one each :data:`PROGRESS_EVERY_S`: the entries
    written, the rate and the time left. A batch job of a few million rows runs for minutes (5M jets: ~130 s
    on the Xeon) and had logged nothing until its end, so a stalled job and a slow one looked alike. The first
    line comes after one step (~7 s for the jets bundle), with the rate and time left that the rest will take;
    a file of one step, where the run's end comes as soon, prints none (its first step is its last)."""

    def __init__(self, entries: int, clock=time.monotonic, every_s: float | None = None) -> None:
        self.entries, self.clock = entries, clock
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.started = self.last = clock()
        self.lines = 0

    def step_written(self, stop: int) -> None:
        """Entries ``[0, stop)`` are written."""
        now = self.clock()
        if stop >= self.entries or (self.lines and now - self.last < self.every_s):
            return
        rate = stop / max(now - self.started, 1e-9)
        print(f"entries 0-{stop - 1} of {self.entries} written ({100 * stop / self.entries:.0f} %), "
              f"{rate:.0f} rows/s, about {(self.entries - stop) / rate:.0f} s left", file=sys.stderr, flush=True)
        self.last, self.lines = now, self.lines + 1


PROGRESS_EVERY_S = 30.0  # a 5M-row run (~130 s) logs ~5 lines; --step-rows 1000 would otherwise log one per step


def input_steps(events, branches: list[str], step_rows: int):
    """``(start, arrays)`` of each step of ``step_rows`` entries: the file's first entry of the step, and the
    step's ``branches`` (awkward arrays by name); one empty step for an empty tree, so that its output still
    gets its branches. uproot's ``iterate`` keeps a basket that spans two steps for the next one: reading each
    step's entry range on its own had decompressed a file written in one basket a branch once a step (1.4 of
    6.4 s for 50k toy CalRatio jets in six steps)."""
    if events.num_entries == 0:
        yield 0, events.arrays(branches, entry_start=0, entry_stop=0, library="ak")
        return
    start = 0
    for arrays in events.iterate(branches, step_size=step_rows, library="ak"):
        yield start, arrays
        start += len(arrays)


def input_tree(bundle: Bundle, source, input_root: str, tree: str, empty_tree: str):
    """The input tree and its name for messages, once it is known to hold every branch the bundle reads (and,
    unless ``empty_tree`` allows it, an entry)."""
    if tree not in source:
        raise BundleError(f"{input_root}: no tree {tree!r} (bundle.json io.tree; --tree names another); found "
                          f"{sorted({key.split(';')[0] for key in source.keys()})}")
    events, where = source[tree], f"{input_root}:{tree}"
    if not all(hasattr(events, name) for name in ("num_entries", "keys", "iterate")):
        raise BundleError(_not_rows(source, tree, where))
    if events.num_entries == 0 and empty_tree == "error":
        raise BundleError(f"{where}: the tree has no entries, so there is nothing to run the model on "
                          f"(--empty-tree empty_output writes an output tree without entries)")
    wanted = input_branches(bundle)
    missing = [name for name in wanted if name not in events.keys()]
    if missing:
        raise BundleError(f"{where}: no branch {missing}; this bundle reads {wanted}, one row per object (a file "
                          f"that keeps objects in collections needs them flattened first: README, 'Using a "
                          f"bundle elsewhere')")
    return events, where


def _not_rows(source, tree: str, where: str) -> str:
    """Why ``tree`` cannot be read as rows: it names a histogram or a directory (``--tree`` another object), or an
    RNTuple this uproot cannot read (uproot 5.0 reads the RNTuple that uproot 5.7 or ROOT 6.34 writes as an
    unknown object). Each had stopped with an AttributeError's traceback."""
    import uproot

    kind = source.classname_of(tree)
    if kind == "ROOT::RNTuple":
        return (f"{where} is an RNTuple, which this uproot ({uproot.__version__}) cannot read: install a newer "
                f"uproot (pip install --upgrade uproot), or convert it to a TTree")
    trees = sorted(source.keys(filter_classname=["TTree", "TNtuple*", "ROOT::RNTuple"], cycle=False))
    return f"{where} is a {kind}, not a TTree or an RNTuple (--tree names the tree to read); the file has trees {trees}"


def input_branches(bundle: Bundle) -> list[str]:
    """Every branch the bundle reads: the conditions', then CalRatio's sequences'."""
    return condition_branches(bundle) + sequence_branches(bundle)


def condition_branches(bundle: Bundle) -> list[str]:
    """The input branch of each condition: its column name, or the branch ``io.branches`` maps it back to."""
    branches = bundle.manifest["io"].get("branches", {})
    return [branches.get(name, name) for name in bundle.manifest["variables"]["conditions"]]


def sequence_branches(bundle: Bundle) -> list[str]:
    """CalRatio: each sequence's fields, ``<prefix><field>``; none for the other kinds."""
    if bundle.kind != "calratio_rnn":
        return []
    return [f"{s['prefix']}{f}" for s in bundle.transforms["calratio"]["sequences"].values() for f in s["fields"]]


def read_rows(bundle: Bundle, arrays, where: str, start: int, check: bool) -> tuple[dict, dict]:
    """A step's conditions under their column names, and CalRatio's sequences under their branches; with
    ``check``, every value checked (the named error for the first bad entry, ``start`` the step's first)."""
    branches = dict(zip(bundle.manifest["variables"]["conditions"], condition_branches(bundle)))
    conditions = {name: read_flat(arrays, branch, where, start, check) for name, branch in branches.items()}
    sequences = {branch: read_jagged(arrays, branch, where, start, check) for branch in sequence_branches(bundle)}
    if check:
        check_transform_domain(bundle.transforms["conditions"], conditions, branches, where, start)
    if check and bundle.categories is not None:
        check_categories(bundle.categories, conditions["category"], f"{where} branch 'category'", start)
    if check and sequences:
        check_sequence_counts(bundle, sequences, where, start)
    return conditions, sequences


def check_sequence_counts(bundle: Bundle, sequences: dict, where: str, start: int) -> None:
    """CalRatio: the fields of one sequence hold as many entries per jet (one counter in a real file, such as
    nClusters): a jet's clusters are the same clusters in every field."""
    import awkward as ak  # uproot's own dependency

    for spec in bundle.transforms["calratio"]["sequences"].values():
        branches = [f"{spec['prefix']}{field}" for field in spec["fields"]]
        counts = [ak.to_numpy(ak.num(sequences[branch], axis=1)) for branch in branches]
        for branch, found in zip(branches[1:], counts[1:]):
            if not np.array_equal(found, counts[0]):
                first = int(np.flatnonzero(found != counts[0])[0])
                raise BundleError(f"{where}: entry {start + first} has {found[first]} values in {branch!r} and "
                                  f"{counts[0][first]} in {branches[0]!r}; a sequence's fields hold one value per "
                                  f"cluster, track or segment")


def run_rows(bundle: Bundle, conditions: dict, sequences: dict, streams: RandomStreams) -> dict:
    """One step's output columns under their branch names: the conditions and the generated targets (or
    CalRatio's class probabilities)."""
    if bundle.kind == "calratio_rnn":
        columns = {**conditions, **classify(bundle, conditions, sequences, streams.conditions)}
    else:
        generated = cast_outputs(generate(bundle, conditions, streams), bundle.manifest["io"].get("dtypes", {}))
        columns = {**conditions, **generated}
    branches = bundle.manifest["io"].get("branches", {})
    return {branches.get(name, name): np.asarray(values) for name, values in columns.items()}


def open_input(path: str):
    """The input file opened by uproot; a missing, truncated or unreadable file is a ``BundleError`` naming it.

    The header's end-of-file pointer is compared with the file's size first, as the workflow's ingestion does
    (``pipeline_steps/ingest/reader.py``; this file imports nothing of the project): ROOT writes a file's keys
    at its end, so a copy cut anywhere before its last tenth failed in ``uproot.open`` with "expected Chunk of
    length 381, received 0 bytes" and a traceback. Header: ``root``, fVersion, fBEGIN, then fEND as 4 bytes,
    or 8 from fVersion 1000000 (files past 2 GB).

    A URL (``root://`` with fsspec-xrootd installed, ``https://``, ``file://``) goes to uproot as it is, as the
    ``uproot.open`` a physicist would write: a file on EOS or dCache is read where it lies. Its size is not
    known before it is opened, so a remote copy cut short is named by uproot's error instead.
    """
    if URL.match(path):
        return _open_with_uproot(path, path)
    source = Path(path)
    if not source.is_file():
        raise BundleError(f"{path}: no such file")
    with open(source, "rb") as stream:
        header = stream.read(20)
    if len(header) >= 16 and header[:4] == b"root":
        end = int.from_bytes(header[12:20] if int.from_bytes(header[4:8], "big") >= 1_000_000 else header[12:16], "big")
        if source.stat().st_size < end:
            raise BundleError(f"{path}: truncated ROOT file: the header says {end} bytes, the file has "
                              f"{source.stat().st_size}")
    return _open_with_uproot(source, path)  # a Path: a string's "name:tree" would be split at the colon


URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # a scheme: root://, https://, file://


def remote(path: str) -> bool:
    """A URL that names no file on this machine (``root://``, ``https://``; not ``file://``)."""
    return bool(URL.match(path)) and not path.startswith("file://")


def local_path(path: str) -> Path:
    """The file a path or a ``file://`` URL names on this machine (another URL's is not local: its own path)."""
    if path.startswith("file://"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        return Path(url2pathname(urlparse(path).path))
    return Path(path)


def _open_with_uproot(target, path: str):
    import uproot

    try:
        return uproot.open(target, array_cache=None)  # each step is read twice and then let go: see run_file
    except Exception as error:  # noqa: BLE001  uproot's, its decompressors', deserialisation's and fsspec's own classes
        message = " ".join(str(error).split())  # one line: uproot's messages run over several
        raise BundleError(f"{path}: cannot be opened as a ROOT file ({type(error).__name__}: {message})") from None


def output_compression():
    """ZSTD level 1, as the workflow's generated files (``pipeline_steps/generate/root_io.py``): uproot's default
    ZLIB(1) took 1.49 s of a 1M-row jets run's ~25 s to write its 25 branches, ZSTD(1) 0.35 s, and the file is
    smaller (48.8 MB against 51.0; Xeon). ROOT reads ZSTD since 6.20. An uproot before 5.4 compresses ZSTD only
    with the ``zstandard`` package, which the README's install line does not bring: ZLIB(1) there."""
    import uproot

    try:
        uproot.ZSTD(1).compress(b"\0" * 64)
    except ImportError:
        return uproot.ZLIB(1)
    return uproot.ZSTD(1)


TEMPORARY_END = ".tmp.root"
#: ``<host>_<pid namespace>_<pid>_<token>``: the writer of a temporary (:class:`OutputTree`). The host has no dots
#: or underscores (:func:`this_process_place`), so another output's temporary (``out.root.x.root``'s) never matches.
WRITER = re.compile(r"(?P<host>[A-Za-z0-9-]+)_(?P<namespace>\d+)_(?P<pid>\d+)_[0-9a-f]{8}")


def this_process_place() -> tuple[str, str]:
    """(host name, dots and underscores made dashes; pid namespace): where a pid names one process. Containers
    (Docker, Kubernetes) number their processes apart; Apptainer shares the host's numbers."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    try:
        namespace = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:  # not Linux
        namespace = "0"
    return host, namespace


def remove_leftovers(path: Path) -> None:
    """Remove the temporaries of ``path`` whose writer is gone, and name on stderr those it cannot tell of.

    A run killed outright (SIGKILL: the OOM killer, SLURM 30 s after a time limit's SIGTERM, a lost node) runs no
    ``finally``, so its hidden temporary, up to the whole output's size, had stayed beside the outputs for good,
    each rerun adding one (a bundle run is nobody's only writer, unlike a workflow job). A temporary of this host
    and pid namespace whose process has exited is removed; one of another host may be a live run's (the same file
    in two array tasks' lists), so it is only named, with what to do. A reused pid keeps a leftover: the safe side.
    The workflow's own writes do the same in ``pipeline_steps/common/atomic.py``, which the runner cannot import.
    """
    prefix, here = f".{path.name}.", this_process_place()
    try:
        names = [name for name in os.listdir(path.parent) if name.startswith(prefix) and name.endswith(TEMPORARY_END)]
    except OSError:  # the folder is checked, and named, when the output is opened
        return
    for name in names:
        writer = WRITER.fullmatch(name[len(prefix):-len(TEMPORARY_END)])
        if writer is None:
            continue
        if (writer["host"], writer["namespace"]) != here:
            print(f"{path.parent / name}: a temporary of {path} written on {writer['host']} (process {writer['pid']}): "
                  f"a run there writes it, or was killed outright (SIGKILL, the OOM killer); remove it once no run "
                  f"writes {path.name}", file=sys.stderr)
        elif not _process_exists(int(writer["pid"])):
            with contextlib.suppress(FileNotFoundError):  # another run removed it first
                os.unlink(path.parent / name)
                print(f"removed {path.parent / name}, left by process {writer['pid']} of this host, which is gone",
                      file=sys.stderr)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process has this pid
        return True
    return True


class OutputTree:
    """``path``'s TTree ``tree`` written a step at a time (``write``: one basket per branch) under a temporary
    name beside ``path``, renamed into place when the ``with`` body ends without an error: a run killed while
    writing leaves no half-written output under the name a user reads. uproot writes to an open file object,
    so the file records uproot's name for such a sink, ``dynamic.root`` (as the workflow's generated files
    do), not the temporary one. A folder that cannot take the file (full, read-only) is a ``BundleError``."""

    def __init__(self, path: str | Path, tree: str) -> None:
        self.path, self.tree = Path(path), tree
        # host, pid and a random token: the same file in two array tasks' lists had two writers of one temporary
        # name, on two hosts whose pids matched, the second truncating the first's; "x" refuses a name in use
        host, namespace = this_process_place()
        self.temporary = self.path.with_name(f".{self.path.name}.{host}_{namespace}_{os.getpid()}_"
                                             f"{os.urandom(4).hex()}{TEMPORARY_END}")
        self._stream = self._sink = self._tree = None

    def __enter__(self) -> "OutputTree":
        import uproot

        remove_leftovers(self.path)
        try:
            self._stream = open(self.temporary, "xb+")
            self._sink = uproot.recreate(self._stream, compression=output_compression())
        except BaseException as error:  # a SIGTERM here too (Stopped): no __exit__ follows a failed __enter__
            if self._stream is not None:
                self._stream.close()
            if not isinstance(error, FileExistsError):  # another writer's: not this one's to remove
                self._remove_temporary()
            if isinstance(error, OSError):
                raise self._error(error) from None
            raise
        return self

    def write(self, columns: dict) -> None:
        try:
            if self._tree is None:  # `sink[tree] = columns` would write an RNTuple
                self._tree = self._sink.mktree(self.tree, {name: values.dtype for name, values in columns.items()})
            self._tree.extend(columns)  # (uproot 5.7's `"dir/tree" in sink` fails on a tree in a directory)
        except OSError as error:
            raise self._error(error) from None

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self._sink.close()
            self._stream.close()
            if kind is None:
                os.replace(self.temporary, self.path)
        except OSError as error:
            if kind is None:
                raise self._error(error) from None
        finally:
            self._remove_temporary()

    def _error(self, error: OSError) -> BundleError:
        return BundleError(f"{self.path}: cannot be written ({error.strerror or error})")

    def _remove_temporary(self) -> None:
        if self.temporary.exists():  # False, not NotADirectoryError, where the output's folder is a file
            self.temporary.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, fromfile_prefix_chars="@",
                                     usage="%(prog)s BUNDLE INPUT OUTPUT [options]\n"
                                           "       %(prog)s BUNDLE INPUT [INPUT ...] --output-dir DIR [options]")
    parser.convert_arg_line_to_args = _list_line
    parser.add_argument("bundle", help="the bundle's folder, as the export wrote it (results/export/<model>/)")
    parser.add_argument("files", nargs="+", metavar="INPUT OUTPUT",
                        help="the ROOT file to run on (a path, or a URL uproot reads: root://, https://) and the ROOT "
                             "file to write (replaced whole once complete); with --output-dir, one or more inputs, "
                             "and @LIST reads them from LIST, one a line")
    parser.add_argument("--output-dir", default=None,
                        help="write each input's output here (made if missing), under the input's file name: many "
                             "files in one run, "
                             "the bundle loaded once (~0.55 s a file otherwise); a bad file stops the run after the "
                             "files before it are written")
    parser.add_argument("--tree", default=None, help="input/output tree name (default: bundle.json io.tree)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generator noise, 0 to 2**64 - 1; each file's streams are keyed by its "
                             "values too, so files run with one seed do not share noise")
    parser.add_argument("--batch-rows", type=int, default=None,
                        help=f"rows per ONNX Runtime call (default: the fastest of {CALL_ROWS_TRIED} measured on an "
                             f"input of {MEASURE_FROM_ROWS} rows or more, {BATCH_ROWS} on a smaller one; the fastest "
                             f"depends on the CPU and the model); the values do not depend on it")
    parser.add_argument("--empty-tree", choices=EMPTY_TREE, default="error",
                        help="an input tree without entries: stop with an error (default), or write an output tree "
                             "with the same branches and no entries (a skim's empty files, merged later by hadd)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave out a file whose output exists and is newer than the file and the bundle's "
                             "bundle.json (outputs appear only once whole): a list stopped by a time limit, run "
                             "again, goes on where it stopped; another --seed or --tree needs another output folder")
    parser.add_argument("--step-rows", type=int, default=None,
                        help=f"input rows read, run and written at a time (default: {STEP_ROWS}, or fewer where a row "
                             f"is wide: ~140 MB a step for the jets bundle); the values do not depend on it")
    args = parser.parse_args(argv)
    if args.output_dir is None and len(args.files) != 2:
        parser.error(f"expected INPUT OUTPUT, or inputs and --output-dir DIR; got {len(args.files)} files")
    pairs = ([(name, os.path.join(args.output_dir, output_name(name))) for name in args.files] if args.output_dir
             else [tuple(args.files)])
    pairs = without_repeats(pairs)
    if args.skip_existing:
        pairs = without_existing(pairs, Path(args.bundle) / "bundle.json")
        if not pairs:
            return 0
    signal.signal(signal.SIGTERM, _stop)
    written = None  # the files written, once the checks of the whole run have passed
    try:
        files = run_files(args.bundle, pairs, args.tree, args.seed, args.batch_rows, args.empty_tree, args.step_rows,
                          args.output_dir)
        written = 0
        for (_, output), rows in zip(pairs, files):
            written += 1
            print(f"wrote {rows} rows to {output}" + (f" ({written} of {len(pairs)})" if len(pairs) > 1 else ""),
                  file=sys.stderr)
    except BundleError as error:
        where = _unwritten(written, pairs)
        print(f"run_bundle.py: error: {error}" + (f" (stopped{where})" if where else ""), file=sys.stderr)
        return 2
    except (Stopped, KeyboardInterrupt) as stop:
        number = stop.signal if isinstance(stop, Stopped) else signal.SIGINT
        where = _unwritten(written, pairs)
        print(f"run_bundle.py: stopped by {signal.Signals(number).name}" + (where or "; no output written"),
              file=sys.stderr)
        return 128 + number
    return 0


def _list_line(line: str) -> list:
    """A line of an @LIST file: one path, whole (spaces kept); blank lines and ``#`` comments skipped."""
    return [] if not line.strip() or line.lstrip().startswith("#") else [line.rstrip("\r\n")]


def _unwritten(written: int | None, pairs: list) -> str:
    """Where a run of several files stopped: the outputs before it are whole, the rest not written."""
    if len(pairs) < 2 or written is None:
        return ""
    return (f" at file {written + 1} of {len(pairs)}, {pairs[written][0]}: the {written} before it are "
            f"written, it and the {len(pairs) - written - 1} after it are not" if written < len(pairs) else "")


class Stopped(BaseException):
    """SIGTERM arrived: a batch system's time limit or ``scancel`` (SLURM sends SIGKILL 30 s later by default).
    A BaseException, as KeyboardInterrupt: an ``except Exception`` on the way (opening the input turns uproot's
    errors into a BundleError) must not report it as a bad input."""

    def __init__(self, number: int) -> None:
        super().__init__(f"signal {number}")
        self.signal = number


def _stop(number, frame) -> None:
    """Turn SIGTERM into an exception, so that the ``with`` blocks unwind: Python's default ends the process at
    once, and a job stopped at its time limit had left its ``.<output>.<host>_<pid>_<token>.tmp.root`` beside the
    outputs (a hidden file of up to the whole output's size, on EOS in the user's quota). Python runs the handler
    between two bytecodes: after the ONNX Runtime call under way, milliseconds."""
    raise Stopped(number)


if __name__ == "__main__":
    sys.exit(main())
