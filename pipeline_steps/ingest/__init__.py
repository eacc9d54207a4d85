"""Ingestion: one raw ROOT file -> one Parquet table per configured table, in bounded steps.

Modules: ``mapping`` (typed mapping from a dataset's config), ``selection`` (safe selection
strings), ``reader`` (opening, validating and iterating files), ``flatten`` (awkward chunk ->
columns: flattening, matching, selection, unique), ``writer`` (Parquet), ``summary`` and ``step``
(the ``run`` functions the Snakemake scripts call).
"""
