"""Per-file ingestion summaries (one JSON per ingest part) and their gathering into one JSON per dataset.

A physicist checking a production wants, per table and file: how many entries and objects went in,
how many rows came out, and why the others were dropped (no match index, an index past the stored
target collection (NanoAOD skims GenJets below a pt threshold), matched object failing the match
selection, table selection, duplicates removed by ``unique``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from pipeline_steps.common.errors import InputError
from pipeline_steps.ingest.flatten import ChunkCounts

COUNT_KEYS = tuple(ChunkCounts.__dataclass_fields__)
DIGEST_ROWS = 1024


class RowsDigest:
    """A fingerprint of one file's output rows: their number and the first and last ``DIGEST_ROWS`` rows,
    every column but ``source_file``.

    Two files with the same fingerprint hold the same rows: a copy under another name (``_1.root``, a second
    download, the same sample in two compressions). Their events would count twice in training and, without
    identity branches, fall in train and test at once. Only the ends are hashed, so the check costs ~1 ms per
    file instead of a pass over all its bytes; rows that differ only in the middle of two equally long files
    are not told apart, which copies never do.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.head: bytes | None = None
        self.tail = b""

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        table = table.drop_columns([name for name in ("source_file",) if name in table.column_names])
        if self.head is None:
            self.head = _ipc_bytes(table.slice(0, DIGEST_ROWS))
        self.tail = _ipc_bytes(table.slice(max(0, table.num_rows - DIGEST_ROWS)))
        self.rows += table.num_rows

    def hexdigest(self) -> str | None:
        """None for a file without rows: empty files are all alike and copies of nothing."""
        if self.head is None:
            return None
        return hashlib.blake2b(b"%d|" % self.rows + self.head + b"|" + self.tail, digest_size=16).hexdigest()


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def file_summary(dataset: str, table: str, source_file: str, tree: str, counts: ChunkCounts, columns: list[str],
                 rows_digest: str | None = None, bytes_past_end: int = 0) -> dict:
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
        "rows_digest": rows_digest,
        "bytes_past_end": bytes_past_end,
    }


def gather(dataset: str, summaries: Iterable[dict]) -> dict:
    """Dataset summary: per table, the per-file summaries (sorted by file) and their totals."""
    tables: dict[str, dict] = {}
    for summary in sorted(summaries, key=lambda s: (s["table"], s["source_file"])):
        table = tables.setdefault(summary["table"], {"files": [], "totals": dict.fromkeys((*COUNT_KEYS, "selected"), 0)})
        table["files"].append(summary)
        for key in table["totals"]:
            table["totals"][key] += int(summary.get(key, 0))
    for table in tables.values():
        table["same_rows"] = same_rows(table["files"])
        table["bytes_past_end"] = [s["source_file"] for s in table["files"] if s.get("bytes_past_end")]
    return {"dataset": dataset, "n_files": len({s["source_file"] for t in tables.values() for s in t["files"]}),
            "tables": tables}


def same_rows(files: Iterable[dict]) -> list[list[str]]:
    """Groups of files whose rows are the same (``RowsDigest``), each sorted; [] when every file is its own."""
    by_digest: dict[str, list[str]] = {}
    for summary in files:
        if summary.get("rows_digest"):
            by_digest.setdefault(summary["rows_digest"], []).append(summary["source_file"])
    return sorted(sorted(names) for names in by_digest.values() if len(names) > 1)


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
