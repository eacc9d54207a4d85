"""Optional C export of the covariance GAN generator (``export.c: true``): emit, compile, check.

LHCb deploys its generators as generated C. Their tool, scikinC, converts Sequential Keras models
only, and our generator is residual (``h = h + Dense(h)``), so LHCb first "collapses" it into an
equivalent Sequential form. We chose instead to write this small emitter ourselves: the generator
is a handful of Dense layers and additions, which is ~100 lines of C, needs no extra dependency,
no rewriting of the model, and follows the residual graph exactly as ``build_generator`` defines it.

The C function works in *model space*, exactly like ``model.onnx``::

    void fastsim_generator(const float *conditions, const float *noise, float *targets, int n_rows);

``conditions`` [n_rows, n_conditions] and ``noise`` [n_rows, noise_dim] row-major float32 (the
conditions already transformed with ``transforms.json`` 'conditions' forward, the noise independent
standard normal), ``targets`` [n_rows, n_targets] written in transformed units. With the model's
transforms (the export stage always passes them) the source also holds ``fastsim_generate_physical``:
physical conditions in, physical covariance elements out, the transforms emitted as C by
:mod:`pipeline_steps.export.c_transforms` and checked against the framework's physical outputs.
Weights are ``static const float`` arrays written as ``%.8e`` (9 significant digits: exact float32 round trip).

The emitted source is compiled with the system compiler (``$CC``, default ``gcc``,
``-O2 -shared -fPIC``, no fast-math so float semantics match ONNX Runtime closely), loaded with
ctypes and run on the export's verification batch; the output must agree with ONNX Runtime within the
export tolerance (:func:`pipeline_steps.export.verify.compare`) or :class:`BundleVerificationError` is
raised.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.export.c_transforms import PHYSICAL_FUNCTION, PHYSICAL_SIGNATURE, emit_physical_function
from pipeline_steps.export.verify import compare, compare_physical

log = logging.getLogger(__name__)

SOURCE, HEADER, LIBRARY = "generator.c", "generator.h", "libfastsim_generator.so"
FUNCTION = "fastsim_generator"
SIGNATURE = f"void {FUNCTION}(const float *conditions, const float *noise, float *targets, int n_rows)"
COMPILE_FLAGS = ("-O2", "-shared", "-fPIC", "-std=c99")

# Keras activation name -> C expression of ``x`` (float). Keras' leaky_relu default slope is 0.2.
ACTIVATIONS = {
    "linear": "x",
    "relu": "(x > 0.0f ? x : 0.0f)",
    "leaky_relu": "(x > 0.0f ? x : 0.2f * x)",
    "tanh": "tanhf(x)",
    "sigmoid": "(1.0f / (1.0f + expf(-x)))",
    "elu": "(x > 0.0f ? x : expm1f(x))",
    "silu": "(x / (1.0f + expf(-x)))",
    "swish": "(x / (1.0f + expf(-x)))",
}


@dataclass(frozen=True)
class DenseWeights:
    """One Dense layer: ``y = activation(x @ kernel + bias)``, kernel [n_in, n_out] as Keras stores it."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: str


def generator_layers(generator, architecture) -> list[DenseWeights]:
    """The generator's Dense layers in order: ``dense_in``, ``residual_0..k-1``, ``targets``.

    Layer names and the residual structure are those of
    :func:`pipeline_steps.models.covariance_gan.build_generator`.
    """
    names = ["dense_in", *[f"residual_{k}" for k in range(architecture.generator_residual_steps)], "targets"]
    layers = []
    for name in names:
        try:
            layer = generator.get_layer(name)
        except ValueError as error:
            raise InputError(f"C export: generator has no layer {name!r}; expected build_generator's layout") from error
        kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        activation = getattr(layer.activation, "__name__", str(layer.activation))
        if activation not in ACTIVATIONS:
            raise ConfigError(f"hyperparameters.activation: C export knows {sorted(ACTIVATIONS)}, got {activation!r}")
        layers.append(DenseWeights(name, kernel, bias, activation))
    return layers


# ------------------------------------------------------------------------------------------- emit
def _array(name: str, values: np.ndarray) -> str:
    values = np.asarray(values, np.float32).ravel()
    if not np.isfinite(values).all():
        raise InputError(f"C export: {name} holds non-finite weights; the trained generator is broken")
    numbers = [f"{float(v):.8e}f" for v in values]  # 9 significant digits, always a valid float literal
    rows = [", ".join(numbers[i:i + 8]) for i in range(0, len(numbers), 8)]
    return f"static const float {name}[{len(numbers)}] = {{\n  " + ",\n  ".join(rows) + "\n};\n"


