"""channelwise: per-channel values in the fast layout give exactly the bits of a plain broadcast."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf


@pytest.mark.parametrize(
    ("shape", "values_shape"),
    [
        ((37, 53, 3), (3,)),
        ((4, 20, 31, 3), (3,)),
        ((4, 20, 31, 3), (4, 1, 1, 3)),
        ((1, 1, 1, 3), (1, 1, 1, 3)),
        ((2, 5, 7, 4), (4,)),
    ],
)
def test_channelwise_has_the_bits_of_a_plain_broadcast(shape, values_shape):
    """Per-channel values repeated along rows (the fast layout) give exactly the plain broadcast's bits."""
    from transforms.tfmath import channelwise

    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(0.0, 255.0, shape).astype(np.float32))
    v = tf.constant(rng.uniform(0.1, 200.0, values_shape).astype(np.float32))
    for fn in (tf.subtract, tf.divide, lambda a, b: (a - b) * 1.37 + b):
        expected = fn(x, v).numpy()
        eager = channelwise(fn, x, v).numpy()
        traced = tf.function(lambda a, b, fn=fn: channelwise(fn, a, b))(x, v).numpy()
        assert eager.shape == shape
        assert eager.tobytes() == expected.tobytes() and traced.tobytes() == expected.tobytes()
