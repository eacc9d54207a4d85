"""The covariance GAN's transforms in C, around the emitted generator: physical in, physical out.

LHCb deploys the generator *with* its preprocessing as one C function, so the experiment's code feeds
generator-level quantities and gets a covariance back. :mod:`pipeline_steps.export.c_export` emits
the network in model space; this module emits, from ``transforms.json``, the code around it::

    void fastsim_generate_physical(const double *conditions, const float *noise, double *targets, int n_rows);

``conditions`` [n_rows, n_conditions] in physical units (model order), ``noise`` as for the
model-space function, ``targets`` [n_rows, n_targets] in physical units. Per row it applies each
condition's forward transform (clip to ``clip_low``/``clip_high`` when stored; log(x + offset),
log10(x + offset) or signed log; then standard, min-max or the quantile knots, linearly extrapolated
beyond them), the ZCA decorrelation, the generator, each target's inverse (exp(y) - offset,
10**y - offset, ...; a clip is not undone), and the training support (clip to the training range,
snap discrete targets to the values seen) exactly as :mod:`pipeline_steps.preprocess.transforms` does
in float64.

What a row-by-row C function cannot reproduce is refused with a ConfigError: dequantised conditions
(their seeded noise), a covariance ``target_representation`` other than ``elements`` and derived
targets (neither is used by LHCb's model; a ratio's ``floor`` therefore never reaches C). A row whose
physical conditions are not finite, or leave a transform's domain (x + offset <= 0 under a log), gets NaN
targets, as ONNX gives: the network's relu had turned a NaN into 0 and the support clip into a plausible
covariance (cov_00 0.00245 for p = NaN, -5 or +inf), where the Python forward refuses the row.
"""

from __future__ import annotations

import numpy as np

from pipeline_steps.common.errors import ConfigError

PHYSICAL_FUNCTION = "fastsim_generate_physical"
PHYSICAL_SIGNATURE = (f"void {PHYSICAL_FUNCTION}(const double *conditions, const float *noise, double *targets, "
                      "int n_rows)")

# C helpers shared by every emitted variable, by name: the piecewise-linear knot map and the nearest allowed
# value (each emitted only where a variable calls it: an unused static function is a -Wall warning).
HELPERS = {
    "piecewise": """static double piecewise(double x, const double *in, const double *out, int n) {
  if (x < in[0]) return out[0] + (x - in[0]) * (out[1] - out[0]) / (in[1] - in[0]);
  if (x > in[n - 1]) return out[n - 1] + (x - in[n - 1]) * (out[n - 1] - out[n - 2]) / (in[n - 1] - in[n - 2]);
  int lo = 0, hi = n - 1;
  while (hi - lo > 1) { int mid = (lo + hi) / 2; if (in[mid] <= x) lo = mid; else hi = mid; }
  if (in[hi] == in[lo]) return out[lo];
  return out[lo] + (x - in[lo]) * (out[hi] - out[lo]) / (in[hi] - in[lo]);
}
""",
    "nearest": """static double nearest(double x, const double *allowed, int n) {
  if (n == 1) return allowed[0];
  int hi = 0;
  while (hi < n && allowed[hi] < x) ++hi;
  if (hi < 1) hi = 1;
  if (hi > n - 1) hi = n - 1;
  return fabs(allowed[hi] - x) < fabs(x - allowed[hi - 1]) ? allowed[hi] : allowed[hi - 1];
}
""",
}


