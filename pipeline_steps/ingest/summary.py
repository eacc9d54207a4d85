"""Per-file ingestion summaries (one JSON per ingest part) and their gathering into one JSON per dataset.

A physicist checking a production wants, per table and file: how many entries and objects went in,
how many rows came out, and why the others were dropped (no match index, an index past the stored
target collection (NanoAOD skims GenJets below a pt threshold), matched object failing the match
selection, table selection, duplicates removed by ``unique``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from pipeline_steps.common.errors import InputError
from pipeline_steps.ingest.flatten import ChunkCounts

COUNT_KEYS = tuple(ChunkCounts.__dataclass_fields__)


def file_summary(dataset: str, table: str, source_file: str, tree: str, counts: ChunkCounts, columns: list[str]) -> dict:
    """The per-(file, table) summary written beside the Parquet file.

    ``selected``: the rows that the match requirement and the selection kept, before ``unique`` removed
    duplicates. It had been ``rows_in`` minus every unmatched and failed count, which counts an unmatched
    row twice under ``keep_unmatched: true`` (unmatched rows are kept, then some fail the selection) and
    gave negative numbers there; ``rows_out + duplicates_removed`` is the same count without that case.
    """
    return {
        "dataset": dataset,
        "table": table,
        "source_file": source_file,
        "tree": tree,
        **asdict(counts),
        "selected": counts.rows_out + counts.duplicates_removed,
        "columns": columns,
    }


def gather(dataset: str, summaries: Iterable[dict]) -> dict:
    """Dataset summary: per table, the per-file summaries (sorted by file) and their totals."""
    tables: dict[str, dict] = {}
    for summary in sorted(summaries, key=lambda s: (s["table"], s["source_file"])):
        table = tables.setdefault(summary["table"], {"files": [], "totals": dict.fromkeys((*COUNT_KEYS, "selected"), 0)})
        table["files"].append(summary)
        for key in table["totals"]:
            table["totals"][key] += int(summary.get(key, 0))
    return {"dataset": dataset, "n_files": len({s["source_file"] for t in tables.values() for s in t["files"]}),
            "tables": tables}


def read_summaries(paths: Iterable[str | Path]) -> list[dict]:
    """The per-file summaries in the per-part JSONs; a broken JSON is an InputError naming it."""
    summaries = []
    for path in paths:
        try:
            files = json.loads(Path(path).read_text())["files"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"{path}: unreadable ingestion summary ({type(error).__name__}: {error}); "
                             f"expected the JSON ingest_table writes, with a 'files' list") from None
        summaries.extend(files)
    return summaries
