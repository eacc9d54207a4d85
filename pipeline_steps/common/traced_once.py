"""A TensorFlow function traced once for inputs of any batch size.

Why: a ``tf.function`` traces its Python body again for every new combination of input shapes, even with
``reduce_retracing`` (which relaxes a shape only once it has seen it change). The CalRatio training cuts
its splits with ``np.array_split`` into mini-batches of two sizes, with the main and control-region
splits changing size at different mini-batches, and its two update steps were traced five times in the
first epoch; its per-epoch evaluation called the LSTM classifier eagerly, op by op. Traced once with the
batch axis left open, every call runs the same graph: the one the later mini-batches ran already, so the
numbers do not change.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def traced_once(function: Callable) -> Callable:
    """``function`` as a ``tf.function`` whose input signature is made from its first call's arguments
    (nested dicts and lists of arrays) with the first axis of each of any length.

    Later calls must bring the same structure, dtypes and non-batch dimensions: TensorFlow rejects
    others with an error naming the argument, where a retrace would have hidden the change.
    """
    traced = None

    def call(*args):
        nonlocal traced
        if traced is None:
            import tensorflow as tf

            traced = tf.function(function, input_signature=tf.nest.map_structure(_any_batch_spec, list(args)))
        return traced(*args)

    return call


def _any_batch_spec(value):
    """The ``tf.TensorSpec`` of ``value`` (an array or tensor) with its first axis of any length."""
    import tensorflow as tf

    value = np.asarray(value)
    return tf.TensorSpec((None, *value.shape[1:]), tf.as_dtype(value.dtype))
