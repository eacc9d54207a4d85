"""Preprocessing for every model: deterministic splits, fitted invertible transforms, model inputs.

- ``split``: train/validation/test by a hash of each row's identity (stable under file order/count).
- ``transforms``: per-variable transforms (JSON + npz, never pickle) and the loader generation uses.
- ``derived``: derived targets (ratio, difference, delta_phi) and their inverses.
- ``covariance_representation``: 5x5 covariance <-> unbounded target representations.
- ``model_step``: the ``preprocess_model`` rule's ``run``; ``plots``: its diagnostic figures.
"""
