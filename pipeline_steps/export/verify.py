"""Verification of a bundle: checksums, ONNX vs a float64 reference of the framework, framework reload.

``verification.npz`` in the bundle holds one batch: the model inputs (transformed units), the noise,
the framework's float32 outputs on them, the same model evaluated in **float64** (``reference``) and,
for generative models, the physical conditions and the physical outputs of both (``pipeline_steps``
transforms). :func:`verify_bundle` recomputes everything from the bundle files alone and raises
:class:`BundleVerificationError` when a checksum differs or an output is beyond the bound below.

Float32 error analysis (why the bound is what it is)
----------------------------------------------------
Every float32 evaluation of the model (the framework at export, ONNX Runtime, the framework reloaded
on another CPU, with other SIMD kernels or thread counts) computes the same function with rounding
errors of relative size ``u = 2**-24`` per operation, summed in a kernel-dependent order. The output
error of one evaluation is ``sum_k A_k * delta_k``: the per-operation roundings ``delta_k`` times the
model's amplification ``A_k`` from that operation to the output. ``A_k`` belongs to the model and the
row, not to the implementation. For the spline flows it is large and very uneven: sampling runs the
*inverse* rational-quadratic splines, whose slope is at most ``1 / 1e-3`` (zuko's minimum slope),
and each coupling's output feeds the conditioner of the next, so over ``D`` couplings a few rows
reach amplifications of ``1e4``-``1e5`` while most rows stay near 1. A fixed absolute tolerance on the
worst row therefore only holds for the rounding pattern it was tuned on.

The rule therefore measures the amplification instead of guessing it:

1. Reference: the framework evaluates the same weights in float64 (torch ``.double()``, Keras with a
   float64 dtype policy). Its own error is ``~1e-8`` of the float32 one (measured: float64 results under
   ATen's avx2 and avx512 kernels agree to 1.5e-10 where float32 errs by 5e-3), i.e. exact here.
2. Scale: differences are divided by each output column's spread (std of the reference over the
   verification rows; ``max(1, |mean|)`` for a constant column), so they read as "fraction of the
   distribution's width", the unit a physicist judges a generator in, and columns are pooled.
3. Own error ``e``: framework float32 vs the reference. It is *this* model's float32 rounding error,
   row by row, the natural scale that any other float32 implementation also produces. Per element it is
   the largest over the plain float32 run and ``rounding_draws.DRAWS`` runs with every weight moved one
   ulp (``pipeline_steps/export/rounding_draws.py``), because on the worst row one run is one random draw
   of the error and can be lucky (below).
4. Found error ``d``: the checked output (ONNX, reloaded framework) vs the reference.
5. Bound, at each pooled quantile ``q`` of :data:`QUANTILES` (median, 99.9 %, worst element):
   ``d_q <= FACTOR * e_q + floor`` with ``floor = max(export.tolerance, FACTOR * u * max|ref| / spread)``
   (the second term is the float32 representation of the output value itself).
   The stored pair is checked first: the median of ``e`` must be below the floor (a rounding error
   is tiny for the typical element), so a wrong reference or an edited batch cannot widen the bound.
   ``FACTOR = 16``: two implementations differ in (a) the ulp error of their transcendental kernels
   (exp, softmax, sigmoid, tanh: correctly rounded to ~4 ulp in MLAS/SLEEF/Eigen/libm, a factor
   <= 4 against the 1 ulp that dominates ``e``) and (b) the summation order of dot products, which
   moves a sum's error between its typical ``sqrt(n) u`` and its worst ``n u`` per reduction, a
   factor up to ``sqrt(n)`` (<= 4 for the n <= 16 per-lane partial sums of 16-wide SIMD). Together
   ``4 x 4 = 16``. The median term catches a real defect (a changed weight, a wrong transform moves
   most rows, far above ``16 e_50`` which is ~``1e-7``), the quantile and worst terms allow the rounding
   tail of the badly conditioned rows, which is what breaks a fixed tolerance.

   Why the draws: when one badly conditioned row dominates, ``e_max`` from a single run is one draw of
   that row's rounding error, and two draws differ by more than 16x with a chance of ~2 / (16 pi) = 4%.
   A covariance GAN exported under ``ONEDNN_MAX_CPU_ISA=SSE41`` (TensorFlow's matmuls use oneDNN's
   sgemm, without FMA there) erred 2.4e-6 of a spread on a cancelling row where ONNX Runtime and
   TensorFlow with AVX2 FMA kernels both erred 5.5e-5 (23x); only the floor carried it (margin 2.65).
   Its one-ulp draws erred 8.2e-5, 6.6e-5, 6.6e-5, 1.3e-5 on that row, with the batch's median and
   99.9% errors unchanged, so the worst row's scale is measured instead of drawn once.

Physical outputs are checked in two parts:

- **the float32 rule in physical units**: the bundle's numpy transforms turn the ONNX output, the
  framework's float32 output and the float64 reference into physical columns, and the continuous ones
  follow the rule above, pooled. This is done *before* the final rounding to a stored precision
  (``support.mantissa_bits``: NanoAOD keeps e.g. 10 mantissa bits for b-tag scores), because rounding
  destroys the error it is measured from: a float32 difference far below the grid step ``s`` leaves
  most values alone, moves the rare value sitting on a rounding boundary by a whole ``s`` (1e4 times the
  error behind it), and hides the error of every other row, the badly conditioned ones included.
  Which rows flip is chance (~5,000 rounded elements per batch, ``e / s ~ 1e-3``): a jets export failed
  on a one-step flip of ONNX where the framework's own output had none, and with a one-step allowance a
  second one passed by 0.4% because the framework's large error on an amplified row had been rounded away.
  Discrete columns (integer dtype, or dequantised targets snapped to their seen values by the training
  support) can move by a whole step when a float32 difference crosses a boundary, so they keep a
  row-fraction rule: at most ``max(1, FACTOR * r)`` rows may differ, ``r`` being the rows where the
  framework's own float32 output (the plain run or a rounding draw, whichever has most) already differs
  from the reference.
- **the bundle's transforms are the project's**: the bundle's transforms, rounding included, applied to
  the framework's float32 output and to the float64 reference must give the physical values this
  project's transforms gave at export (stored in the batch). Both sides compute in float64 from the same
  model output, so they differ by ~1e-16 relative; ``export.tolerance`` (1e-4 of a column's spread)
  is far above that and far below any wrong transform. On a rounded column a float64 difference could
  still cross a rounding boundary (probability ~1e-9 per value), so there the part beyond one stored
  step at the project's value is what counts; discrete columns must agree on every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from pipeline_steps.common.errors import InputError
from pipeline_steps.export import run_bundle
from pipeline_steps.export.manifest import read_manifest

VERIFICATION_FILE = "verification.npz"
UNIT_ROUNDOFF = 2.0 ** -24
FACTOR = 16.0
QUANTILES = {"q50": 0.5, "q99.9": 0.999, "max": 1.0}
RULE = ("per pooled quantile q in (50%, 99.9%, max) of |output - float64 reference| / column spread: "
        "found_q <= factor * own_q + floor, own = framework float32 vs float64 reference (per element the "
        "largest over the plain run and its one-ulp weight draws), "
        "floor = max(tolerance, factor * 2**-24 * max|reference| / spread); physical columns before the "
        "stored-precision rounding; discrete physical columns: at most max(1, factor * own differing rows) rows "
        "differ; the bundle's transforms (rounding included) give the project's physical values within tolerance "
        "of each column's spread beyond one stored step (pipeline_steps/export/verify.py)")


class BundleVerificationError(InputError):
    """A bundle whose files or outputs do not match its manifest."""


def check_checksums(folder: str | Path, manifest: Mapping[str, Any]) -> None:
    """Every file listed in ``manifest['checksums']`` exists and has that sha256: the bundle's own runner's
    check (``run_bundle.check_checksums``, which a user's run makes too), raised as a verification error."""
    try:
        run_bundle.check_checksums(Path(folder), dict(manifest))
    except run_bundle.BundleError as error:
        raise BundleVerificationError(str(error)) from error


def compare(name: str, found: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    """Elementwise ``|a - b| <= tolerance * max(1, |b|)``; used for the C generator against ONNX Runtime.

    Both sides there run the same float32 graph on the same machine at export, so no amplification
    analysis is needed: the C code is checked for being the same arithmetic, not for kernel tolerance.
    """
    found, expected = np.asarray(found, np.float64), np.asarray(expected, np.float64)
    _check_shape(name, found, expected)
    scaled = np.abs(found - expected) / np.maximum(1.0, np.abs(expected))
    worst = float(np.nanmax(scaled)) if scaled.size else 0.0
    same_non_finite = np.array_equal(np.isfinite(found), np.isfinite(expected))
    if not same_non_finite or worst > tolerance:
        raise BundleVerificationError(f"{name}: differs from the framework by {worst:.3g} (tolerance {tolerance:g})")
    return worst


def compare_physical(found: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], tolerance: float) -> float:
    """The C generator's physical columns against the framework's (same machine, as :func:`compare`):
    continuous ``|a - b| <= t (|b| + std(b))``; integer columns may differ in at most a fraction ``t`` of
    rows (at least one). Returns the largest continuous relative difference."""
    worst = 0.0
    for name, reference in expected.items():
        if name not in found:
            raise BundleVerificationError(f"physical output {name!r} missing from the bundle's output")
        a, b = np.asarray(found[name], np.float64), np.asarray(reference, np.float64)
        if _integer_dtype(reference):
            differing = int(np.sum(a != b))
            if differing > max(1, int(tolerance * len(b))):
                raise BundleVerificationError(f"physical {name}: {differing} of {len(b)} integer values differ")
            continue
        scale = np.abs(b) + (float(np.std(b)) or 1.0)
        difference = float(np.max(np.abs(a - b) / scale)) if len(b) else 0.0
        if difference > tolerance:
            raise BundleVerificationError(f"physical {name}: differs from the framework by {difference:.3g} "
                                          f"(tolerance {tolerance:g})")
        worst = max(worst, difference)
    return worst


def check_against_reference(name: str, found: np.ndarray, own: np.ndarray, reference: np.ndarray,
                            tolerance: float, own_draws: Iterable[np.ndarray] = ()) -> dict[str, Any]:
    """The bound of the module doc for a [rows, columns] output; returns the measured numbers, raises beyond.

    ``found`` is the output being checked, ``own`` the framework's float32 output on the same inputs,
    ``reference`` the float64 one, ``own_draws`` the framework's rounding draws (``rounding_draws``):
    the own error of an element is the largest of its plain and drawn errors.
    """
    found, own, reference = (_as_table(a) for a in (found, own, reference))
    _check_shape(name, found, reference)
    if not np.isfinite(reference).all():  # NaN beside NaN compares as "the same": a broken model had verified
        raise BundleVerificationError(f"{name}: the model's own float64 output holds {int(np.sum(~np.isfinite(reference)))} "
                                      f"NaN or infinite values of {reference.size}; a broken (diverged?) model is not "
                                      f"exported: retrain it")
    if not np.array_equal(np.isfinite(found), np.isfinite(own)):
        raise BundleVerificationError(f"{name}: non-finite values at other places than in the framework's output")
    finite = np.isfinite(found) & np.isfinite(own) & np.isfinite(reference)
    spread = column_spread(reference)
    found_error = error_quantiles(np.abs(found - reference) / spread, finite)
    own_error = error_quantiles(own_error_table(own, own_draws, reference) / spread, finite)
    floor = error_floor(reference, spread, finite, tolerance)
    if own_error["q50"] > floor:
        raise BundleVerificationError(f"{name}: the framework's stored float32 output differs from its float64 "
                                      f"reference by a median {own_error['q50']:.3g} of the column spread (floor "
                                      f"{floor:.3g}); that is not rounding: the stored batch or the reference is wrong")
    allowed = {q: FACTOR * own_error[q] + floor for q in QUANTILES}
    failing = [q for q in QUANTILES if found_error[q] > allowed[q]]
    if failing:
        detail = ", ".join(f"{q} {found_error[q]:.3g} > allowed {allowed[q]:.3g} "
                           f"(= {FACTOR:g} x own float32 error {own_error[q]:.3g} + floor {floor:.3g})" for q in failing)
        raise BundleVerificationError(f"{name}: differs from the float64 reference beyond the float32 bound, in units "
                                      f"of each column's spread: {detail}")
    return {"found": found_error, "own_float32": own_error, "floor": floor, "allowed": allowed,
            "margin": _margin(found_error, allowed)}


def own_error_table(own: np.ndarray, draws: Iterable[np.ndarray], reference: np.ndarray) -> np.ndarray:
    """Per element, the largest ``|x - reference|`` over the plain float32 output and each rounding draw
    (a draw's non-finite element counts 0: the plain output decides where values are finite)."""
    error = np.abs(_as_table(own) - reference)
    for draw in draws:
        draw = _as_table(draw)
        _check_shape("rounding draw", draw, reference)
        with np.errstate(invalid="ignore"):
            error = np.fmax(error, np.where(np.isfinite(draw), np.abs(draw - reference), 0.0))
    return error


def check_physical(found: Mapping[str, np.ndarray], own: Mapping[str, np.ndarray],
                   reference: Mapping[str, np.ndarray], tolerance: float,
                   discrete: Iterable[str] = (),
                   own_draws: Iterable[Mapping[str, np.ndarray]] = ()) -> dict[str, Any]:
    """Physical columns: the continuous ones pooled under :func:`check_against_reference`, the discrete
    ones by rows (module doc); ``own_draws``: the rounding draws in physical units.
    Returns ``{"continuous": ..., "discrete": {name: {...}}}``."""
    own_draws = list(own_draws)
    discrete = set(discrete)
    for name in reference:
        if name not in found:
            raise BundleVerificationError(f"physical output {name!r} missing from the bundle's output")
    is_discrete = {name: name in discrete or _integer_dtype(reference[name]) for name in reference}
    report: dict[str, Any] = {"discrete": {}}
    for name in (n for n in reference if is_discrete[n]):
        report["discrete"][name] = _check_discrete(name, found[name], [own[name]] + [d[name] for d in own_draws],
                                                   reference[name])
    continuous = [n for n in reference if not is_discrete[n]]
    if continuous:
        stack = lambda columns: np.column_stack([np.asarray(columns[n], np.float64) for n in continuous])  # noqa: E731
        report["continuous"] = check_against_reference(f"physical {continuous}", stack(found), stack(own),
                                                       stack(reference), tolerance, [stack(d) for d in own_draws])
    return report


def check_bundle_transforms(name: str, bundle_values: Mapping[str, np.ndarray],
                            project_values: Mapping[str, np.ndarray], tolerance: float,
                            mantissa_bits: Mapping[str, int], discrete: Iterable[str] = ()) -> float:
    """The bundle's physical columns (its own numpy transforms) against the project's, from the same model
    output (module doc); returns the largest continuous difference beyond one stored step, in spreads."""
    discrete, worst = set(discrete), 0.0
    for column, expected in project_values.items():
        if column not in bundle_values:
            raise BundleVerificationError(f"{name}: physical output {column!r} missing from the bundle's output")
        found, expected = np.asarray(bundle_values[column], np.float64), np.asarray(expected, np.float64)
        _check_shape(f"{name} {column}", found, expected)
        if column in discrete or _integer_dtype(project_values[column]):
            differing = int(np.sum(found != expected))
            if differing:
                raise BundleVerificationError(f"{name}: discrete column {column!r} differs from this project's "
                                              f"transforms on {differing} of {len(expected)} rows")
            continue
        step = stored_precision_step(expected, mantissa_bits[column]) if column in mantissa_bits else 0.0
        spread = column_spread(expected.reshape(-1, 1))[0]
        beyond = np.maximum(np.abs(found - expected) - step, 0.0) / spread
        difference = float(np.max(np.where(np.isfinite(expected), beyond, 0.0))) if len(expected) else 0.0
        if not np.array_equal(np.isfinite(found), np.isfinite(expected)) or difference > tolerance:
            raise BundleVerificationError(f"{name}: column {column!r} differs from this project's transforms by "
                                          f"{difference:.3g} of its spread (tolerance {tolerance:g}): the bundle's "
                                          f"transforms are not the ones the model was trained with")
        worst = max(worst, difference)
    return worst


def stored_precision_step(values: np.ndarray, bits: int) -> np.ndarray:
    """The spacing of floats with ``bits`` mantissa bits at each value, ``2**(floor(log2|x|) - bits)``
    (0 at 0 and NaN). A neighbour across a power of two is at most this far (the step below it is half
    as large), so one step bounds the move that one flipped rounding makes."""
    values = np.asarray(values, np.float64)
    on_grid = np.isfinite(values) & (values != 0)
    _, exponent = np.frexp(np.where(on_grid, values, 1.0))  # |x| = m 2**e, m in [0.5, 1)
    return np.where(on_grid, np.ldexp(1.0, exponent - 1 - int(bits)), 0.0)


def column_spread(reference: np.ndarray) -> np.ndarray:
    """Per column: std over the finite rows; ``max(1, |mean|)`` where that is 0 (a constant column)."""
    masked = np.where(np.isfinite(reference), reference, np.nan)
    with np.errstate(invalid="ignore"):
        std = np.nan_to_num(np.nanstd(masked, axis=0)) if len(reference) else np.zeros(reference.shape[1])
        mean = np.nan_to_num(np.nanmean(masked, axis=0)) if len(reference) else np.zeros(reference.shape[1])
    return np.where(std > 0, std, np.maximum(1.0, np.abs(mean)))


def error_quantiles(scaled: np.ndarray, finite: np.ndarray) -> dict[str, float]:
    """The pooled quantiles of :data:`QUANTILES` of the finite scaled differences (0 when there are none)."""
    values = scaled[finite]
    if not values.size:
        return {q: 0.0 for q in QUANTILES}
    return {q: float(np.quantile(values, level)) for q, level in QUANTILES.items()}


def error_floor(reference: np.ndarray, spread: np.ndarray, finite: np.ndarray, tolerance: float) -> float:
    """``max(tolerance, FACTOR * u * max|reference| / spread)``: below this no difference is a defect."""
    magnitude = np.where(finite, np.abs(reference) / spread, 0.0)
    representation = FACTOR * UNIT_ROUNDOFF * float(magnitude.max()) if magnitude.size else 0.0
    return max(float(tolerance), representation)


def load_verification(folder: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """verification.npz as {group: {name: array}} (keys are ``group/name``)."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    with np.load(Path(folder) / VERIFICATION_FILE, allow_pickle=False) as npz:
        for key in npz.files:
            group, name = key.split("/", 1)
            groups.setdefault(group, {})[name] = npz[key]
    return groups


def framework_outputs(folder: Path, manifest: Mapping[str, Any], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Reload the native model from the bundle and run it on ``inputs`` (float32, as deployed)."""
    if manifest["kind"] == "flow":
        from pipeline_steps.export.torch_export import load_flow, reference_targets

        return reference_targets(load_flow(folder), inputs["conditions"], inputs["noise"])
    from pipeline_steps.export.keras_export import keras_predict, load_keras

    model = load_keras(folder / manifest["files"]["native"][0])
    if manifest["kind"] == "covariance_gan":
        return keras_predict(model, [inputs["conditions"], inputs["noise"]])
    return keras_predict(model, dict(inputs))


def verify_bundle(folder: str | Path, framework: bool = True) -> dict[str, Any]:
    """Check a bundle against its manifest; returns the measured differences, raises on failure."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_checksums(folder, manifest)
    tolerance = float(manifest["verification"]["tolerance"])
    batch = load_verification(folder)
    if "reference" not in batch:
        raise BundleVerificationError(f"{folder / VERIFICATION_FILE}: no float64 reference outputs (a bundle made "
                                      f"before format 2); export it again")
    own, reference = batch["expected"]["output"], batch["reference"]["output"]
    draws = list(batch["expected"].get("output_draws", []))  # absent from bundles exported before the draws
    bundle = run_bundle.Bundle(folder)
    onnx_out = bundle.run_onnx(batch["inputs"])
    report = {"rule": RULE, "factor": FACTOR, "rows": int(len(onnx_out)), "own_rounding_draws": len(draws),
              "onnx_vs_reference": check_against_reference("ONNX output", onnx_out, own, reference, tolerance, draws)}
    if framework:
        report["reloaded_framework_vs_reference"] = check_against_reference(
            "reloaded native model", framework_outputs(folder, manifest, batch["inputs"]), own, reference, tolerance,
            draws)
    if "physical" in batch:
        report.update(_check_physical_outputs(bundle, batch, onnx_out, tolerance))
    return report


def _check_physical_outputs(bundle: run_bundle.Bundle, batch: Mapping[str, Mapping[str, np.ndarray]],
                            onnx_out: np.ndarray, tolerance: float) -> dict[str, Any]:
    """The two physical checks of the module doc: float32 rule before rounding, bundle transforms = project's."""
    conditions = batch["conditions_physical"]
    support = bundle.transforms.get("support") or {}
    discrete = support.get("values", {})
    own, reference = batch["expected"]["output"], batch["reference"]["output"]

    def unrounded(output: np.ndarray) -> dict[str, np.ndarray]:
        return run_bundle.physical_outputs(bundle, output, conditions, stored_precision=False)

    draws = [unrounded(draw) for draw in batch["expected"].get("output_draws", [])]
    transforms = {
        which: check_bundle_transforms(f"bundle transforms on the {which} output",
                                       run_bundle.physical_outputs(bundle, output, conditions), batch[stored],
                                       tolerance, support.get("mantissa_bits", {}), discrete)
        for which, output, stored in (("float64", reference, "reference_physical"), ("float32", own, "physical"))}
    return {"physical_onnx_vs_reference": check_physical(unrounded(onnx_out), unrounded(own), unrounded(reference),
                                                         tolerance, discrete, draws),
            "bundle_transforms_vs_project": transforms}


# ------------------------------------------------------------------------------------------ helpers
def _as_table(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, np.float64)
    return array.reshape(len(array), -1) if array.ndim != 2 else array


def _check_shape(name: str, found: np.ndarray, expected: np.ndarray) -> None:
    if found.shape != expected.shape:
        raise BundleVerificationError(f"{name}: shape {found.shape} differs from the framework's {expected.shape}")


def _integer_dtype(values: np.ndarray) -> bool:
    dtype = np.asarray(values).dtype
    return bool(np.issubdtype(dtype, np.integer) or dtype == np.bool_)


def _check_discrete(name: str, found: np.ndarray, own: list[np.ndarray], reference: np.ndarray) -> dict[str, int]:
    """Rows of a discrete column that differ from the reference, against the row-fraction bound; ``own``:
    the framework's plain float32 column and its rounding draws (the most differing rows of them count)."""
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    _check_shape(f"physical {name}", found, reference)
    differing = int(np.sum(found != reference))
    own_differing = max(int(np.sum(np.asarray(column, np.float64) != reference)) for column in own)
    allowed = max(1, int(FACTOR * own_differing))
    if differing > allowed:
        raise BundleVerificationError(f"physical {name}: {differing} of {len(reference)} discrete values differ from "
                                      f"the float64 reference, allowed {allowed} (= max(1, {FACTOR:g} x "
                                      f"{own_differing} rows where the framework's float32 output differs))")
    return {"differing_rows": differing, "own_float32_differing_rows": own_differing, "allowed_rows": allowed}


def _margin(found: Mapping[str, float], allowed: Mapping[str, float]) -> float | None:
    """Smallest ``allowed / found`` over the quantiles (how far from failing); None when nothing differs."""
    ratios = [allowed[q] / found[q] for q in found if found[q] > 0]
    return float(min(ratios)) if ratios else None