def _c_name(layer: DenseWeights) -> str:
    """C identifier of a layer (prefixed: the Keras name ``targets`` would shadow the output argument)."""
    return f"layer_{layer.name}"


def _dense_function(layer: DenseWeights) -> str:
    """``static void <name>(const float *in, float *out)``: out = act(in @ kernel + bias)."""
    n_in, n_out = layer.kernel.shape
    c = _c_name(layer)
    return (f"static void {c}(const float *in, float *out) {{\n"
            f"  for (int j = 0; j < {n_out}; ++j) {{\n"
            f"    float x = {c}_b[j];\n"
            f"    for (int i = 0; i < {n_in}; ++i) x += in[i] * {c}_w[i * {n_out} + j];\n"
            f"    out[j] = {ACTIVATIONS[layer.activation]};\n"
            f"  }}\n}}\n")


def emit_header(architecture, names: tuple[list[str], list[str]] | None = None) -> str:
    """generator.h: what a caller needs without this project. ``names`` (conditions, targets in physical
    units) when the source holds the physical function too."""
    a = architecture
    declarations = (
        "/* Model space: conditions [n_rows][FASTSIM_N_CONDITIONS] transformed (transforms.json 'conditions'\n"
        "   forward), targets [n_rows][FASTSIM_N_TARGETS] transformed (apply transforms.json 'targets' inverse). */\n"
        f"{SIGNATURE};\n")
    if names is not None:
        conditions, targets = names
        declarations += (
            "\n/* Physical in, physical out, with transforms.json applied in C (float64):\n"
            f"   conditions [n_rows][FASTSIM_N_CONDITIONS], in this order: {', '.join(conditions)};\n"
            f"   targets [n_rows][FASTSIM_N_TARGETS], in this order: {', '.join(targets)};\n"
            "   both in the units of the training table's branches, the targets held to the training support.\n"
            "   A row whose conditions are not finite, or outside a transform's domain (a log of x + offset <= 0),\n"
            "   gets NaN targets; nothing else signals an error. */\n"
            f"{PHYSICAL_SIGNATURE};\n")
    return ("/* Covariance GAN generator exported by pipeline_steps.export.c_export; see bundle.json (c, variables).\n"
            f"   Build: cc {' '.join(COMPILE_FLAGS)} -o {LIBRARY} {SOURCE} -lm\n"
            "   noise [n_rows][FASTSIM_NOISE_DIM]: independent standard normal float32 from any generator, a stream\n"
            "   of its own for each file or job (run_bundle.py seeds numpy's by --seed and a digest of the file's\n"
            "   values: one seed for all files had repeated row i's noise in each); the output is a pure function\n"
            "   of conditions and noise. Reentrant: only constant data, no state, so threads may call it at once.\n"
            "   All arrays row-major. */\n"
            "#ifndef FASTSIM_GENERATOR_H\n#define FASTSIM_GENERATOR_H\n\n"
            f"#define FASTSIM_N_CONDITIONS {a.n_conditions}\n#define FASTSIM_NOISE_DIM {a.noise_dim}\n"
            f"#define FASTSIM_N_TARGETS {a.n_targets}\n\n"
            f"#ifdef __cplusplus\nextern \"C\" {{\n#endif\n{declarations}#ifdef __cplusplus\n}}\n#endif\n\n"
            "#endif\n")


