"""Keras models (covariance GAN generator, CalRatio classifier) -> ONNX and the native ``.keras``.

Keras 3's ``model.export(path, format="onnx")`` goes through tf2onnx; it needs a model that has
been called once (so every layer is built) and, for the variable-length CalRatio sequences, keeps the
sequence axis dynamic, so one graph serves any padding length (the manifest records the trained one).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from pipeline_steps.common.atomic import atomic_path
from pipeline_steps.common.errors import InputError

log = logging.getLogger(__name__)


def load_keras(path: str | Path):
    """A saved Keras model, loaded in safe mode without its optimiser.

    TensorFloat-32 is switched off: on Ampere/Hopper GPUs TensorFlow would otherwise run float32
    matmuls with a 10-bit mantissa, and the framework side of verification must be full float32
    to be compared with ONNX Runtime at the manifest's tolerance.
    """
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)

    path = Path(path)
    if not path.exists():
        raise InputError(f"export: {path} is missing; expected a trained Keras model")
    return keras.models.load_model(path, compile=False, safe_mode=True)


def keras_predict(model, inputs: Mapping[str, np.ndarray] | list[np.ndarray]) -> np.ndarray:
    """Inference-mode output of ``model`` as float32 numpy (the framework side of verification)."""
    return np.asarray(model(inputs, training=False), dtype=np.float32)


def export_keras_onnx(model, example_inputs, path: str | Path, opset: int) -> None:
    """Call ``model`` once on ``example_inputs`` (builds it), then write ONNX to ``path`` atomically."""
    keras_predict(model, example_inputs)
    with atomic_path(path) as tmp:
        model.export(str(tmp), format="onnx", opset_version=int(opset), verbose=False)


def copy_native(source: str | Path, bundle: str | Path, name: str = "model.keras") -> list[str]:
    """The trained ``.keras`` file copied byte for byte into the bundle as ``name``."""
    with atomic_path(Path(bundle) / name) as tmp:
        shutil.copyfile(source, tmp)
    return [name]
