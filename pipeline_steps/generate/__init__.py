"""Generation: trained sampler + conditions -> physical rows -> ROOT file in the input layout.

Modules: ``layout`` (flat ingest-style columns <-> branches of the dataset's tree), ``root_io``
(streamed, atomic uproot writer and its reader), ``sampling`` (batched sampling, SHiP category
counts), ``ship`` (categories.json shares and denormalisation), ``step`` (the rule's ``run``).
"""