def check_supported(model_transforms) -> None:
    """ConfigError naming what the C function cannot do exactly."""
    dequantised = [t.name for t in model_transforms.conditions.transforms if t.dequantize]
    if dequantised:
        raise ConfigError(f"export.c: conditions {dequantised} are dequantised (seeded noise); the C function "
                          "cannot reproduce that, remove them from preprocessing.dequantize or set export.c: false")
    if model_transforms.target_representation != "elements":
        raise ConfigError(f"export.c: target_representation {model_transforms.target_representation!r}; the C "
                          "function supports 'elements' only")
    if model_transforms.derived:
        raise ConfigError(f"export.c: derived targets {sorted(model_transforms.derived)} are not supported in C")
    if model_transforms.support.sums:
        raise ConfigError(f"export.c: bounded sums {[list(g) for g, _ in model_transforms.support.sums]} "
                          f"(preprocessing.bounded_sums) are not applied in C: export without export.c")
    reduced = sorted(model_transforms.support.mantissa_bits)
    if reduced:
        raise ConfigError(f"export.c: targets {reduced} are stored with a reduced mantissa (support.mantissa_bits); "
                          f"the C support does not round them: export without export.c")
    point_masses = [t.name for t in model_transforms.targets.transforms
                    if "point_mass_low" in t.params or "point_mass_high" in t.params]
    if point_masses:
        raise ConfigError(f"export.c: targets {point_masses} have edge point masses "
                          "(preprocessing.point_mass_share), which the C function does not map back")


def _c(value) -> str:
    """A float64 as a C double literal, exactly (17 significant digits)."""
    return f"{float(value):.17g}"


def _doubles(name: str, values) -> str:
    numbers = [_c(v) for v in np.asarray(values, np.float64).ravel()]
    rows = [", ".join(numbers[i:i + 6]) for i in range(0, len(numbers), 6)]
    return f"static const double {name}[{len(numbers)}] = {{\n  " + ",\n  ".join(rows) + "\n};\n"


_SIGN = "(v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0))"
# kind -> (physical -> prepared, prepared -> physical), the step before/after the kind's scaling
_PREPARE = {"log_standard": ("log(v{offset})", "exp(v){minus_offset}"),
            "log10_quantile_normal": ("log10(v{offset})", "pow(10.0, v){minus_offset}"),
            "signed_log_standard": (f"{_SIGN} * log1p(fabs(v))", f"{_SIGN} * expm1(fabs(v))")}


def _preparation(transform) -> tuple[str, str] | None:
    """The kind's (forward, inverse) preparation of ``v`` with ``params.offset`` filled in (log kinds)."""
    prepare = _PREPARE.get(transform.kind)
    if prepare is None:
        return None
    offset = transform.params.get("offset")
    fill = ({"offset": f" + {_c(offset)}", "minus_offset": f" - {_c(offset)}"} if offset is not None
            else {"offset": "", "minus_offset": ""})
    return prepare[0].format(**fill), prepare[1].format(**fill)


def _clip(transform) -> list[str]:
    """Statements holding ``v`` to ``params.clip_low``/``clip_high`` (as np.clip: NaN stays NaN)."""
    low, high = transform.params.get("clip_low"), transform.params.get("clip_high")
    return ([f"if (v < {_c(low)}) v = {_c(low)};"] if low is not None else []) + \
           ([f"if (v > {_c(high)}) v = {_c(high)};"] if high is not None else [])


def _scaling(transform, prefix: str) -> tuple[str, str, str]:
    """(constant arrays, forward expression, inverse expression) of the kind's scaling of ``v``."""
    p, kind = transform.params, transform.kind
    if kind == "passthrough":
        return "", "v", "v"
    if kind == "minmax":
        low, high = _c(p["low"]), _c(p["high"])
        return "", f"2.0 * (v - {low}) / ({high} - {low}) - 1.0", f"(v + 1.0) * 0.5 * ({high} - {low}) + {low}"
    if kind in ("standard", "log_standard", "signed_log_standard"):
        mean, std = _c(p["mean"]), _c(p["std"])
        return "", f"(v - {mean}) / {std}", f"v * {std} + {mean}"
    n = len(p["x_knots"])
    arrays = _doubles(f"{prefix}_x", p["x_knots"]) + _doubles(f"{prefix}_z", p["z_knots"])
    return arrays, f"piecewise(v, {prefix}_x, {prefix}_z, {n})", f"piecewise(v, {prefix}_z, {prefix}_x, {n})"


def _forward(transform, prefix: str) -> tuple[str, str]:
    """(constant arrays, statements turning ``v`` from physical into model space)."""
    arrays, forward, _ = _scaling(transform, prefix)
    prepare = _preparation(transform)
    return arrays, " ".join([*_clip(transform), *([f"v = {prepare[0]};"] if prepare else []), f"v = {forward};"])


