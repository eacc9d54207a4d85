"""The ``generate_*`` rules: trained sampler -> physical rows -> ``generated.root`` + ``generation.json``.

Conditional models (covariance GAN, NanoAOD flows) take the conditions of the held-out test split,
row by row, so every generated object has a real twin with the same identity (source_file, entry,
object_index, run/lumi/event): the ROOT file keeps those as branches. The SHiP muon model has the
category as its only condition: it generates ``validation.generated_events`` muons split over the
categories by Poisson counts around the recorded *weighted* shares (generated muons are unweighted
draws from the weighted distribution), and each gets ``MCTrack_weight = weight_total / n_generated``
so that the generated file carries the same total weight as the sample it was trained on.

Everything runs in event-aligned chunks of ``chunk_rows`` rows (sample -> inverse transform ->
physical), and the writer gathers chunks into blocks of ``write_block_rows`` rows, one ROOT
``extend`` each (``root_io.DEFAULT_BLOCK_ROWS`` says why a block is larger than a chunk), so
memory does not grow with the number of generated rows.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.identity import IDENTITY_COLUMNS, identity_columns
from pipeline_steps.common.logs import step_logging
from pipeline_steps.generate.layout import OutputLayout, layout_from_config
from pipeline_steps.generate.root_io import DEFAULT_BLOCK_ROWS, root_writer
from pipeline_steps.generate.sampling import (
    Sampler,
    chunk_seed,
    event_aligned_chunks,
    poisson_category_counts,
    sample_conditions,
)

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class GenerateSettings:
    """What generation needs from the config: the model's variables, the output layout, the seed."""

    model: str
    kind: str
    conditions: tuple[str, ...]
    targets: tuple[str, ...]
    categorised: bool
    weight: str | None
    generated_events: int
    seed: int
    layout: OutputLayout
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    write_block_rows: int = DEFAULT_BLOCK_ROWS

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "GenerateSettings":
        """From the rule's params: ``model_name``, ``model`` (its slice), ``dataset`` (tree,
        identity, table), ``validation`` and ``seed``."""
        model, dataset = params["model"], params["dataset"]
        categorised = bool(model.get("categorised", False))
        if categorised and list(model["conditions"]) != ["category"]:
            raise ConfigError(f"models.{params['model_name']}.conditions: a categorised model has the "
                              f"condition [category], got {model['conditions']}")
        return cls(
            model=str(params["model_name"]),
            kind=str(model["kind"]),
            conditions=tuple(model["conditions"]),
            targets=tuple(model["targets"]),
            categorised=categorised,
            weight=model.get("weight"),
            generated_events=int(params["validation"]["generated_events"]),  # config.yaml: validation.generated_events
            seed=int(params["seed"]),
            layout=layout_from_config(dataset["tree"], list(dataset.get("identity", [])), dataset["table"]),
            chunk_rows=int(params.get("chunk_rows", DEFAULT_CHUNK_ROWS)),
            write_block_rows=int(params.get("write_block_rows", DEFAULT_BLOCK_ROWS)),
        )


@dataclass(frozen=True)
class GenerationStats:
    rows: int
    seconds_sampling: float
    seconds_total: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "seconds_sampling": round(self.seconds_sampling, 4),
            "seconds_total": round(self.seconds_total, 4),
            "rows_per_s": self.rows / self.seconds_total if self.seconds_total > 0 else None,
            "rows_per_s_sampling_only": self.rows / self.seconds_sampling if self.seconds_sampling > 0 else None,
        }


def run(train_dir: str, test_split: str, transforms: str, output: str, generation_json: str,
        params: Mapping[str, Any], log_path: str | None = None, categories: str | None = None) -> None:
    """Rule entry point: load the sampler of the model's kind and generate into ``output``."""
    with step_logging(log_path):
        from pipeline_steps.preprocess.transforms import load_transforms

        settings = GenerateSettings.from_params(params)
        sampler = load_sampler(settings.kind, train_dir)
        model_transforms = load_transforms(transforms)
        test_rows = read_test_split(test_split, settings)
        categories_json = _load_categories(categories) if settings.categorised else None
        stats = generate_to_root(sampler, model_transforms, test_rows, settings, output, categories_json)
        write_text_atomic(generation_json, json.dumps({"model": settings.model, **stats.to_dict()}, indent=1) + "\n")
        log.info("generated %d rows for %s: %s", stats.rows, settings.model, stats.to_dict())


def load_sampler(kind: str, train_dir: str | Path) -> Sampler:
    """``pipeline_steps.models.<kind>.load_sampler(train_dir)``; logs the device it will use."""
    try:
        from pipeline_steps.train.devices import log_device

        log_device("torch" if kind == "flow" else "tensorflow")
    except ImportError:  # devices.py is optional for generation
        pass
    return importlib.import_module(f"pipeline_steps.models.{kind}").load_sampler(train_dir)


def read_test_split(path: str | Path, settings: GenerateSettings) -> pd.DataFrame:
    """The held-out test split, sorted so that the rows of one event are contiguous."""
    try:
        rows = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the test split ({error})") from error
    if not settings.categorised:
        needed = [f"cond__{name}" for name in settings.conditions] + list(settings.conditions)
        missing = [name for name in needed if name not in rows.columns]
        if missing:
            raise InputError(f"{path}: columns {missing} missing; expected the conditions of model "
                             f"{settings.model} (physical and cond__*)")
        if not len(rows):
            raise InputError(f"{path}: the test split is empty; nothing to generate from")
    order = [key for key in IDENTITY_COLUMNS if key in rows.columns]
    return rows.sort_values(order, kind="mergesort").reset_index(drop=True) if order else rows


