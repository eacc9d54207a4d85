"""Run function of the ``export_*`` rules: trained model -> ``results/export/<model>/`` bundle, verified.

The bundle is assembled in a temporary folder beside the final one (``atomic_dir``): ONNX graph,
native model files, transforms (+ categories for SHiP), ``run_bundle.py``, ``verification.npz`` and
``bundle.json``. :func:`verify_bundle` then reloads everything from that folder; only a bundle that
passes is renamed into place, with ``verification.passed: true`` in its manifest. A failure raises and
fails the job.

With ``export.c: true`` a covariance GAN bundle also holds ``generator.c``/``generator.h`` and the compiled
``libfastsim_generator.so`` (:mod:`pipeline_steps.export.c_export`), checked against ONNX at export and
again by :func:`finalise`; the manifest's ``c`` section names the function and the measured difference.
Other kinds ignore ``c: true`` (logged).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline_steps.common.atomic import atomic_dir
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.export import batch as batches
from pipeline_steps.export import manifest as mf
from pipeline_steps.export import rounding_draws
from pipeline_steps.export.verify import FACTOR, RULE, VERIFICATION_FILE, verify_bundle
from pipeline_steps.model_kinds import MODEL_KINDS
from pipeline_steps.preprocess.model_transforms import load_transforms

log = logging.getLogger(__name__)
KINDS = ("flow", "covariance_gan", "calratio_rnn")
MIN_VERIFY_ROWS = 100  # also the schema's minimum for export.verify_rows
RUNNER = Path(__file__).with_name("run_bundle.py")
PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ExportSettings:
    """The rule's params: the model slice, the ``export`` section, the model's name, the dataset's TTree name
    (recorded as ``io.tree``: ``Events`` for NanoAOD, ``Tracks``, ``CalRatio``...) and the renamed columns'
    branches (``io.branches``). ``seed`` seeds the verification batch's noise; the rules give none, so every
    bundle is verified on the noise of seed 0 whatever the config's seed (the check needs a fixed batch, not
    the workflow's sample)."""

    model_name: str
    kind: str
    model: dict
    opset: int
    tolerance: float
    c: bool
    rows: int
    seed: int
    tree: str
    branches: tuple[tuple[str, str], ...] = ()  # (column, branch) of renamed flat columns: io.branches

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ExportSettings":
        export, model = dict(params["export"]), dict(params["model"])
        if model.get("kind") not in KINDS:
            raise ConfigError(f"models.{params['model_name']}.kind: export knows {list(KINDS)}, got {model.get('kind')!r}")
        if float(export.get("tolerance", 1e-4)) <= 0:
            raise ConfigError(f"export.tolerance: expected a positive number, got {export.get('tolerance')!r}")
        if int(export.get("verify_rows", 512)) < MIN_VERIFY_ROWS:
            raise ConfigError(f"export.verify_rows: expected at least {MIN_VERIFY_ROWS} rows (the column spreads and the "
                              f"99.9% quantile of the float32 error need them), got {export.get('verify_rows')!r}")
        if not params.get("tree"):
            raise ConfigError(f"export of {params['model_name']}: the rule's params lack 'tree' (the dataset's TTree, "
                              f"datasets.<dataset>.tree), recorded in bundle.json as io.tree")
        c = bool(export.get("c", False))
        if c and not MODEL_KINDS[model["kind"]].c_export:
            log.info("export.c: true ignored for %s (kind %s): only the covariance GAN generator has a C export",
                     params["model_name"], model["kind"])
            c = False
        return cls(model_name=str(params["model_name"]), kind=model["kind"], model=model,
                   opset=int(export.get("opset", 18)), tolerance=float(export.get("tolerance", 1e-4)), c=c,
                   rows=int(export.get("verify_rows", 512)), seed=int(params.get("seed", 0)),
                   tree=str(params["tree"]), branches=tuple(sorted(dict(params.get("branches") or {}).items())))


def run(model_files: Sequence[str], transforms: str, test_split: str, output_dir: str, params: Mapping[str, Any],
        raw_checksums: Sequence[str], log_path: str | None = None, categories: str | None = None,
        project_dir: str | Path = PROJECT_DIR) -> None:
    """Rule entry point: export, verify and move the bundle into ``output_dir``.

    ``raw_checksums`` are rule checksum_raw's JSONs of the model's datasets, the sha256 that bundle.json records.
    ``project_dir`` is where the git commit is read (this package's checkout, not the run's workdir).
    """
    with step_logging(log_path):
        settings = ExportSettings.from_params(params)
        with atomic_dir(output_dir) as folder:
            export_bundle(settings, [Path(p) for p in model_files], Path(transforms), Path(test_split), folder,
                          categories=Path(categories) if categories else None)
            header = mf.provenance(raw_checksums, settings.model, project_dir)
            finalise(folder, header)
        log.info("exported and verified %s into %s", settings.model_name, output_dir)


