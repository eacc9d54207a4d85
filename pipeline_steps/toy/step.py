"""Snakemake entry point of the toy stage: one job writes the seeded raw ROOT files of one dataset.

``data/raw/<dataset>/<index>.root`` is a pure function of (config ``seed``, dataset name, file
index, the dataset's ``toy`` slice, its ``tree``): the per-file random stream comes from
``SeedSequence([seed, stable_hash(dataset), index])``, so files are independent, reproducible
and can be made in any order or in parallel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.toy import LAYOUTS
from pipeline_steps.toy.writer import CHUNK_ENTRIES, Branches, uuid_from_seed, write_tree

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ToySettings:
    """The dataset's ``toy`` slice plus its tree name and the global seed."""

    layout: str
    n_files: int
    entries_per_file: int
    tree: str
    seed: int
    rogue_file: int | None = None

    @classmethod
    def from_params(cls, toy: Mapping, tree: str, seed: int) -> "ToySettings":
        if toy.get("layout") not in LAYOUTS:
            raise ConfigError(f"datasets.<name>.toy.layout: expected one of {LAYOUTS}, found {toy.get('layout')!r}")
        return cls(
            layout=toy["layout"],
            n_files=int(toy["n_files"]),
            entries_per_file=int(toy["entries_per_file"]),
            tree=str(tree),
            seed=int(seed),
            rogue_file=None if toy.get("rogue_file") is None else int(toy["rogue_file"]),
        )


@dataclasses.dataclass(frozen=True)
class FileContext:
    """What a layout generator needs to know about the file it is filling.

    ``first_event`` makes event numbers unique across the files of a dataset (a file holds at
    most ``entries_per_file`` events, so file ``i`` numbers its events from ``i * entries_per_file``).
    """

    index: int
    first_event: int
    rogue: bool


def stable_name_hash(name: str) -> int:
    """64-bit hash of a dataset name that, unlike ``hash()``, is the same in every process."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def file_seed_sequence(seed: int, dataset: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, stable_name_hash(dataset), index])


def generate_file(output: str | os.PathLike, dataset: str, index: int, settings: ToySettings) -> int:
    """Write one toy file; return the number of TTree entries written."""
    if not 0 <= index < settings.n_files:
        raise ConfigError(
            f"datasets.{dataset}.toy.n_files = {settings.n_files}: file index {index} is out of range"
        )
    seeds = file_seed_sequence(settings.seed, dataset, index)
    context = FileContext(
        index=index,
        first_event=index * settings.entries_per_file,
        rogue=settings.rogue_file is not None and index == settings.rogue_file,
    )
    generator = _layout_generator(settings.layout)
    rng = np.random.default_rng(seeds)
    chunks = _chunks(generator, rng, settings.entries_per_file, context)
    return write_tree(output, settings.tree, chunks, uuid_from_seed(seeds), counters=generator.COUNTERS)


def run(outputs: Sequence[str], dataset: str, params: Mapping, log: str | None = None) -> None:
    """Snakemake adapter: ``outputs`` are the dataset's files, each named ``<index>.root`` (its index
    picks its random stream); ``params`` carries ``toy`` (the dataset's toy slice), ``tree``, ``seed``."""
    with step_logging(log):
        settings = ToySettings.from_params(params["toy"], params["tree"], params["seed"])
        for output in outputs:
            index = int(Path(output).stem)
            logger.info("toy %s file %d: layout %s, %d entries", dataset, index, settings.layout, settings.entries_per_file)
            n_entries = generate_file(output, dataset, index, settings)
            logger.info("wrote %s (%d entries in tree %s)", output, n_entries, settings.tree)


def _chunks(generator, rng: np.random.Generator, n_entries: int, context: FileContext) -> Iterator[Branches]:
    """Yield chunks of at most CHUNK_ENTRIES entries; event numbering carries across chunks."""
    next_event = context.first_event
    with tqdm(total=n_entries, unit="entries", mininterval=5.0) as progress:
        for start in range(0, n_entries, CHUNK_ENTRIES):
            size = min(CHUNK_ENTRIES, n_entries - start)
            chunk_context = dataclasses.replace(context, first_event=next_event)
            branches, next_event = generator.generate_chunk(rng, size, chunk_context)
            progress.update(size)
            yield branches


def _layout_generator(layout: str):
    """The module (or region object) with ``COUNTERS`` and ``generate_chunk`` for a layout."""
    import importlib

    if layout.startswith("calratio"):
        calratio = importlib.import_module("pipeline_steps.toy.calratio")
        return calratio.main_region if layout == "calratio_main" else calratio.control_region
    return importlib.import_module(f"pipeline_steps.toy.{layout}")