def emit_source(layers: list[DenseWeights], architecture) -> str:
    """C99 source of :data:`SIGNATURE`: concatenate, Dense(hidden), residual steps, linear output."""
    a = architecture
    first, residuals, last = layers[0], layers[1:-1], layers[-1]
    parts = [f'#include <math.h>\n#include "{HEADER}"\n\n']
    for layer in layers:
        parts += [_array(f"{_c_name(layer)}_w", layer.kernel), _array(f"{_c_name(layer)}_b", layer.bias), "\n"]
    parts += [_dense_function(layer) + "\n" for layer in layers]
    step = ("      {name}(h, u);\n"
            "      for (int j = 0; j < {hidden}; ++j) h[j] += u[j];\n")
    steps = "".join(step.format(name=_c_name(layer), hidden=a.hidden) for layer in residuals)
    parts.append(
        f"{SIGNATURE} {{\n"
        f"  float x[{a.n_conditions + a.noise_dim}], h[{a.hidden}], u[{a.hidden}];\n"
        f"  for (int r = 0; r < n_rows; ++r) {{\n"
        f"    for (int i = 0; i < {a.n_conditions}; ++i) x[i] = conditions[(long)r * {a.n_conditions} + i];\n"
        f"    for (int i = 0; i < {a.noise_dim}; ++i) x[{a.n_conditions} + i] = noise[(long)r * {a.noise_dim} + i];\n"
        f"    {_c_name(first)}(x, h);\n"
        f"{steps}"
        f"    {_c_name(last)}(h, targets + (long)r * {a.n_targets});\n"
        f"  }}\n}}\n")
    return "".join(parts)


def write_sources(layers: list[DenseWeights], architecture, folder: str | Path, model_transforms=None) -> list[str]:
    """``generator.c`` and ``generator.h`` written atomically into ``folder``; returns their names.

    With ``model_transforms`` the source also holds :data:`PHYSICAL_SIGNATURE` (transforms in C).
    """
    folder = Path(folder)
    source = emit_source(layers, architecture)
    if model_transforms is not None:
        source += emit_physical_function(model_transforms, architecture, FUNCTION)
    names = None if model_transforms is None else (model_transforms.conditions.names, model_transforms.targets.names)
    write_text_atomic(folder / HEADER, emit_header(architecture, names))
    write_text_atomic(folder / SOURCE, source)
    return [SOURCE, HEADER]


