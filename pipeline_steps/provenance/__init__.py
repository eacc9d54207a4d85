"""Provenance: results/provenance.json ties every model to its raw inputs, config, code and packages.

- ``document``: build the document, and ``verify`` (re-hash what it lists, report drift).
- ``raw_checksums``: the raw files' sha256, taken once per ingest part (rule ``checksum_raw``) for export and
  provenance.
- ``step``: the ``provenance`` rule's ``write_provenance`` and ``checksum_raw``'s ``write_raw_checksums``.
- ``python -m pipeline_steps.provenance results/provenance.json``: ``make verify``.
"""
