"""Which device a framework will train on, said once in the rule's log.

A physicist reading ``logs/train/<model>.log`` from a cluster job must see whether the GPU was used.
Frameworks are imported lazily so that a TensorFlow job never imports torch and vice versa.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def describe_device(framework: str) -> str:
    """One line: the device ``framework`` ('tensorflow' or 'torch') will use, GPU first."""
    if framework == "tensorflow":
        return _describe_tensorflow()
    if framework == "torch":
        return _describe_torch()
    raise ValueError(f"describe_device: expected 'tensorflow' or 'torch', got {framework!r}")


def log_device(framework: str) -> str:
    """Log :func:`describe_device` at INFO level and return it."""
    line = describe_device(framework)
    logger.info("%s", line)
    return line


def _describe_tensorflow() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = ", ".join(gpu.name for gpu in gpus)
        return f"TensorFlow {tf.__version__} trains on GPU ({len(gpus)}: {names})"
    return f"TensorFlow {tf.__version__} trains on CPU (no GPU visible)"


def _describe_torch() -> str:
    import torch

    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        return f"torch {torch.__version__} trains on GPU cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"torch {torch.__version__} trains on CPU (torch.cuda.is_available() is False)"
