"""toy/libm.py: glibc's values, bit for bit, in numpy's shapes."""

import math

import numpy as np
import pytest

from pipeline_steps.toy import libm

# 10,000 values: numpy's AVX-512 code gives other bits than glibc's for 452 of them in exp, 47 in tan, 18 in
# arctan (Intel Xeon, numpy 2.4.6), so a function that fell back to numpy fails here on such a CPU; of the
# 1,000 used before, arctan differed in none.
X = np.random.default_rng(3).normal(0.0, 2.0, (100, 100))


@pytest.mark.parametrize("name, reference", [("exp", math.exp), ("tan", math.tan), ("arctan", math.atan),
                                             ("cos", math.cos), ("sin", math.sin)])
def test_each_function_is_glibcs_to_the_bit(name, reference):
    values = getattr(libm, name)(X)
    assert values.shape == X.shape and values.dtype == np.float64
    assert values.tobytes() == np.array([[reference(v) for v in row] for row in X.tolist()]).tobytes()


def test_power_takes_a_scalar_base():
    assert libm.power(10.0, X).tobytes() == np.array([[math.pow(10.0, v) for v in row] for row in X.tolist()]).tobytes()


def test_empty_and_zero_dimensional_inputs_keep_their_shape():
    assert libm.exp(np.array([])).shape == (0,)
    assert libm.exp(np.float64(1.0)).shape == () and float(libm.exp(np.float64(1.0))) == math.e
