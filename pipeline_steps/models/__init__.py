"""Generative models, one module per kind: builders and `load_sampler(train_dir)` for generation and export."""
