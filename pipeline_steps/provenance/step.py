"""The ``provenance`` rule: hash every model's raw inputs and outputs, write results/provenance.json."""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping, Sequence

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.logs import step_logging
from pipeline_steps.provenance.document import ModelRecord, build_provenance

logger = logging.getLogger(__name__)


def records_from_rule(models: Mapping[str, Mapping[str, Any]]) -> list[ModelRecord]:
    """ModelRecords from the provenance rule's ``params.models`` ({name: {config, raw_inputs, outputs}})."""
    return [
        ModelRecord(name, dict(entry["config"]), list(entry["raw_inputs"]), list(entry["outputs"]))
        for name, entry in models.items()
    ]


def write_provenance(models: Sequence[ModelRecord], output: str, checkout: str, seed: int,
                     log: str | None = None) -> None:
    """The rule's entry point: hash everything, write results/provenance.json atomically."""
    with step_logging(log):
        document = build_provenance(models, checkout, seed)
        write_text_atomic(output, json.dumps(document, indent=2, sort_keys=True) + "\n")
        logger.info("provenance of %d models -> %s (git %s)", len(models), output, document["git"]["commit"])
