"""Hyperparameter scans: expand one config model into one model per scan point, then rank the points.

- ``expansion``: ``models.<name>.scan`` -> ordinary model instances (run once on the config, in common.smk).
- ``ranking``: a validation figure of merit per point, the order, the pointer to the best point.
- ``step``: the ``rank_scan`` rule's ``run``.
"""
