"""Physics profiles of a generative model: what an analyst checks before trusting a fast simulation.

FlashSim validates its NanoAOD flows with the response (mean of pt/gen_pt) and the resolution versus
the generator-level variables, per hadron flavour, and with the b-tagging performance per flavour;
the LHCb covariance GAN is judged on the uncertainties and correlations it produces and on how many
of its matrices are positive definite. This module computes those numbers as plain tables (pure
functions on arrays and DataFrames); ``profile_plots`` draws them and ``write_profiles`` writes the
folder ``results/validate/<model>/profiles/`` (PNGs + ``profiles.json``) atomically.

Which profiles a model gets is read from its config (``ProfilePlan.from_model``), never from its name:

- every ``derived`` target (``ratio``, ``difference``, ``delta_phi``) is profiled, mean and
  resolution, versus each condition that is the reference of a ``ratio`` or ``difference`` (the
  generator-level variables the reconstruction smears: gen_pt, gen_eta, gen_mass). ``delta_phi``
  references are not used as x axes: the detector is symmetric in azimuth, so a profile versus
  gen_phi is flat by construction and only adds a figure;
- a condition named like a flavour (``hadronFlavour``, else any ``*flavour*``) splits each profile
  into light / c / b jets;
- targets named ``btag*`` together with a flavour condition give the b-tagging block: score
  distributions per flavour, efficiencies at working points, ROC curves b vs light and c vs light;
- ``categorised: true`` gives one figure per category (the target distributions in it);
- ``kind: covariance_gan`` gives the uncertainties sqrt(cov_ii), the correlation coefficients and the
  SPD fraction.

Profiles are unweighted: the models that get them (NanoAOD flows) have no event weights; the
categorised (weighted) SHiP model gets weighted real histograms.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.atomic import atomic_dir
from pipeline_steps.common.covariance import covariance_columns, covariance_size, elements_spd_fraction
from pipeline_steps.preprocess.derived import DerivedVariable, parse_derived, wrap_phi
from pipeline_steps.validate.profile_plots import Figures

log = logging.getLogger(__name__)

# A bin (or a working point) is shown only with at least this many entries. Below 20, the 16 % and
# 84 % quantiles that define the resolution each rest on three entries or fewer, and the estimator's
# statistical error (~0.96 sigma / sqrt(n) for a Gaussian) exceeds 20 %: a ratio panel would show
# noise, not mismodelling. Left-out bins are listed in profiles.json and said on the figure.
MIN_ENTRIES_PER_BIN = 20
# At most 10 bins of the x variable (FlashSim's profiles use ~10), fewer for a small sample: quantile
# bins holding on average twice the minimum, so that fluctuations rarely push a bin below it.
MAX_BINS = 10
# Bootstrap resamples for the resolution's error: with 100 the error itself is known to ~7 %, enough
# for an error bar; the quantile estimator has no distribution-free closed-form variance.
BOOTSTRAP_RESAMPLES = 100
_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000  # bounds the memory of one vectorised bootstrap draw (16 MB)
# b-tagging working points as CMS defines loose / medium / tight: the cut at which 10 %, 1 %, 0.1 %
# of the real light jets pass. The same cut is applied to real and generated jets.
MISTAG_WORKING_POINTS = (0.1, 0.01, 0.001)
# b-jet (or c-jet) efficiencies at which ROC curves are sampled.
ROC_EFFICIENCIES = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))
FLAVOURS = ("light", "c", "b")
ALL = "all"

_FLAVOUR_PATTERNS = (re.compile(r"hadronflavou?r", re.I), re.compile(r"flavou?r", re.I))
_BTAG = re.compile(r"^btag", re.I)


@dataclass(frozen=True)
class ProfilePlan:
    """The profiles one model gets, decided from its config slice (see the module docstring)."""

    residuals: tuple[DerivedVariable, ...] = ()
    versus: tuple[str, ...] = ()
    flavour: str | None = None
    btag: tuple[str, ...] = ()
    categorised: bool = False
    covariance: bool = False
    seed: int = 0

    @classmethod
    def from_model(cls, model: Mapping[str, Any], seed: int = 0) -> "ProfilePlan":
        conditions = list(model.get("conditions", []))
        targets = list(model.get("targets", []))
        derived = [spec for name, spec in parse_derived(model.get("derived")).items() if name in targets]
        residuals = tuple(spec for spec in derived if spec.reference in conditions)
        versus = tuple(dict.fromkeys(s.reference for s in residuals if s.op in ("ratio", "difference")))
        flavour = _flavour_condition(conditions)
        btag = tuple(t for t in targets if _BTAG.match(t)) if flavour else ()
        return cls(residuals=residuals, versus=versus, flavour=flavour, btag=btag,
                   categorised=bool(model.get("categorised", False)),
                   covariance=model.get("kind") == "covariance_gan", seed=int(seed))

    @property
    def empty(self) -> bool:
        return not (self.residuals and self.versus) and not self.btag and not self.categorised and not self.covariance

    def to_dict(self) -> dict[str, Any]:
        return {"residuals": {s.name: describe(s) for s in self.residuals}, "versus": list(self.versus),
                "per": self.flavour, "btag": list(self.btag), "categorised": self.categorised,
                "covariance": self.covariance}


def write_profiles(comparison, plan: ProfilePlan, folder: str | Path, model: str = "") -> dict[str, Any]:
    """Compute every profile of ``plan``, draw them, write PNGs + ``profiles.json`` into ``folder``.

    The folder appears complete or not at all (``atomic_dir``). Returns the JSON document.
    """
    rng = np.random.default_rng(plan.seed)
    real, generated = comparison.real, comparison.generated
    document: dict[str, Any] = {"model": model, "plan": plan.to_dict(), "min_entries_per_bin": MIN_ENTRIES_PER_BIN,
                                "resolution": "half the 16-84 % quantile range; error: bootstrap "
                                              f"({BOOTSTRAP_RESAMPLES} resamples)", "figures": []}
    with atomic_dir(folder) as tmp:
        figures = Figures(Path(tmp), model, MIN_ENTRIES_PER_BIN)
        if plan.residuals and plan.versus:
            document["profiles"] = _residual_block(real, generated, plan, rng, figures)
        if plan.btag:
            document["btag"] = _btag_block(real, generated, plan, figures)
        if plan.categorised:
            document["categories"] = _category_block(comparison, figures)
        if plan.covariance:
            document["covariance"] = _covariance_block(real, generated, figures)
        if plan.empty:
            figures.message("none", f"{model}: no physics profile applies to this model's config\n"
                                    "(no derived targets, b-tag scores, categories or covariance)")
        document["figures"] = figures.written
        (Path(tmp) / "profiles.json").write_text(json.dumps(_json_safe(document), indent=1) + "\n")
    return document


# --- residual (response) profiles ------------------------------------------------------------------
def describe(spec: DerivedVariable) -> str:
    """The derived variable as a physicist writes it, e.g. ``pt / max(gen_pt, 1.0)``."""
    if spec.op == "ratio":
        return f"{spec.source} / " + (f"max({spec.reference}, {spec.floor:g})" if spec.floor else spec.reference)
    if spec.op == "difference":
        return f"{spec.source} - {spec.reference}"
    return f"dphi({spec.source}, {spec.reference})"


def derived_values(spec: DerivedVariable, table: pd.DataFrame) -> np.ndarray:
    """The derived variable from physical columns; NaN where undefined (zero denominator), never an error."""
    a = table[spec.source].to_numpy(np.float64)
    b = table[spec.reference].to_numpy(np.float64)
    if spec.op == "ratio":
        denominator = spec.denominator(b)
        return np.divide(a, denominator, out=np.full_like(a, np.nan), where=denominator != 0)
    if spec.op == "difference":
        return a - b
    return wrap_phi(a - b)


def robust_resolution(values: np.ndarray) -> float:
    """Half the 16-84 % quantile range: sigma for a Gaussian core, blind to the non-Gaussian tails
    (pile-up overlaps, mis-matched jets) that would dominate an RMS. NaN for an empty sample."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return math.nan
    low, high = np.quantile(values, [0.16, 0.84])
    return 0.5 * float(high - low)


