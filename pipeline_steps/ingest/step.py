"""Entry points of the ingest rules: one (part of the raw files, table) -> Parquet + JSON, and the gather step."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.ingest.flatten import ChunkCounts, flatten_chunk, name_alternatives, required_branches
from pipeline_steps.ingest.branch_parts import branch_names, branch_parts, branches_to_read, with_parts
from pipeline_steps.ingest.mapping import Reading, TableMapping, reading_from_config, table_from_config
from pipeline_steps.ingest.reader import check_branches, empty_arrays, iterate_entries, open_tree
from pipeline_steps.ingest.summary import RowsDigest, file_summary, gather, read_summaries
from pipeline_steps.ingest.writer import TableWriter, arrow_table

logger = logging.getLogger("pipeline_steps.ingest")


def run(
    raw_files: Sequence[str],
    parquet: str,
    summary: str,
    reading: Mapping[str, Any],
    mapping: Mapping[str, Any],
    table: str,
    dataset: str = "",
    log: str | None = None,
    threads: int = 1,
    source_files: Sequence[str] | None = None,
) -> list[dict]:
    """Ingest one table of one part (a few raw files, pipeline_steps/ingest/parts.py) into one Parquet
    file, the files' rows one after the other. ``reading`` is the dataset slice (tree, step_size,
    empty_tree, identity), ``mapping`` the table's slice. The JSON summary has one entry per file; both
    outputs appear only on success, so one bad file fails its whole part. ``threads`` baskets are
    decompressed at once (``reader.open_tree``); the output does not depend on it. ``source_files``
    (one per raw file; default the file names) is each file's ``source_file`` column, which the plan
    lengthens by folders where two of a dataset's files share a name (``workflow_config.files_by_stem``)."""
    with step_logging(log):
        reading_cfg = reading_from_config(reading)
        table_mapping = table_from_config(table, mapping)
        names = list(source_files) if source_files is not None else [Path(raw_file).name for raw_file in raw_files]
        with atomic_path(parquet) as tmp_parquet:
            files, columns = ingest_files(raw_files, tmp_parquet, reading_cfg, table_mapping, threads, names)
            results = [file_summary(dataset, table, name, reading_cfg.tree, ingested.counts, columns,
                                    ingested.digest, ingested.bytes_past_end)
                       for name, ingested in zip(names, files)]
            part_summary = {"dataset": dataset, "table": table, "files": results}
            write_text_atomic(summary, json.dumps(part_summary, indent=2) + "\n")
        for result in results:
            _log_file_result(result)
        return results


def _log_file_result(result: Mapping[str, Any]) -> None:
    where = f"{result['source_file']}/{result['table']}"
    logger.info("%s: %s", where, json.dumps({k: v for k, v in result.items() if k != "columns"}))
    if result["unmatched_index_out_of_range"]:
        logger.warning("%s: %d objects have a match index past the stored target collection (skimmed, "
                       "as NanoAOD GenJets below threshold); they count as unmatched", where,
                       result["unmatched_index_out_of_range"])


def run_summary(summaries: Iterable[str], output: str, dataset: str, log: str | None = None) -> dict:
    """Gather the per-file summaries of every table of a dataset into one JSON."""
    with step_logging(log):
        result = gather(dataset, read_summaries(summaries))
        write_text_atomic(output, json.dumps(result, indent=2) + "\n")
        for table, content in result["tables"].items():
            logger.info("%s/%s totals: %s", dataset, table, content["totals"])
            for names in content["same_rows"]:
                logger.warning("%s/%s: the files %s hold the same rows (copies?): their events count %d times in "
                               "training, and without identity branches fall in train and test at once; blacklist "
                               "all but one", dataset, table, names, len(names))
            if content["bytes_past_end"]:
                logger.warning("%s/%s: the files %s have bytes past the end their header records: if their writer was "
                               "killed before closing them, their trees hold only the entries of their last "
                               "AutoSave; produce them again or blacklist them", dataset, table, content["bytes_past_end"])
        return result


@dataclass
class IngestedFile:
    """What one raw file gave: its counts, its ``RowsDigest`` and the bytes past its header's end (a writer
    killed after an AutoSave, ``reader._check_closed``)."""

    counts: ChunkCounts
    digest: str | None
    bytes_past_end: int


def ingest_files(raw_files: Sequence[str], parquet: str | Path, reading: Reading, mapping: TableMapping,
                 threads: int, source_files: Sequence[str]) -> tuple[list[IngestedFile], list[str]]:
    """Stream each of ``raw_files`` through the mapping into one ``parquet``, in order; returns what each
    file gave and the column names. ``source_files``: each file's ``source_file``, one per file. The first
    file fixes the column
    types; a later file's columns are cast to them (float32 vs float64 across productions), and one that
    cannot be is an InputError naming that file."""
    if not raw_files:
        raise ValueError(f"{parquet}: no raw files to ingest")
    writer: TableWriter | None = None
    files = []
    branches: list[str] | None = None  # resolved on the first file, so every file reads a name from one branch
    try:
        for index, (raw_file, source_file) in enumerate(zip(raw_files, source_files, strict=True)):
            try:
                ingested, writer, branches = _ingest_file(raw_file, source_file, parquet, writer, reading, mapping,
                                                          branches, threads)
            except InputError as error:
                raise InputError(f"{error}{_later_failures(raw_files[index + 1:], reading, mapping, branches)}") from None
            files.append(ingested)
    finally:
        if writer is not None:
            writer.close()
    return files, writer.schema.names


#: The reasons said of the later files of a part after its first bad file's error, at most (the rest counted).
LATER_FAILURES_LISTED = 10