def export_bundle(settings: ExportSettings, model_files: list[Path], transforms: Path, test_split: Path,
                  folder: Path, categories: Path | None = None) -> dict[str, Any]:
    """Write every bundle file and a manifest (``verification.passed: false`` until :func:`finalise`)."""
    exporter = {"flow": _export_flow, "covariance_gan": _export_gan, "calratio_rnn": _export_calratio}[settings.kind]
    files, description, groups = exporter(settings, model_files, transforms, test_split, folder, categories)
    for name, source in (("transforms.json", transforms), ("transforms.npz", transforms.with_suffix(".npz"))):
        shutil.copyfile(source, folder / name)
    if categories is not None:
        shutil.copyfile(categories, folder / "categories.json")
    shutil.copyfile(RUNNER, folder / "run_bundle.py")
    batches.write_verification(folder / VERIFICATION_FILE, groups)
    names = ["model.onnx", *files, "transforms.json", "transforms.npz", "run_bundle.py", VERIFICATION_FILE]
    names += ["categories.json"] if categories is not None else []
    names += description.get("c", {}).get("files", [])
    manifest = {
        "format": mf.FORMAT_VERSION,
        "model": settings.model_name,
        # the preprocessing transforms.json was fitted by: the model's own, or for a scan's point its scan's
        # shared one (``WorkflowPlan.preprocessing_name``), which transforms.json names as its "model"
        "preprocessing": json.loads(transforms.read_text()).get("model") or settings.model_name,
        "kind": settings.kind,
        "files": {"onnx": "model.onnx", "native": files, "transforms": "transforms.json",
                  "transforms_arrays": "transforms.npz", "categories": "categories.json" if categories else None,
                  "runner": "run_bundle.py", "verification_batch": VERIFICATION_FILE},
        **description,
        "io": {"tree": settings.tree, "branches": dict(settings.branches),
               **({"dtypes": output_dtypes(test_split, description["variables"]["outputs"], categories is not None)}
                  if settings.kind != "calratio_rnn" else {})},
        "transforms_recipe": mf.TRANSFORM_RECIPE,
        "verification": {"tolerance": settings.tolerance, "rule": RULE, "factor": FACTOR, "rows": None,
                         "passed": False},
        "checksums": mf.bundle_checksums(folder, names),
    }
    manifest["onnx"]["opset"] = settings.opset
    _record_graph_names(folder / "model.onnx", manifest["onnx"])
    mf.write_manifest(folder, manifest)
    return manifest


def output_dtypes(test_split: Path, outputs: list[str], categorised: bool) -> dict[str, str]:
    """The branch type of each generated column, as the generate stage writes it (``generate/step.py``
    ``_cast_like``): the real table's type, so a jetId stays uint8 and a flag bool; float32 where the table
    has no such column, and for SHiP's muons, which generation writes as float32. run_bundle.py had
    written every target as double."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(test_split)
    types = {}
    for name in outputs:
        dtype = np.dtype(schema.field(name).type.to_pandas_dtype()) if name in schema.names else None
        types[name] = dtype.name if dtype is not None and dtype.kind in "biuf" and not categorised else "float32"
    return types


def finalise(folder: Path, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Verify the written bundle; record the result and provenance in bundle.json. Raises on failure."""
    report = verify_bundle(folder)
    manifest = mf.read_manifest(folder)
    if manifest.get("c"):
        from pipeline_steps.export.c_export import verify_bundle_c

        report["c_vs_onnx"] = verify_bundle_c(folder)
    manifest["verification"].update({"passed": True, **report})
    manifest["verified"] = True
    manifest["provenance"] = dict(provenance)
    mf.write_manifest(folder, manifest)
    log.info("verification: %s", report)
    return manifest


