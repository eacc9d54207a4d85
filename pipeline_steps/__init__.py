"""Fast-simulation workflow steps: all logic, importable without Snakemake."""

from pipeline_steps.common.triton_before_tensorflow import install as _load_triton_before_tensorflow

_load_triton_before_tensorflow()  # first, before any TensorFlow import: see common/triton_before_tensorflow.py
