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
from pipeline_steps.export.onnx_canonical import canonicalise_file
from pipeline_steps.export.rounding_draws import one_ulp_away

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


def float64_predict(model, inputs: Mapping[str, np.ndarray] | list[np.ndarray]) -> np.ndarray:
    """``model`` rebuilt with every layer's dtype policy float64 and the same weights, run on ``inputs``
    in float64: the verification's reference (``pipeline_steps.export.verify`` measures the float32
    rounding error of this model against it)."""
    twin = model.__class__.from_config(_float64_config(model.get_config()))
    twin.set_weights([np.asarray(weight, np.float64) for weight in model.get_weights()])
    if isinstance(inputs, Mapping):
        cast = {name: np.asarray(value, np.float64) for name, value in inputs.items()}
    else:
        cast = [np.asarray(value, np.float64) for value in inputs]
    output = np.asarray(twin(cast, training=False))
    if output.dtype != np.float64:
        raise InputError(f"export: the float64 twin of {model.name} computed in {output.dtype}; a layer ignores "
                         f"its dtype policy, so the float32 error of this model cannot be measured")
    return output


def perturbed_predict(model, inputs: Mapping[str, np.ndarray] | list[np.ndarray],
                      rng: np.random.Generator) -> np.ndarray:
    """:func:`keras_predict` of a twin whose every weight is one ulp away (a float32 rounding draw,
    ``pipeline_steps.export.rounding_draws``)."""
    twin = model.__class__.from_config(model.get_config())
    twin.set_weights([one_ulp_away(np.asarray(weight), rng) for weight in model.get_weights()])
    return keras_predict(twin, inputs)


def export_keras_onnx(model, example_inputs, path: str | Path, opset: int) -> None:
    """Call ``model`` once on ``example_inputs`` (builds it), then write ONNX to ``path`` atomically."""
    keras_predict(model, example_inputs)
    with atomic_path(path) as tmp:
        model.export(str(tmp), format="onnx", opset_version=int(opset), verbose=False)
        canonicalise_file(tmp)  # tf2onnx lists the nodes in another order each time: same model, same bytes


def _float64_config(value):
    """A Keras config with every float32 dtype (policy or plain string) replaced by float64."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return {**value, "config": {**value["config"], "name": "float64"}}
        return {key: _float64_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float64_config(item) for item in value]
    return "float64" if value == "float32" else value


def copy_native(source: str | Path, bundle: str | Path, name: str = "model.keras") -> list[str]:
    """The trained ``.keras`` file copied byte for byte into the bundle as ``name``."""
    with atomic_path(Path(bundle) / name) as tmp:
        shutil.copyfile(source, tmp)
    return [name]
