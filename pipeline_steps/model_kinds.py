"""The registry of model kinds: one entry says everything the workflow needs to know about a kind.

A model's ``kind`` in the config picks its framework environment, the file its trainer leaves for
generation and export, the config keys its trainer reads, and the package modules whose source hash
reruns its train, generate and export jobs. Before this registry these facts were spread over the
rule files and drifted (generate_flow hashed the categorisation module, generate_covariance_gan did
not, though both run the same generation code). Adding a kind means one entry here plus its model,
trainer and exporter modules (README: "Adding a model kind").

Module names are those of :func:`pipeline_steps.common.source_hash.source_hash`: a path under
``pipeline_steps/`` without ``.py``. Imports *inside* functions are not followed by the hash (they
are the per-kind dispatch), so each kind names the modules its stages dispatch to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pipeline_steps.common.errors import ConfigError

#: Modules every job of a stage runs, whatever the kind (the stage's step and its shared helpers).
STAGE_MODULES = {
    # the shared epoch loop, checkpoints, training settings, schedules and loss plot of every trainer
    "train": ("train/loop", "train/checkpoint", "train/settings", "train/schedule", "train/loss_plot", "train/devices",
              "common/logs"),
    # generate/step.py imports the SHiP inverse (categorisation) for any categorised model, and the device
    # report of train/devices when it runs
    "generate": ("generate", "preprocess/model_transforms", "categorise/categories", "train/devices", "common/logs"),
    # export/step.py verifies the C export (export.c) for any kind
    "export": ("export/step", "export/c_export", "preprocess/model_transforms", "common/logs"),
}


@dataclass(frozen=True)
class ModelKind:
    """One kind of model. ``env`` is the conda environment file under ``envs/``; ``trained_file`` lies in
    ``results/train/<model>/``; ``training_keys`` are the model's config keys its trainer receives;
    ``c_export``: whether ``export.c`` applies (only the covariance GAN's generator has a C export);
    ``selection_keys``: ``training`` keys read after training by the epoch selection, not by the trainer, kept
    out of the training's params and checkpoint fingerprint (changing CalRatio's ks_threshold had thrown
    the checkpoints away and retrained from scratch to choose another epoch).

    For scans: ``scan_metrics`` are the metrics its points can be ranked by (the first is the default;
    CalRatio's metrics.json has no real-vs-generated AUC); ``schedule_replaces`` the ``training`` keys a
    ``training.schedule`` overrides (scanning them trains identical models); ``loss_defined_by`` the model
    keys that change what its validation loss measures, so points that differ in them cannot be ranked
    by it (a flow's NLL is in the preprocessed space; CalRatio's loss subtracts lambda x the adversary's)."""

    name: str
    env: str
    trained_file: str
    generative: bool
    model_module: str
    trainer_modules: tuple[str, ...]
    exporter_module: str
    input_modules: tuple[str, ...]
    training_keys: tuple[str, ...]
    scan_metrics: tuple[str, ...]
    schedule_replaces: tuple[str, ...]
    loss_defined_by: tuple[str, ...]
    c_export: bool = False
    selection_keys: tuple[str, ...] = ()

    @property
    def env_file(self) -> str:
        """The conda env, relative to a rule file in workflow/rules/."""
        return f"../../envs/{self.env}.yaml"

    def code_modules(self, stage: str) -> tuple[str, ...]:
        """The modules whose source hash reruns this kind's jobs of ``stage`` (train, generate, export)."""
        own = {
            "train": (self.model_module, *self.trainer_modules),
            "generate": (self.model_module,),
            "export": (self.exporter_module, self.model_module, *self.input_modules),
        }[stage]
        return (*own, *STAGE_MODULES[stage])


#: Registry order is rule and summary order (generative kinds: the GAN, then the flows).
MODEL_KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            name="covariance_gan", env="tensorflow", trained_file="generator.keras", generative=True,
            model_module="models/covariance_gan",
            trainer_modules=("train/covariance_gan", "train/covariance_gan_updates", "train/covariance_gan_outputs"),
            exporter_module="export/keras_export", input_modules=(),
            training_keys=("conditions", "targets", "hyperparameters", "training"), c_export=True,
            scan_metrics=("auc", "chi2_ndf", "overlap", "validation_loss"),
            schedule_replaces=("learning_rate.generator", "learning_rate.discriminator"),
            # the referee, whose loss ranks, shares the discriminator's architecture and has its own rate:
            # a weaker referee has a higher loss, which ranks as better
            loss_defined_by=("preprocessing", "hyperparameters.discriminator_layers", "hyperparameters.hidden",
                             "hyperparameters.activation", "training.learning_rate.referee"),
        ),
        ModelKind(
            name="flow", env="torch", trained_file="model.pt", generative=True,
            model_module="models/flow", trainer_modules=("train/flow", "train/flow_data"),
            exporter_module="export/torch_export", input_modules=("categorise/categories",),
            training_keys=("conditions", "targets", "hyperparameters", "training", "categorised", "weight"),
            scan_metrics=("auc", "chi2_ndf", "overlap", "validation_loss"),
            schedule_replaces=("learning_rate", "scheduler", "restart_epochs"),
            loss_defined_by=("preprocessing",),
        ),
        ModelKind(
            name="calratio_rnn", env="tensorflow", trained_file="chosen.keras", generative=False,
            model_module="models/calratio_rnn", trainer_modules=("train/calratio_rnn",),
            exporter_module="export/keras_export", input_modules=("preprocess/calratio_inputs",),
            training_keys=("conditions", "preprocessing", "hyperparameters", "training"),
            scan_metrics=("ks", "validation_loss"),
            schedule_replaces=("learning_rate.main",),
            # val_loss = main - lambda x adversary: a weaker adversary lowers it
            loss_defined_by=("hyperparameters.adversary_lambda", "hyperparameters.adversary_units",
                             "training.learning_rate.adversary"),
            selection_keys=("ks_threshold", "selection_metric"),
        ),
    )
}


def kind_of(model: Mapping[str, Any]) -> ModelKind:
    """The registry entry of a model's ``kind``; a ConfigError names the kinds there are."""
    try:
        return MODEL_KINDS[model["kind"]]
    except KeyError:
        raise ConfigError(f"models.<name>.kind: expected one of {sorted(MODEL_KINDS)}, "
                          f"got {model.get('kind')!r}") from None