def _later_failures(later_files: Sequence[str], reading: Reading, mapping: TableMapping,
                    branches: list[str] | None) -> str:
    """What the part's files after a bad one give when opened and checked (:func:`_checked_tree`: the header, the
    keys, the tree, its branches and entries), said after the bad file's error. A part's job stops at its first
    bad file, so a part holding several (a batch of copies cut short) named one a run: on a cluster, one queue
    wait each before the blacklist was whole. Files failing for one reason (a branch the config names wrongly
    is missing from all) are said once. A damaged basket shows only when its entries are read."""
    if not later_files:
        return ""
    by_reason: dict[str, list[str]] = {}
    for raw_file in later_files:
        try:
            with _checked_tree(raw_file, reading, mapping, branches, threads=1):
                pass
        except (InputError, ConfigError) as error:  # a selection the first file never reached: said, not raised
            by_reason.setdefault(str(error).replace(str(raw_file), "\0"), []).append(str(raw_file))
    later = f"the part's later files ({len(later_files)})"
    if not by_reason:
        return f" ({later} open and hold the branches)"
    said = [_reason_of(reason, files) for reason, files in list(by_reason.items())[:LATER_FAILURES_LISTED]]
    more = f"; and {len(by_reason) - LATER_FAILURES_LISTED} more" if len(by_reason) > LATER_FAILURES_LISTED else ""
    failing = sum(len(files) for files in by_reason.values())
    return f" (and {failing} of {later}, opened and checked as far as the tree and its branches: {'; '.join(said)}{more})"


def _reason_of(reason: str, files: list[str]) -> str:
    """One reason, said of its first file, and the other files it holds for."""
    others = ", ".join(Path(name).name for name in files[1:4]) + (", ..." if len(files) > 4 else "")
    return reason.replace("\0", files[0]) + (f" (the same for {len(files) - 1} more: {others})" if others else "")


@contextlib.contextmanager
def _checked_tree(raw_file: str, reading: Reading, mapping: TableMapping, branches: list[str] | None,
                  threads: int = 1) -> Iterator[tuple[object, int, list[str], dict]]:
    """Yield ``(tree, bytes past its file's end, branches, parts)`` of ``raw_file`` once the file opens whole
    (``reader.open_tree``) and its tree holds every branch the table reads and, unless allowed, an entry.

    ``branches`` are those the part's first file resolved the names of ``selection`` and ``unique`` to
    (``required_branches``), None for the first file: a selection's ``HLT_IsoMu24`` read from the event-level
    branch in one file and from ``Jet_HLT_IsoMu24`` in the next would change meaning between files."""
    where = f"{raw_file}:{reading.tree}"
    with open_tree(raw_file, reading.tree, threads) as (tree, bytes_past_end):
        names = branch_names(tree)
        if branches is None:
            branches = required_branches(mapping, reading.identity, set(names))
        parts = branch_parts(tree, names, branches)  # pv.z of a leaf-list branch, COV_[0][1] of a fixed-size array
        check_branches(tree, names, [name for name in branches if name not in parts], where,
                       name_alternatives(mapping, reading.identity))
        if tree.num_entries == 0 and reading.empty_tree == "error":
            raise InputError(f"{where}: the tree is empty (0 entries); set empty_tree: empty_table to accept this")
        yield tree, bytes_past_end, branches, parts


def _ingest_file(raw_file: str, source_file: str, parquet: str | Path, writer: TableWriter | None, reading: Reading,
                 mapping: TableMapping, branches: list[str] | None,
                 threads: int = 1) -> tuple[IngestedFile, TableWriter, list[str]]:
    """Append one raw file's rows to ``writer`` (opened on ``parquet`` here for the part's first file), their
    ``source_file`` column holding ``source_file``; ``branches``: see :func:`_checked_tree`."""
    where = f"{raw_file}:{reading.tree}"
    counts = ChunkCounts()
    digest = RowsDigest()
    with _checked_tree(raw_file, reading, mapping, branches, threads) as (tree, bytes_past_end, branches, parts):
        read = branches_to_read(branches, parts)
        steps = ((start, with_parts(arrays, parts, where))
                 for start, arrays in iterate_entries(tree, read, reading.step_size, where))
        step = next(steps, None)
        if writer is None:
            # The schema comes from zero entries of the first step (a zero-entry read would decompress the
            # first basket of every branch once more); only an empty tree needs that read.
            zero_entries = step[1][:0] if step is not None else with_parts(empty_arrays(tree, read, where), parts, where)
            schema = arrow_table(flatten_chunk(zero_entries, mapping, reading.identity, source_file, 0, where).columns).schema
            del zero_entries
            writer = TableWriter(parquet, schema)
        with tqdm(total=tree.num_entries, unit="entries", desc=source_file) as bar:
            while step is not None:
                entry_start, arrays = step
                step = None  # hold one step at a time: the raw arrays go once flattened
                chunk = flatten_chunk(arrays, mapping, reading.identity, source_file, entry_start, where)
                n_entries = len(arrays)
                del arrays
                rows = arrow_table(chunk.columns)
                _write_chunk(writer, rows, where)
                digest.add(rows)
                del rows
                counts.add(chunk.counts)
                del chunk
                bar.update(n_entries)
                step = next(steps, None)
    return IngestedFile(counts, digest.hexdigest(), bytes_past_end), writer, branches


def _write_chunk(writer: TableWriter, table: pa.Table, where: str) -> None:
    try:
        writer.write(table)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        differ = [f"{field.name}: {field.type} (first file: {writer.schema.field(field.name).type})"
                  for field in table.schema if field.type != writer.schema.field(field.name).type]
        raise InputError(f"{where}: column types {differ} cannot be converted to those of the part's first "
                         f"file ({error}); files ingested together must hold the same branch types") from None
