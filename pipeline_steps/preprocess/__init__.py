"""Preprocessing for every model: deterministic splits, fitted invertible transforms, model inputs.

- ``split``: train/validation/test by a hash of each row's event identity (stable under file order/count).
- ``transforms``: per-variable transforms (JSON + npz, never pickle) and the loader generation uses.
- ``derived``: derived targets (ratio, difference, delta_phi) and their inverses.
- ``covariance_representation``: 5x5 covariance <-> unbounded target representations.
- ``model_splits``: splits + transforms of flows and covariance GANs; ``plots``: its diagnostic figures.
- ``calratio_splits`` / ``calratio_inputs``: the CalRatio splits, padded sequences and their loader.
- ``step``: the rules' entries, ``run_model`` (``preprocess_model``) and ``run_calratio`` (``preprocess_calratio``).
"""
