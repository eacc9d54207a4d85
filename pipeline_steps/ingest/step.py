"""Entry points of the ingest rules: one (raw file, table) -> Parquet + JSON, and the gather step."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from tqdm import tqdm

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.ingest.flatten import ChunkCounts, flatten_chunk, required_branches
from pipeline_steps.ingest.mapping import Reading, TableMapping, reading_from_config, table_from_config
from pipeline_steps.ingest.reader import check_branches, empty_arrays, iterate_entries, open_tree
from pipeline_steps.ingest.summary import file_summary, gather, read_summaries
from pipeline_steps.ingest.writer import TableWriter, arrow_table

logger = logging.getLogger("pipeline_steps.ingest")


def run(
    raw_file: str,
    parquet: str,
    summary: str,
    reading: Mapping[str, Any],
    mapping: Mapping[str, Any],
    table: str,
    dataset: str = "",
    log: str | None = None,
) -> dict:
    """Ingest one table of one raw file. ``reading`` is the dataset slice (tree, step_size,
    empty_tree, identity), ``mapping`` the table's slice. Both outputs appear only on success."""
    with step_logging(log):
        reading_cfg = reading_from_config(reading)
        table_mapping = table_from_config(table, mapping)
        with atomic_path(parquet) as tmp_parquet:
            counts, columns = ingest_file(raw_file, tmp_parquet, reading_cfg, table_mapping)
            result = file_summary(dataset, table, Path(raw_file).name, reading_cfg.tree, counts, columns)
            write_text_atomic(summary, json.dumps(result, indent=2) + "\n")
        logger.info("%s/%s: %s", Path(raw_file).name, table, json.dumps({k: v for k, v in result.items() if k != "columns"}))
        if counts.unmatched_index_out_of_range:
            logger.warning("%s/%s: %d objects have a match index past the stored target collection (skimmed, "
                           "as NanoAOD GenJets below threshold); they count as unmatched", Path(raw_file).name, table,
                           counts.unmatched_index_out_of_range)
        return result


def run_summary(summaries: Iterable[str], output: str, dataset: str, log: str | None = None) -> dict:
    """Gather the per-file summaries of every table of a dataset into one JSON."""
    with step_logging(log):
        result = gather(dataset, read_summaries(summaries))
        write_text_atomic(output, json.dumps(result, indent=2) + "\n")
        for table, content in result["tables"].items():
            logger.info("%s/%s totals: %s", dataset, table, content["totals"])
        return result


def ingest_file(raw_file: str, parquet: str | Path, reading: Reading, mapping: TableMapping) -> tuple[ChunkCounts, list[str]]:
    """Stream ``raw_file`` through the mapping into ``parquet``; returns the counts and column names."""
    source_file = Path(raw_file).name
    where = f"{raw_file}:{reading.tree}"
    branches = required_branches(mapping, reading.identity)
    counts = ChunkCounts()
    with open_tree(raw_file, reading.tree) as tree:
        check_branches(tree, branches, where)
        if tree.num_entries == 0 and reading.empty_tree == "error":
            raise InputError(f"{where}: the tree is empty (0 entries); set empty_tree: empty_table to accept this")
        steps = iterate_entries(tree, branches, reading.step_size, where)
        step = next(steps, None)
        # The schema comes from zero entries of the first step (a zero-entry read would decompress the
        # first basket of every branch once more); only an empty tree needs that read.
        zero_entries = step[1][:0] if step is not None else empty_arrays(tree, branches, where)
        schema = arrow_table(flatten_chunk(zero_entries, mapping, reading.identity, source_file, 0, where).columns).schema
        del zero_entries
        with TableWriter(parquet, schema) as writer, tqdm(total=tree.num_entries, unit="entries", desc=source_file) as bar:
            while step is not None:
                entry_start, arrays = step
                step = None  # hold one step at a time: the raw arrays go once flattened
                chunk = flatten_chunk(arrays, mapping, reading.identity, source_file, entry_start, where)
                n_entries = len(arrays)
                del arrays
                writer.write(arrow_table(chunk.columns))
                counts.add(chunk.counts)
                del chunk
                bar.update(n_entries)
                step = next(steps, None)
    return counts, schema.names