def _record_graph_names(path: Path, description: dict[str, Any]) -> None:
    """Replace the described output names by the graph's own (tf2onnx names outputs e.g. ``Identity:0``)
    and check that every described input exists in the graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {i.name for i in graph.input}
    missing = [i["name"] for i in description["inputs"] if i["name"] not in inputs]
    if missing:
        raise InputError(f"{path}: ONNX graph inputs {sorted(inputs)} lack {missing}")
    for entry, output in zip(description["outputs"], graph.output):
        entry["meaning"] = entry["name"]
        entry["name"] = output.name


# ------------------------------------------------------------------------------------------ per kind
def _onnx_io(inputs: list[dict], outputs: list[dict]) -> dict[str, Any]:
    return {"onnx": {"inputs": inputs, "outputs": outputs}}


def _rounding_draws(seed: int, predict) -> np.ndarray:
    """[DRAWS, rows, outputs]: the framework's float32 output with every weight one ulp away, per draw
    (``rounding_draws``: more measurements of the model's float32 error than the plain run's one)."""
    return np.stack([predict(rounding_draws.draw_rng(seed, k)) for k in range(rounding_draws.DRAWS)])


def _generative_groups(conditions, conditions_physical, noise, output, reference, model_transforms, categories,
                       draws):
    """The verification batch: inputs, the framework's float32 output (plain and its rounding draws) and
    its float64 reference, plain and float64 also in physical units (``verify`` measures the float32 error
    of the model from them; it turns the draws into physical units itself)."""
    categories_json = mf.json.loads(categories.read_text()) if categories else None
    physical = batches.physical_targets(model_transforms, output, conditions_physical, categories_json)
    reference_physical = batches.physical_targets(model_transforms, reference, conditions_physical, categories_json)
    return {
        "inputs": {"conditions": conditions, "noise": noise},
        "expected": {"output": output, "output_draws": draws},
        "reference": {"output": reference},
        "conditions_physical": {c: conditions_physical[c].to_numpy() for c in conditions_physical.columns},
        "physical": physical,
        "reference_physical": reference_physical,
    }


def _generative_description(settings, noise_dim: int, targets: list[str], physical: list[str]) -> dict[str, Any]:
    conditions = list(settings.model["conditions"])
    return {
        **_onnx_io(
            [{"name": "conditions", "shape": ["n", len(conditions)], "dtype": "float32", "order": conditions,
              "units": "transformed (apply transforms.json 'conditions' forward to physical values)"},
             {"name": "noise", "shape": ["n", noise_dim], "dtype": "float32", "units": "standard normal"}],
            [{"name": "targets", "shape": ["n", len(targets)], "dtype": "float32", "order": targets,
              "units": "transformed (apply transforms.json 'targets' inverse, then targets_to_physical)"}]),
        "variables": {"conditions": conditions, "targets": targets, "outputs": physical},
        "noise": {"input": "noise", "dim": noise_dim, "distribution": "independent standard normal N(0, 1), float32",
                  "reference_generator": "numpy.random.default_rng(seed).standard_normal((n, dim))",
                  "per_input_file": "run_bundle.py seeds each input file's noise (--seed s) and dequantisation "
                                    "(the stored seed s) by s + 2**64 * k, k a digest of the file's values "
                                    "(run_bundle.InputKey): files run with one seed do not share noise"},
    }


def _export_flow(settings, model_files, transforms, test_split, folder, categories):
    from pipeline_steps.export import torch_export

    train_dir = model_files[0].parent
    model = torch_export.load_flow(train_dir)
    conditions, conditions_physical = batches.read_conditions(test_split, model.spec.conditions, settings.rows)
    noise = batches.standard_normal(len(conditions), len(model.spec.targets), settings.seed)
    output = torch_export.reference_targets(model, conditions, noise)
    reference = torch_export.float64_targets(model, conditions, noise)
    draws = _rounding_draws(settings.seed, lambda rng: torch_export.perturbed_targets(model, conditions, noise, rng))
    torch_export.export_flow_onnx(model, folder / "model.onnx", settings.opset)
    files = torch_export.copy_native(train_dir, folder)
    groups = _generative_groups(conditions, conditions_physical, noise, output, reference,
                                load_transforms(transforms), categories, draws)
    description = _generative_description(settings, len(model.spec.targets), list(model.spec.targets),
                                           list(groups["physical"]))
    description["noise"]["note"] = ("one noise column per target, in target order; a categorised model's part "
                                    "reads the columns of the targets it models and ignores the others")
    return files, description, groups


def _export_gan(settings, model_files, transforms, test_split, folder, categories):
    from pipeline_steps.export import keras_export
    from pipeline_steps.models.covariance_gan import GanArchitecture

    generator_path = next(p for p in model_files if p.suffix == ".keras")
    architecture = GanArchitecture.from_json(mf.json.loads((generator_path.parent / "model.json").read_text()))
    generator = keras_export.load_keras(generator_path)
    conditions, conditions_physical = batches.read_conditions(test_split, list(settings.model["conditions"]), settings.rows)
    noise = batches.standard_normal(len(conditions), architecture.noise_dim, settings.seed)
    output = keras_export.keras_predict(generator, [conditions, noise])
    reference = keras_export.float64_predict(generator, [conditions, noise])
    draws = _rounding_draws(settings.seed,
                            lambda rng: keras_export.perturbed_predict(generator, [conditions, noise], rng))
    keras_export.export_keras_onnx(generator, [conditions, noise], folder / "model.onnx", settings.opset)
    files = keras_export.copy_native(generator_path, folder) + ["model.json"]
    shutil.copyfile(generator_path.parent / "model.json", folder / "model.json")
    model_transforms = load_transforms(transforms)
    groups = _generative_groups(conditions, conditions_physical, noise, output, reference, model_transforms,
                                categories, draws)
    description = _generative_description(settings, architecture.noise_dim, list(settings.model["targets"]),
                                          list(groups["physical"]))
    if settings.c:
        from pipeline_steps.export import c_export

        reference = c_export.onnx_output(folder / "model.onnx", conditions, noise)
        physical = (model_transforms, conditions_physical.to_numpy(np.float64), groups["physical"])
        description["c"] = c_export.export_c(generator, architecture, folder, reference, conditions, noise,
                                             settings.tolerance, physical)
    return files, description, groups


def _export_calratio(settings, model_files, transforms, test_split, folder, categories):
    from pipeline_steps.export import keras_export
    from pipeline_steps.models.calratio_rnn import CLASS_NAMES, CalRatioHyperparameters, model_inputs
    from pipeline_steps.preprocess.calratio_inputs import load_calratio_preprocessing, load_split

    chosen = next(p for p in model_files if p.suffix == ".keras")
    hyper = CalRatioHyperparameters.from_config(settings.model.get("hyperparameters", {}))
    if hyper.use_llp_parameters:
        raise ConfigError(f"models.{settings.model_name}.hyperparameters.use_llp_parameters: export of the "
                          f"parameterised classifier is not supported yet")
    sample = load_split(test_split.parent, "test")
    inputs = model_inputs(sample, False, slice(0, settings.rows))
    if not len(inputs["jets"]):
        raise InputError(f"{test_split}: no test jets to verify the export with")
    classifier = keras_export.load_keras(chosen)
    output = keras_export.keras_predict(classifier, inputs)
    reference = keras_export.float64_predict(classifier, inputs)
    draws = _rounding_draws(settings.seed, lambda rng: keras_export.perturbed_predict(classifier, inputs, rng))
    keras_export.export_keras_onnx(classifier, inputs, folder / "model.onnx", settings.opset)
    files = keras_export.copy_native(chosen, folder)
    selection = chosen.with_name("selection.json")
    if selection.exists():
        shutil.copyfile(selection, folder / "selection.json")
        files.append("selection.json")
    section = load_calratio_preprocessing(transforms)
    conditions = list(settings.model["conditions"])
    onnx_inputs = [{"name": "jets", "shape": ["n", len(conditions)], "dtype": "float32", "order": conditions,
                    "units": "transformed (transforms.json 'conditions' forward)"}]
    for name, spec in section["sequences"].items():
        onnx_inputs.append({"name": name, "shape": ["n", spec["length"], len(spec["fields"])], "dtype": "float32",
                            "order": [f"{spec['prefix']}{f}" for f in spec["fields"]],
                            "units": "per-field (x - mean) / std on real objects; padding = pad_value",
                            "padding_length": spec["length"], "pad_value": section["pad_value"]})
    description = {
        **_onnx_io(onnx_inputs, [{"name": "class_probabilities", "shape": ["n", len(CLASS_NAMES)], "dtype": "float32",
                                  "order": list(CLASS_NAMES), "units": "softmax probabilities"}]),
        "variables": {"conditions": conditions, "targets": [], "outputs": list(CLASS_NAMES)},
        "noise": None,
        "padding": {name: spec["length"] for name, spec in section["sequences"].items()},
    }
    groups = {"inputs": inputs, "expected": {"output": output, "output_draws": draws},
              "reference": {"output": reference}}
    return files, description, groups
