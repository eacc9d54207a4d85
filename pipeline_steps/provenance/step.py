"""The ``provenance`` rule (write results/provenance.json) and ``checksum_raw`` (the raw files' sha256, per part)."""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping, Sequence

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.logs import step_logging
from pipeline_steps.provenance.document import ModelRecord, build_provenance
from pipeline_steps.provenance.raw_checksums import read_checksums, write_part_checksums

logger = logging.getLogger(__name__)


def records_from_rule(models: Mapping[str, Mapping[str, Any]]) -> list[ModelRecord]:
    """ModelRecords from the provenance rule's ``params.models`` ({name: {config, raw_inputs, outputs}})."""
    return [
        ModelRecord(name, dict(entry["config"]), list(entry["raw_inputs"]), list(entry["outputs"]))
        for name, entry in models.items()
    ]


def write_provenance(models: Sequence[ModelRecord], raw_checksums: Sequence[str], output: str, checkout: str,
                     seed: int, log: str | None = None) -> None:
    """The rule's entry point: hash the models' outputs, take the raw files' sha256 from ``raw_checksums`` (rule
    checksum_raw's JSONs), write results/provenance.json atomically."""
    with step_logging(log):
        document = build_provenance(models, checkout, seed, read_checksums(raw_checksums))
        write_text_atomic(output, json.dumps(document, indent=2, sort_keys=True) + "\n")
        logger.info("provenance of %d models -> %s (git %s)", len(models), output, document["git"]["commit"])


def write_raw_checksums(raw_files: Sequence[str], output: str, log: str | None = None) -> None:
    """Rule checksum_raw's entry point: the sha256 of one ingest part's raw files (``raw_checksums.py``)."""
    with step_logging(log):
        checksums = write_part_checksums(raw_files, output)
        logger.info("sha256 of %d raw files -> %s", len(checksums), output)