def bootstrap_resolution_error(values: np.ndarray, rng: np.random.Generator,
                               resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """Standard deviation of ``robust_resolution`` over bootstrap resamples (vectorised, bounded memory)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return math.nan
    per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    estimates = []
    for start in range(0, resamples, per_chunk):
        draws = values[rng.integers(0, n, size=(min(per_chunk, resamples - start), n))]
        low, high = np.quantile(draws, [0.16, 0.84], axis=1)
        estimates.append(0.5 * (high - low))
    return float(np.std(np.concatenate(estimates), ddof=1))


def profile_edges(x_real: np.ndarray, max_bins: int = MAX_BINS, min_entries: int = MIN_ENTRIES_PER_BIN) -> np.ndarray:
    """Quantile bin edges of the real x: equal populations, ~2x ``min_entries`` each at least, so a
    steeply falling pt spectrum still has entries in its last bin. One bin for a tiny sample."""
    x_real = x_real[np.isfinite(x_real)]
    if not len(x_real):
        return np.array([0.0, 1.0])
    n_bins = int(np.clip(len(x_real) // (2 * min_entries), 1, max_bins))
    edges = np.unique(np.quantile(x_real, np.linspace(0, 1, n_bins + 1)))
    return edges if len(edges) > 1 else np.array([edges[0] - 0.5, edges[0] + 0.5])


def profile(x: np.ndarray, y: np.ndarray, edges: np.ndarray, rng: np.random.Generator,
            min_entries: int = MIN_ENTRIES_PER_BIN) -> pd.DataFrame:
    """Mean and resolution of ``y`` in bins of ``x`` with their errors; NaN in bins under ``min_entries``.

    Mean error: s / sqrt(n). Resolution error: bootstrap. Non-finite entries are dropped. The last
    bin includes its upper edge (quantile edges end at the real sample's maximum).

    Both errors treat the objects as independent, where the figure of merit and the distances draw
    whole events (``resampling.py``). Here that makes no measurable difference: x is an object's own
    generator-level variable, so an event's jets spread over the bins. On the default toy's jets (5423
    test jets in 1023 events, 5.3 per event; ptRatio versus gen_pt, gen_eta and gen_mass, 30 bins of ~542
    jets holding 1.25-1.51 jets of an event each) the event-clustered mean error is 0.95-1.04 of
    s / sqrt(n), and an event bootstrap of the resolution 0.90-1.18 of this one, median 1.00 (the ratio of
    two 300-replica estimates scatters by ~6 %). The clustered variance is (1 + (m - 1) rho) times this one
    for m jets of an event per bin and a correlation rho of their residuals: m ~ 1.5 and rho ~ 0.1 (shared
    pile-up) would make the errors 2-3 % larger.
    """
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    index = np.searchsorted(edges, x, side="right") - 1
    index[x == edges[-1]] = len(edges) - 2
    rows = []
    for b in range(len(edges) - 1):
        chosen = y[index == b]
        n = len(chosen)
        row = {"low": edges[b], "high": edges[b + 1], "n": n, "mean": math.nan, "mean_error": math.nan,
               "resolution": math.nan, "resolution_error": math.nan}
        if n >= min_entries:
            row.update(mean=float(chosen.mean()), mean_error=float(chosen.std(ddof=1) / math.sqrt(n)),
                       resolution=robust_resolution(chosen), resolution_error=bootstrap_resolution_error(chosen, rng))
        rows.append(row)
    return pd.DataFrame(rows)


def compare_profiles(real: pd.DataFrame, generated: pd.DataFrame) -> pd.DataFrame:
    """One row per bin: real and generated columns side by side, plus generated/real ratios of mean
    and resolution and the generated-real difference of the mean (for residuals centred at zero),
    errors propagated as independent samples. A bin missing on either side has NaN comparisons."""
    table = pd.DataFrame({"low": real["low"], "high": real["high"]})
    for side, frame in (("real", real), ("generated", generated)):
        for column in ("n", "mean", "mean_error", "resolution", "resolution_error"):
            table[f"{column}_{side}"] = frame[column].to_numpy()
    for quantity in ("mean", "resolution"):
        r, g = table[f"{quantity}_real"], table[f"{quantity}_generated"]
        r_err, g_err = table[f"{quantity}_error_real"], table[f"{quantity}_error_generated"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = g / r
            table[f"{quantity}_ratio"] = ratio.where(r != 0)
            table[f"{quantity}_ratio_error"] = (np.abs(ratio) * np.hypot(g_err / g, r_err / r)).where(r != 0)
    table["mean_difference"] = table["mean_generated"] - table["mean_real"]
    table["mean_difference_error"] = np.hypot(table["mean_error_generated"], table["mean_error_real"])
    return table


def flavour_masks(flavour: np.ndarray) -> dict[str, np.ndarray]:
    """light / c / b from a hadron (0, 4, 5) or parton (+-1..5, 21) flavour: |f| == 5 is b, 4 is c,
    everything else (u, d, s, gluon, unmatched 0) light, as the CMS b-tagging performance plots group them."""
    code = np.abs(np.rint(np.asarray(flavour, dtype=np.float64)))
    return {"light": (code != 4) & (code != 5), "c": code == 4, "b": code == 5}


def _groups(table: pd.DataFrame, flavour: str | None) -> dict[str, np.ndarray]:
    if flavour is None:
        return {ALL: np.ones(len(table), dtype=bool)}
    return flavour_masks(table[flavour].to_numpy())


def _residual_block(real: pd.DataFrame, generated: pd.DataFrame, plan: ProfilePlan, rng: np.random.Generator,
                    figures) -> list[dict[str, Any]]:
    """Every derived target versus every reference condition, per flavour group; one figure each."""
    results = []
    real_groups, gen_groups = _groups(real, plan.flavour), _groups(generated, plan.flavour)
    for spec in plan.residuals:
        y_real, y_gen = derived_values(spec, real), derived_values(spec, generated)
        for versus in plan.versus:
            x_real, x_gen = real[versus].to_numpy(np.float64), generated[versus].to_numpy(np.float64)
            edges = profile_edges(x_real)
            panels = {}
            for group in real_groups:
                r_mask, g_mask = real_groups[group], gen_groups[group]
                table = compare_profiles(profile(x_real[r_mask], y_real[r_mask], edges, rng),
                                         profile(x_gen[g_mask], y_gen[g_mask], edges, rng))
                panels[group] = table
                results.append({"variable": spec.name, "definition": describe(spec), "versus": versus, "group": group,
                                "left_out_bins": _left_out(table), "bins": table.to_dict(orient="records")})
            figures.residual_profile(spec, describe(spec), versus, panels)
    return results


def _left_out(table: pd.DataFrame) -> list[int]:
    """Bins whose real or generated side has fewer than MIN_ENTRIES_PER_BIN entries."""
    short = (table["n_real"] < MIN_ENTRIES_PER_BIN) | (table["n_generated"] < MIN_ENTRIES_PER_BIN)
    return [int(i) for i in np.flatnonzero(short.to_numpy())]


# --- b tagging --------------------------------------------------------------------------------------
def working_point_cuts(light_scores: np.ndarray, mistags=MISTAG_WORKING_POINTS,
                       min_entries: int = MIN_ENTRIES_PER_BIN) -> dict[float, float | None]:
    """The score cut at which a fraction ``mistag`` of the real light jets pass (CMS's definition of
    loose/medium/tight); None when fewer than ``min_entries`` light jets would pass it."""
    light_scores = light_scores[np.isfinite(light_scores)]
    cuts: dict[float, float | None] = {}
    for mistag in mistags:
        enough = len(light_scores) * mistag >= min_entries
        cuts[mistag] = float(np.quantile(light_scores, 1.0 - mistag)) if enough else None
    return cuts


def efficiency(scores: np.ndarray, cut: float) -> tuple[float, float, int]:
    """(fraction of ``scores`` above ``cut``, its binomial error, n); NaN for an empty sample."""
    scores = scores[np.isfinite(scores)]
    n = len(scores)
    if not n:
        return math.nan, math.nan, 0
    eff = float(np.mean(scores > cut))
    return eff, math.sqrt(eff * (1.0 - eff) / n), n


def efficiency_table(real: pd.DataFrame, generated: pd.DataFrame, score: str, flavour: str,
                     cuts: Mapping[float, float | None]) -> pd.DataFrame:
    """Efficiency per flavour at each working point, real and generated, and their ratio."""
    rows = []
    real_groups, gen_groups = flavour_masks(real[flavour]), flavour_masks(generated[flavour])
    for mistag, cut in cuts.items():
        for group in FLAVOURS:
            row = {"score": score, "light_mistag": mistag, "cut": cut, "flavour": group}
            for side, table, masks in (("real", real, real_groups), ("generated", generated, gen_groups)):
                values = table[score].to_numpy(np.float64)[masks[group]]
                eff, err, n = efficiency(values, cut) if cut is not None else (math.nan, math.nan, len(values))
                small = n < MIN_ENTRIES_PER_BIN
                row.update({f"efficiency_{side}": math.nan if small else eff,
                            f"error_{side}": math.nan if small else err, f"n_{side}": n})
            r, g = row["efficiency_real"], row["efficiency_generated"]
            row["ratio"] = g / r if r and np.isfinite(r) and np.isfinite(g) else math.nan
            row["ratio_error"] = (row["ratio"] * math.hypot(row["error_generated"] / g, row["error_real"] / r)
                                  if np.isfinite(row["ratio"]) and g > 0 else math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def roc_curve(signal: np.ndarray, background: np.ndarray, efficiencies=ROC_EFFICIENCIES,
              min_entries: int = MIN_ENTRIES_PER_BIN) -> pd.DataFrame:
    """Background (mistag) rate at fixed signal efficiencies, with its binomial error.

    The cut for efficiency e is the (1 - e) quantile of the signal scores; empty when either sample
    has fewer than ``min_entries`` jets.
    """
    signal, background = signal[np.isfinite(signal)], background[np.isfinite(background)]
    if len(signal) < min_entries or len(background) < min_entries:
        return pd.DataFrame(columns=["efficiency", "cut", "mistag", "mistag_error", "n_background"])
    cuts = np.quantile(signal, 1.0 - np.asarray(efficiencies))
    mistag = np.array([np.mean(background > cut) for cut in cuts])
    error = np.sqrt(mistag * (1.0 - mistag) / len(background))
    return pd.DataFrame({"efficiency": efficiencies, "cut": cuts, "mistag": mistag, "mistag_error": error,
                         "n_background": len(background)})


def _btag_block(real: pd.DataFrame, generated: pd.DataFrame, plan: ProfilePlan, figures) -> dict[str, Any]:
    block: dict[str, Any] = {"working_points": {}, "efficiencies": [], "roc": []}
    real_groups, gen_groups = flavour_masks(real[plan.flavour]), flavour_masks(generated[plan.flavour])
    block["jets"] = {side: {g: int(m.sum()) for g, m in masks.items()}
                     for side, masks in (("real", real_groups), ("generated", gen_groups))}
    efficiency_tables, rocs = {}, {}
    for score in plan.btag:
        r, g = real[score].to_numpy(np.float64), generated[score].to_numpy(np.float64)
        figures.btag_distributions(score, {f: (r[real_groups[f]], g[gen_groups[f]]) for f in FLAVOURS})
        cuts = working_point_cuts(r[real_groups["light"]])
        block["working_points"][score] = {str(m): c for m, c in cuts.items()}
        efficiency_tables[score] = efficiency_table(real, generated, score, plan.flavour, cuts)
        block["efficiencies"] += efficiency_tables[score].to_dict(orient="records")
        for signal in ("b", "c"):
            curves = {side: roc_curve(values[masks[signal]], values[masks["light"]])
                      for side, values, masks in (("real", r, real_groups), ("generated", g, gen_groups))}
            rocs[(score, signal)] = curves
            block["roc"].append({"score": score, "signal": signal, "background": "light",
                                 **{side: c.to_dict(orient="records") for side, c in curves.items()}})
    figures.btag_efficiencies(efficiency_tables)
    figures.btag_rocs(rocs)
    return block


# --- categories -------------------------------------------------------------------------------------
def _category_block(comparison, figures) -> list[dict[str, Any]]:
    """Per category: rows and (weighted) share real vs generated, and each target's quantiles."""
    real, generated = comparison.real, comparison.generated
    weights = comparison.real_weights if comparison.real_weights is not None else np.ones(len(real))
    results = []
    for category in sorted(set(np.unique(real["category"])) | set(np.unique(generated["category"]))):
        r_mask = real["category"].to_numpy() == category
        g_mask = generated["category"].to_numpy() == category
        entry = {"category": int(category), "n_real": int(r_mask.sum()), "n_generated": int(g_mask.sum()),
                 "share_real": float(weights[r_mask].sum() / weights.sum()) if len(real) else math.nan,
                 "share_generated": float(g_mask.mean()) if len(generated) else math.nan,
                 "left_out": bool(min(r_mask.sum(), g_mask.sum()) < MIN_ENTRIES_PER_BIN), "targets": {}}
        for target in comparison.physical_targets:
            entry["targets"][target] = {side: _quantiles(table[target].to_numpy(np.float64)[mask])
                                        for side, table, mask in (("real", real, r_mask), ("generated", generated, g_mask))}
        figures.category(entry, real[r_mask], generated[g_mask], weights[r_mask], comparison.physical_targets)
        results.append(entry)
    return results


def _quantiles(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if len(values) < MIN_ENTRIES_PER_BIN:
        return {"q16": math.nan, "median": math.nan, "q84": math.nan}
    q16, median, q84 = np.quantile(values, [0.16, 0.5, 0.84])
    return {"q16": float(q16), "median": float(median), "q84": float(q84)}


# --- covariance -------------------------------------------------------------------------------------
def covariance_features(table: pd.DataFrame) -> pd.DataFrame:
    """``sigma_i`` = sqrt(cov_ii) and ``rho_ij`` = cov_ij / (sigma_i sigma_j) from the ``cov_ij`` columns.

    A non-positive diagonal element (possible for a generated matrix) gives NaN for its sigma and its
    correlations: they are counted, not plotted. An |rho| > 1 is kept: it is what makes a matrix non-SPD.
    """
    names = covariance_columns(table.columns)
    size = covariance_size(names)
    features = {}
    with np.errstate(invalid="ignore"):
        sigma = {i: np.sqrt(np.where(table[f"cov_{i}{i}"] > 0, table[f"cov_{i}{i}"], np.nan)) for i in range(size)}
    for i in range(size):
        features[f"sigma_{i}"] = sigma[i]
    for i in range(size):
        for j in range(i + 1, size):
            features[f"rho_{i}{j}"] = table[f"cov_{i}{j}"].to_numpy(np.float64) / (sigma[i] * sigma[j])
    return pd.DataFrame(features, index=table.index)


def _covariance_block(real: pd.DataFrame, generated: pd.DataFrame, figures) -> dict[str, Any]:
    spd = {"real": elements_spd_fraction(real), "generated": elements_spd_fraction(generated)}
    features_real, features_gen = covariance_features(real), covariance_features(generated)
    summary = {}
    for column in features_real.columns:
        r, g = features_real[column].to_numpy(), features_gen[column].to_numpy()
        summary[column] = {"real": _quantiles(r), "generated": _quantiles(g),
                           "non_finite_real": int(np.sum(~np.isfinite(r))),
                           "non_finite_generated": int(np.sum(~np.isfinite(g)))}
    figures.covariance(features_real, features_gen, spd)
    return {"spd_fraction": spd, "elements": summary}


def _json_safe(value):
    """NaN/inf -> None and numpy scalars -> Python, so profiles.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _flavour_condition(conditions: list[str]) -> str | None:
    """The condition that holds the jet flavour: a hadron flavour first (the b-tagging truth), else
    any flavour; None when the model has none."""
    for pattern in _FLAVOUR_PATTERNS:
        for name in conditions:
            if pattern.search(name):
                return name
    return None
