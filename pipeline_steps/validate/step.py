"""The ``validate_model`` and ``validate_summary`` rules.

``validate_model``: real (test split) vs generated (the ROOT file) -> ``metrics.json`` (the BDT
figure of merit, rows used, SPD fractions for covariance models) and four PNGs. The response plot
uses the model's first condition as the key condition (gen pt for the NanoAOD flows, the category for
SHiP, x for the LHCb tracks).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.logs import step_logging
from pipeline_steps.generate.layout import OutputLayout, layout_from_config
from pipeline_steps.validate import plots, profiles
from pipeline_steps.validate.figure_of_merit import FomSettings, TooFewRows, figure_of_merit
from pipeline_steps.validate.spd import spd_fraction
from pipeline_steps.validate.summary import write_summary
from pipeline_steps.validate.tables import Comparison, build_comparison

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidateSettings:
    model: str
    conditions: tuple[str, ...]
    categorised: bool
    weight: str | None
    layout: OutputLayout
    fom: FomSettings
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
            profile_plan=profiles.ProfilePlan.from_model(model, int(params["seed"])),
        )


def run(test_split: str, transforms: str, generated: str, metrics: str, figures: Mapping[str, str],
        params: Mapping[str, Any], log_path: str | None = None, categories: str | None = None) -> None:
    """Rule entry point; ``figures`` has keys distributions, correlations, bdt_output, response."""
    with step_logging(log_path):
        from pipeline_steps.preprocess.transforms import load_transforms

        settings = ValidateSettings.from_params(params)
        categories_json = json.loads(Path(categories).read_text()) if settings.categorised else None
        comparison = build_comparison(test_split, generated, load_transforms(transforms), settings.layout,
                                      list(settings.conditions), settings.weight, categories_json)
        result = validate(comparison, settings, figures)
        write_text_atomic(metrics, json.dumps(result, indent=1) + "\n")
        log.info("%s: %s", settings.model, result)


def validate(comparison: Comparison, settings: ValidateSettings, figures: Mapping[str, str]) -> dict[str, Any]:
    """Figure of merit + plots for one model; returns the metrics document.

    A sample too small for the figure of merit (see ``figure_of_merit.MIN_EVAL_PER_CLASS``) still gets
    its distribution plots, and its metrics say "not computable" and why, rather than a number.
    """
    bins = settings.fom.bins
    targets = comparison.physical_targets
    try:
        fom = figure_of_merit(comparison.real.to_numpy(), comparison.generated.to_numpy(), settings.fom,
                              comparison.real_weights, comparison.generated_weights)
    except TooFewRows as error:
        log.warning("%s: figure of merit not computable: %s", settings.model, error)
        fom_metrics = not_computable(str(error), settings.fom.classifier)
        plots.plot_message(figures["bdt_output"], f"{settings.model}: BDT figure of merit not computable\n{error}")
    else:
        if fom.reduced:
            log.warning("%s: %s", settings.model, fom.note)
        fom_metrics = fom.to_dict()
        plots.plot_bdt_output(fom.scores_real, fom.scores_generated, fom.weights_real, fom.weights_generated, bins,
                              figures["bdt_output"], f"{settings.model}: AUC {fom.auc:.3f}, "
                              f"chi2/ndf {fom.chi2_ndf:.2f}, overlap {fom.overlap:.3f}")
    plots.plot_distributions(comparison.real, comparison.generated, comparison.features, figures["distributions"],
                             bins, comparison.real_weights)
    plots.plot_pairs(comparison.real, comparison.generated, targets, figures["correlations"], bins)
    plots.plot_response(comparison.real, comparison.generated, settings.conditions[0], targets, figures["response"])
    if "profiles" in figures:  # the folder of physics profiles (PNGs + profiles.json), see profiles.py
        profiles.write_profiles(comparison, settings.profile_plan, figures["profiles"], settings.model)
    return {
        "model": settings.model,
        **fom_metrics,
        "features": comparison.features,
        "rows_real": int(len(comparison.real)),
        "rows_generated": int(len(comparison.generated)),
        "spd_fraction_real": spd_fraction(comparison.real),
        "spd_fraction_generated": spd_fraction(comparison.generated),
    }


def not_computable(reason: str, classifier: str) -> dict[str, Any]:
    """The figure-of-merit keys of metrics.json when the sample is too small: no numbers, the reason."""
    return {"status": "not computable", "reason": reason, "auc": None, "auc_error": None, "chi2": None, "ndf": None,
            "chi2_ndf": None, "overlap": None, "n_train_per_class": 0, "n_eval_per_class": 0, "reduced": True,
            "note": reason, "classifier": classifier, "weighted": None}


def run_summary(metrics: list[str], generation: list[str], output: str, train_dirs: list[str],
                log_path: str | None = None) -> None:
    """Rule entry point of ``validate_summary``."""
    with step_logging(log_path):
        table = write_summary(metrics, generation, train_dirs, output)
        log.info("summary of %d models written to %s", len(table), output)
