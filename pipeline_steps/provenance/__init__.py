"""Provenance: results/provenance.json ties every model to its raw inputs, config, code and packages.

- ``document``: build the document, and ``verify`` (re-hash what it lists, report drift).
- ``step``: the ``provenance`` rule's ``write_provenance``.
- ``python -m pipeline_steps.provenance results/provenance.json``: ``make verify``.
"""
