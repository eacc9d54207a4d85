"""The ``validate_model`` and ``validate_summary`` rules.

``validate_model``: real (test split) vs generated (the ROOT file) -> ``metrics.json`` (the BDT
figure of merit with its bootstrap error beside the real-vs-real floor, per-feature and joint
distances with their floors (``compare.py``), the verdict against ``validation.thresholds``
(``verdict.py``), rows used, SPD fractions for covariance models), ``verdict.csv`` and the PNGs. The
response plot uses the model's first condition as the key condition (gen pt for the NanoAOD flows,
the category for SHiP, x for the LHCb tracks).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.covariance import elements_spd_fraction
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.figures import figure_style
from pipeline_steps.common.logs import step_logging
from pipeline_steps.generate.layout import OutputLayout, layout_from_config
from pipeline_steps.validate import plots, profiles
from pipeline_steps.validate.compare import distance_metrics
from pipeline_steps.validate.figure_of_merit import (Floor, FomResult, FomSettings, figure_of_merit,
                                                     matched_to_floor, reduced_note, repeated_floor)
from pipeline_steps.validate.summary import write_summary
from pipeline_steps.validate.tables import Comparison, build_comparison
from pipeline_steps.validate.verdict import Threshold, thresholds_from_config, verdict, verdict_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidateSettings:
    model: str
    conditions: tuple[str, ...]
    categorised: bool
    weight: str | None
    layout: OutputLayout
    fom: FomSettings
    thresholds: Mapping[str, Threshold]
    profile_plan: profiles.ProfilePlan = profiles.ProfilePlan()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ValidateSettings":
        model, dataset = params["model"], params["dataset"]
        return cls(
            model=str(params["model_name"]),
            conditions=tuple(model["conditions"]),
            categorised=bool(model.get("categorised", False)),
            weight=model.get("weight"),
            layout=layout_from_config(dataset["tree"], list(dataset.get("identity", [])), dataset["table"]),
            fom=FomSettings.from_config(params["validation"], int(params["seed"])),
            thresholds=thresholds_from_config(params["validation"]),
            profile_plan=profiles.ProfilePlan.from_model(model, int(params["seed"])),
        )


def run(test_split: str, transforms: str, generated: str, metrics: str, figures: Mapping[str, str],
        params: Mapping[str, Any], log_path: str | None = None, categories: str | None = None,
        verdict_csv: str | None = None) -> None:
    """Rule entry point; ``figures`` has keys distributions, correlations, bdt_output, response."""
    with step_logging(log_path):
        from pipeline_steps.preprocess.model_transforms import load_transforms

        settings = ValidateSettings.from_params(params)
        categories_json = json.loads(Path(categories).read_text()) if settings.categorised else None
        comparison = build_comparison(test_split, generated, load_transforms(transforms), settings.layout,
                                      list(settings.conditions), settings.weight, categories_json)
        with figure_style():
            result = validate(comparison, settings, figures)
        write_text_atomic(metrics, json.dumps(result, indent=1) + "\n")
        table = verdict_table(settings.model, result["verdict"])
        if verdict_csv:
            write_text_atomic(verdict_csv, table.to_csv(index=False, float_format="%.6g"))
        log.info("%s: verdict %s\n%s", settings.model, result["verdict"]["overall"], table.to_string(index=False))


def validate(comparison: Comparison, settings: ValidateSettings, figures: Mapping[str, str]) -> dict[str, Any]:
    """Figure of merit + plots for one model; returns the metrics document.

    A sample too small for the figure of merit (see ``figure_of_merit.MIN_EVAL_PER_CLASS``) still gets
    its distribution plots, and its metrics say "not computable" and why, rather than a number.
    """
    bins = settings.fom.bins
    targets = comparison.physical_targets
    real, generated = comparison.real.to_numpy(), comparison.generated.to_numpy()
    events = comparison.real_events
    floor, floor_metrics = real_vs_real_floor(real, comparison.real_weights, settings, events)
    try:
        fom_settings = settings.fom if floor is None else matched_to_floor(settings.fom, floor.first)
        fom = figure_of_merit(real, generated, fom_settings, comparison.real_weights, comparison.generated_weights,
                              real_events=events, paired=comparison.paired)
    except InputError as error:  # too few rows (TooFewRows) or non-finite values
        log.warning("%s: figure of merit not computable: %s", settings.model, error)
        fom_metrics = not_computable(str(error), settings.fom.classifier)
        plots.plot_message(figures["bdt_output"], f"{settings.model}: BDT figure of merit not computable\n{error}")
    else:
        fom_metrics = fom_document(fom, None if floor is None else floor.first, len(real), len(generated),
                                   settings.fom)
        if fom_metrics["reduced"]:
            log.warning("%s: %s", settings.model, fom_metrics["note"])
        plots.plot_bdt_output(fom.scores_real, fom.scores_generated, fom.weights_real, fom.weights_generated, bins,
                              figures["bdt_output"], f"{settings.model}: AUC {fom.auc:.3f} ± {fom.auc_error:.3f} "
                              f"(real vs real {_floor_text(floor)}), chi2/ndf {fom.chi2_ndf:.2f}, "
                              f"overlap {fom.overlap:.3f}")
    plots.plot_distributions(comparison.real, comparison.generated, comparison.features, figures["distributions"],
                             bins, comparison.real_weights)
    plots.plot_pairs(comparison.real, comparison.generated, targets, figures["correlations"], bins,
                     comparison.real_weights)
    plots.plot_response(comparison.real, comparison.generated, settings.conditions[0], targets, figures["response"],
                        real_weights=comparison.real_weights)
    if "profiles" in figures:  # the folder of physics profiles (PNGs + profiles.json), see profiles.py
        profiles.write_profiles(comparison, settings.profile_plan, figures["profiles"], settings.model)
    distances = distance_metrics(real, generated, comparison.features, comparison.real_weights,
                                 comparison.generated_weights, settings.fom.bootstrap, settings.fom.seed, events,
                                 comparison.paired)
    document = {
        "model": settings.model,
        **fom_metrics,
        "floor": floor_metrics,
        **auc_minus_floor(fom_metrics, floor_metrics),
        "bootstrap": {"replicas": settings.fom.bootstrap, "covers": BOOTSTRAP_COVERS},
        "distances": distances,
        "features": comparison.features,
        "targets": comparison.physical_targets,
        "rows_real": int(len(comparison.real)),
        "rows_generated": int(len(comparison.generated)),
        "events_real": int(len(real) if events is None else len(np.unique(events))),
        "spd_fraction_real": elements_spd_fraction(comparison.real),
        "spd_fraction_generated": elements_spd_fraction(comparison.generated),
    }
    return {**document, "verdict": verdict(document, settings.thresholds)}


#: What the "± error" of metrics.json means, written into it so a reader need not find this file.
BOOTSTRAP_COVERS = ("auc_error: resampling of the BDT's evaluation events, all rows of a drawn event together "
                    "(not of its training); w1, ks, correlation: resampling of the compared events; fpd: fit "
                    "error of the batch-averaged extrapolation and the whole samples' FD spread over the same "
                    "event replicas, in quadrature; kpd: half the 16-84% range over batches; excess_error (of value - "
                    "floor): the spread of the difference over the replicas and batches both share")


def real_vs_real_floor(real, real_weights, settings: ValidateSettings,
                       events: np.ndarray | None = None) -> tuple[Floor | None, dict[str, Any]]:
    """The floor (None when not computable) and its metrics.json entry: ``auc`` is the mean over the
    halvings, ``auc_error`` one halving's bootstrap error, ``auc_mean_error`` the mean's error."""
    try:
        floor = repeated_floor(real, settings.fom, real_weights, events)
    except InputError as error:
        log.warning("%s: real-vs-real floor not computable: %s", settings.model, error)
        return None, {"status": "not computable", "reason": str(error), "auc": None, "auc_error": None,
                      "chi2_ndf": None, "overlap": None, "n_train_per_class": 0, "n_eval_per_class": 0}
    first = floor.first
    return floor, {"status": "ok", "auc": floor.auc, "auc_error": first.auc_error, "auc_mean_error": floor.mean_error,
                   "auc_each_halving": floor.aucs, "chi2_ndf": first.chi2_ndf, "overlap": first.overlap,
                   "n_train_per_class": first.n_train_per_class, "n_eval_per_class": first.n_eval_per_class,
                   "n_eff_eval_real": first.n_eff_real, "n_eff_eval_generated": first.n_eff_generated}


def fom_document(fom: FomResult, floor: FomResult | None, n_real: int, n_generated: int,
                 asked: FomSettings) -> dict[str, Any]:
    """The figure-of-merit keys; rows below those asked for (to match the floor) are said in ``note``."""
    document = fom.to_dict()
    matched = floor is not None and (fom.n_train_per_class, fom.n_eval_per_class) != (asked.n_train_per_class,
                                                                                         asked.n_eval_per_class)
    if matched:
        document["reduced"] = True
        document["note"] = reduced_note(n_real, n_generated, asked, fom.n_train_per_class, fom.n_eval_per_class,
                                        ", as many as the real-vs-real floor has (each half of the real rows)")
    return document


def auc_minus_floor(fom_metrics: Mapping[str, Any], floor_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """AUC - floor AUC and its error (the AUC's bootstrap error and the floor mean's error in quadrature)."""
    if fom_metrics["auc"] is None or floor_metrics["auc"] is None:
        return {"auc_minus_floor": None, "auc_minus_floor_error": None}
    return {"auc_minus_floor": fom_metrics["auc"] - floor_metrics["auc"],
            "auc_minus_floor_error": float(np.hypot(fom_metrics["auc_error"], floor_metrics["auc_mean_error"]))}


def not_computable(reason: str, classifier: str) -> dict[str, Any]:
    """The figure-of-merit keys of metrics.json when the sample is too small: no numbers, the reason."""
    return {"status": "not computable", "reason": reason, "auc": None, "auc_error": None, "auc_null_error": None,
            "chi2": None, "ndf": None,
            "chi2_ndf": None, "overlap": None, "n_train_per_class": 0, "n_eval_per_class": 0, "reduced": True,
            "note": reason, "classifier": classifier, "weighted": None}


def _floor_text(floor: Floor | None) -> str:
    return "not computable" if floor is None else f"{floor.auc:.3f} ± {floor.mean_error:.3f}"


def run_summary(metrics: list[str], generation: list[str], output: str, train_dirs: list[str],
                log_path: str | None = None) -> None:
    """Rule entry point of ``validate_summary``."""
    with step_logging(log_path):
        table = write_summary(metrics, generation, train_dirs, output)
        log.info("summary of %d models written to %s", len(table), output)