# ---------------------------------------------------------------------------------- compile, run
def compile_library(source_dir: str | Path, library: str | Path) -> Path:
    """``$CC -O2 -shared -fPIC`` of ``source_dir/generator.c`` into ``library``; compiler errors raise."""
    compiler = os.environ.get("CC", "gcc")
    if shutil.which(compiler) is None:
        raise ConfigError(f"export.c: true needs a C compiler; {compiler!r} (from $CC or gcc) is not on PATH")
    source_dir, library = Path(source_dir), Path(library)
    command = [compiler, *COMPILE_FLAGS, "-o", str(library), str(source_dir / SOURCE), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise InputError(f"{source_dir / SOURCE}: {' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return library


def run_library(library: str | Path, conditions: np.ndarray, noise: np.ndarray, n_targets: int) -> np.ndarray:
    """Call :data:`FUNCTION` of a compiled library; returns targets float32 [n, n_targets]."""
    return _call(library, FUNCTION, conditions, noise, n_targets, np.float32)


def run_physical(library: str | Path, conditions: np.ndarray, noise: np.ndarray, n_targets: int) -> np.ndarray:
    """Call :data:`PHYSICAL_FUNCTION` (physical float64 conditions); returns physical targets float64."""
    return _call(library, PHYSICAL_FUNCTION, conditions, noise, n_targets, np.float64)


def _call(library: str | Path, name: str, conditions: np.ndarray, noise: np.ndarray, n_targets: int,
          dtype: type) -> np.ndarray:
    """``name(conditions, noise, targets, n)`` of the library: conditions and targets in ``dtype`` (float32 for
    the model, float64 for the physical function), the noise always float32 as the model draws it."""
    c_type = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    conditions = np.ascontiguousarray(conditions, dtype)
    noise = np.ascontiguousarray(noise, np.float32)
    targets = np.zeros((len(conditions), n_targets), dtype)
    function = getattr(ctypes.CDLL(str(Path(library).resolve())), name)
    function.argtypes = [ctypes.POINTER(c_type), ctypes.POINTER(ctypes.c_float), ctypes.POINTER(c_type), ctypes.c_int]
    function.restype = None
    function(conditions.ctypes.data_as(ctypes.POINTER(c_type)), noise.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
             targets.ctypes.data_as(ctypes.POINTER(c_type)), len(conditions))
    return targets


def check_physical(library: str | Path, physical_conditions: np.ndarray, noise: np.ndarray,
                   expected: dict[str, np.ndarray], tolerance: float) -> float:
    """The C physical function against the framework's physical outputs (``compare_physical``'s rule)."""
    names = list(expected)
    found = run_physical(library, physical_conditions, noise, len(names))
    return compare_physical({name: found[:, k] for k, name in enumerate(names)}, expected, tolerance)


def check_against_onnx(source_dir: str | Path, onnx_output: np.ndarray, conditions: np.ndarray, noise: np.ndarray,
                       tolerance: float) -> float:
    """Compile ``source_dir/generator.c`` afresh (a private temporary library, so a changed source is never
    masked by an already loaded one), run it and compare with ``onnx_output``; returns the largest difference."""
    with tempfile.TemporaryDirectory(prefix="fastsim_c_") as scratch:
        library = compile_library(source_dir, Path(scratch) / LIBRARY)
        c_output = run_library(library, conditions, noise, onnx_output.shape[1])
    return compare("C generator output (vs ONNX)", c_output, onnx_output, tolerance)


def export_c(generator, architecture, folder: str | Path, onnx_output: np.ndarray, conditions: np.ndarray,
             noise: np.ndarray, tolerance: float, physical=None) -> dict[str, Any]:
    """Emit, compile into ``folder`` and check against ONNX; returns the manifest's ``c`` section.

    ``physical`` = (model_transforms, physical conditions [n, n_cond], {target: framework physical
    output}) adds the transforms in C, checked against the framework's physical outputs.
    """
    folder = Path(folder)
    model_transforms, physical_conditions, physical_expected = physical if physical is not None else (None,) * 3
    files = write_sources(generator_layers(generator, architecture), architecture, folder, model_transforms)
    compile_library(folder, folder / LIBRARY)
    c_output = run_library(folder / LIBRARY, conditions, noise, architecture.n_targets)
    difference = compare("C generator output (vs ONNX)", c_output, onnx_output, tolerance)
    log.info("C export: %s compiled, max difference to ONNX %.3g on %d rows", LIBRARY, difference, len(conditions))
    section = {}
    if model_transforms is not None:
        section["physical_function"] = PHYSICAL_SIGNATURE
        section["physical_conditions"] = list(model_transforms.condition_names)
        section["max_physical_difference"] = check_physical(folder / LIBRARY, physical_conditions, noise,
                                                            physical_expected, tolerance)
        log.info("C export: %s (transforms in C) within %.3g of the framework's physical outputs",
                 PHYSICAL_FUNCTION, section["max_physical_difference"])
    return {
        **section,
        "function": SIGNATURE,
        "header": HEADER,
        "source": SOURCE,
        "library": LIBRARY,
        "compile": f"{os.environ.get('CC', 'gcc')} {' '.join(COMPILE_FLAGS)} -o {LIBRARY} {SOURCE} -lm",
        "space": "model space, like model.onnx: apply transforms.json around it (see transforms_recipe)",
        "max_difference_to_onnx": difference,
        "rows_checked": int(len(conditions)),
        "files": [*files, LIBRARY],
    }


def onnx_output(onnx_path: str | Path, conditions: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The ONNX generator's output with onnxruntime on CPU (the reference the C function must match)."""
    from pipeline_steps.export.run_bundle import open_session

    session = open_session(onnx_path)
    feeds = {"conditions": np.ascontiguousarray(conditions, np.float32),
             "noise": np.ascontiguousarray(noise, np.float32)}
    return np.asarray(session.run(None, feeds)[0], np.float32)


def verify_bundle_c(folder: str | Path) -> float:
    """Recompile a bundle's ``generator.c`` and check it against its ``model.onnx`` on ``verification.npz``."""
    from pipeline_steps.export.manifest import read_manifest
    from pipeline_steps.export.verify import load_verification

    folder = Path(folder)
    manifest = read_manifest(folder)
    groups = load_verification(folder)
    inputs, tolerance = groups["inputs"], float(manifest["verification"]["tolerance"])
    reference = onnx_output(folder / manifest["files"]["onnx"], inputs["conditions"], inputs["noise"])
    with tempfile.TemporaryDirectory(prefix="fastsim_c_") as scratch:  # compiled afresh: see check_against_onnx
        library = compile_library(folder, Path(scratch) / LIBRARY)
        c_output = run_library(library, inputs["conditions"], inputs["noise"], reference.shape[1])
        worst = compare("C generator output (vs ONNX)", c_output, reference, tolerance)
        if manifest["c"].get("physical_function"):
            physical_conditions = np.column_stack([groups["conditions_physical"][name]
                                                   for name in manifest["c"]["physical_conditions"]])
            worst = max(worst, check_physical(library, physical_conditions, inputs["noise"], groups["physical"],
                                              tolerance))
    return worst