def generate_to_root(sampler: Sampler, model_transforms, test_rows: pd.DataFrame, settings: GenerateSettings,
                     output: str | Path, categories_json: Mapping[str, Any] | None = None) -> GenerationStats:
    """Sample chunk by chunk and stream the physical rows into ``output`` (atomic)."""
    chunks = (_categorised_chunks(model_transforms, settings, categories_json) if settings.categorised
              else _conditional_chunks(test_rows, settings))
    n_targets = len(model_transforms.target_names)
    rows, sampling_seconds, started = 0, 0.0, time.perf_counter()
    with (root_writer(output, settings.layout, settings.write_block_rows) as write,
          tqdm(desc=f"generate {settings.model}", unit="rows") as bar):
        for index, (conditions, carried) in enumerate(chunks):
            before = time.perf_counter()
            generated = sample_conditions(sampler, conditions, chunk_seed(settings.seed, index), n_targets)
            sampling_seconds += time.perf_counter() - before
            physical = physical_rows(generated, carried, model_transforms, settings, test_rows, categories_json)
            write(physical)
            rows += len(physical)
            bar.update(len(physical))
    return GenerationStats(rows, sampling_seconds, time.perf_counter() - started)


def physical_rows(generated: np.ndarray, carried: pd.DataFrame, model_transforms, settings: GenerateSettings,
                  reference: pd.DataFrame, categories_json: Mapping[str, Any] | None) -> pd.DataFrame:
    """Transformed samples + the carried rows (identity, physical conditions) -> rows to write.

    Generated columns are held to the training support (``transforms.json`` ``support``: training
    range, discrete values) and take the dtype of the same column of the real table when it has one
    (an integer branch stays an integer, rounded), float32 otherwise.
    """
    model_space = model_transforms.targets.inverse(generated)
    if settings.categorised:
        return _ship_rows(model_space, carried, settings, categories_json)
    physical = model_transforms.targets_to_physical(model_space, carried.reset_index(drop=True))
    physical = _cast_like(model_transforms.support.apply(physical), reference)
    return pd.concat([carried.reset_index(drop=True), physical], axis=1)


def _conditional_chunks(test_rows: pd.DataFrame, settings: GenerateSettings) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    carried_columns = [c for c in (*identity_columns(settings.layout.identity), *settings.conditions)
                       if c in test_rows.columns]
    carried_columns = list(dict.fromkeys(carried_columns))
    cond_columns = [f"cond__{name}" for name in settings.conditions]
    for part in event_aligned_chunks(test_rows, settings.chunk_rows):
        chunk = test_rows.iloc[part]
        carried = chunk[carried_columns]
        if settings.weight and "weight" in chunk.columns:  # a conditional sample keeps its event's weight
            carried = carried.assign(**{settings.weight: chunk["weight"].to_numpy()})
        yield chunk[cond_columns].to_numpy(np.float32), carried


def _categorised_chunks(model_transforms, settings: GenerateSettings,
                        categories_json: Mapping[str, Any]) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    from pipeline_steps.categorise.categories import category_shares

    rng = np.random.default_rng([settings.seed, 9])
    counts = poisson_category_counts(category_shares(categories_json, weighted=True), settings.generated_events, rng)
    log.info("SHiP categories to generate (Poisson around the weighted shares): %s", counts)
    categories = np.concatenate([np.full(n, c, dtype=np.int8) for c, n in counts.items()])
    for start in range(0, len(categories), settings.chunk_rows):
        carried = pd.DataFrame({"category": categories[start:start + settings.chunk_rows]})
        yield model_transforms.conditions.forward(carried), carried


def _ship_rows(model_space: pd.DataFrame, carried: pd.DataFrame, settings: GenerateSettings,
               categories_json: Mapping[str, Any]) -> pd.DataFrame:
    """Normalised SHiP targets -> physical MCTrack fields (PdgCode from the category)."""
    from pipeline_steps.categorise.categories import denormalise_mixed

    table = model_space.assign(category=carried["category"].to_numpy())
    physical = denormalise_mixed(table, categories_json)
    pdg = {int(c): int(info["pdg_code"]) for c, info in categories_json["categories"].items()}
    out = pd.DataFrame({"category": physical["category"].to_numpy(np.int8),
                        "PdgCode": physical["category"].map(pdg).to_numpy(np.int32)})
    for name in settings.targets:
        out[name] = physical[name].to_numpy(np.float32)
    weight_name = settings.weight or "weight"
    per_muon = float(categories_json.get("weight_total", 0.0)) / max(settings.generated_events, 1)
    out[weight_name] = np.float32(per_muon if per_muon > 0 else 1.0)
    return out


def _cast_like(physical: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    columns = {}
    for name in physical.columns:
        values = physical[name].to_numpy()
        dtype = reference[name].dtype if name in reference.columns else None
        if dtype is not None and np.issubdtype(dtype, np.integer):
            columns[name] = np.rint(values).astype(dtype)
        elif dtype is not None and np.issubdtype(dtype, np.bool_):
            columns[name] = values > 0.5
        elif dtype is not None and np.issubdtype(dtype, np.floating):
            columns[name] = values.astype(dtype)
        else:
            columns[name] = values.astype(np.float32)
    return pd.DataFrame(columns)


def _load_categories(path: str | None) -> dict[str, Any]:
    if path is None:
        raise ConfigError("a categorised model needs categories.json (results/categorise/<dataset>/categories.json)")
    from pipeline_steps.categorise.categories import load_categories

    return load_categories(path)