def _inverse(transform, prefix: str) -> tuple[str, str]:
    """(constant arrays, statements turning ``v`` from model space into physical units)."""
    arrays, _, inverse = _scaling(transform, prefix)
    prepare = _preparation(transform)
    steps = [f"v = {inverse};", *([f"v = {prepare[1]};"] if prepare else []),
             *(["v = floor(v);"] if transform.dequantize else [])]
    return arrays, " ".join(steps)


def _support(support, name: str, prefix: str) -> tuple[str, str]:
    """(constant arrays, statement holding ``v`` to the training support of target ``name``)."""
    if name not in support.ranges:
        return "", ""
    low, high = support.ranges[name]
    statement = f" if (v < {_c(low)}) v = {_c(low)}; if (v > {_c(high)}) v = {_c(high)};"
    if name not in support.values:
        return "", statement
    allowed = support.values[name]
    return _doubles(f"{prefix}_allowed", allowed), statement + f" v = nearest(v, {prefix}_allowed, {len(allowed)});"


def emit_physical_function(model_transforms, architecture, model_space_function: str) -> str:
    """C99 source (to append after the generator) of :data:`PHYSICAL_SIGNATURE`."""
    check_supported(model_transforms)
    a, conditions, targets = architecture, model_transforms.conditions, model_transforms.targets
    arrays, condition_code, target_code = [], [], []
    for i, transform in enumerate(conditions.transforms):
        constants, statement = _forward(transform, f"cond{i}")
        arrays.append(constants)
        condition_code.append(f"    {{ double v = conditions[(long)r * {a.n_conditions} + {i}]; if (!isfinite(v)) bad = 1; "
                              f"{statement} x[{i}] = v; }}\n")
    decorrelate = ""
    if conditions.decorrelation is not None:
        arrays += [_doubles("decorrelation_mean", conditions.decorrelation.mean),
                   _doubles("decorrelation_matrix", conditions.decorrelation.matrix)]
        decorrelate = (f"      for (int j = 0; j < {a.n_conditions}; ++j) {{\n"
                       f"        double s = 0.0;\n"
                       f"        for (int i = 0; i < {a.n_conditions}; ++i)\n"
                       f"          s += decorrelation_matrix[j * {a.n_conditions} + i] * (x[i] - decorrelation_mean[i]);\n"
                       f"        y[j] = s;\n      }}\n"
                       f"      for (int i = 0; i < {a.n_conditions}; ++i) x[i] = y[i];\n")
    for k, transform in enumerate(targets.transforms):
        constants, statement = _inverse(transform, f"targ{k}")
        bounds, held = _support(model_transforms.support, transform.name, f"targ{k}")
        arrays += [constants, bounds]
        target_code.append(f"      {{ double v = model[{k}]; {statement}{held} "
                           f"targets[(long)r * {a.n_targets} + {k}] = v; }}\n")
    body = (f"{PHYSICAL_SIGNATURE} {{\n"
            f"  for (int r = 0; r < n_rows; ++r) {{\n"
            f"    double x[{a.n_conditions}], y[{a.n_conditions}];\n"
            f"    float in[{a.n_conditions}], model[{a.n_targets}];\n"
            f"    int bad = 0;\n"
            f"    (void)y;\n"
            f"{''.join(condition_code)}"
            f"    for (int i = 0; i < {a.n_conditions}; ++i) if (!isfinite(x[i])) bad = 1;\n"
            f"    if (bad) {{  /* a condition not finite, or outside its transform's domain: NaN targets */\n"
            f"      for (int k = 0; k < {a.n_targets}; ++k) targets[(long)r * {a.n_targets} + k] = NAN;\n"
            f"      continue;\n    }}\n"
            f"{decorrelate}"
            f"    for (int i = 0; i < {a.n_conditions}; ++i) in[i] = (float)x[i];\n"
            f"    {model_space_function}(in, noise + (long)r * {a.noise_dim}, model, 1);\n"
            f"{''.join(target_code)}"
            f"  }}\n}}\n")
    code = "".join(arrays) + body
    used = "".join(helper + "\n" for name, helper in HELPERS.items() if f" {name}(" in code)
    return "\n" + used + code
