"""The flat call of traced functions: the same results as the ordinary call, no silent casts."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.tfcall import FlatCall


@pytest.fixture(scope="module")
def concrete():
    import tensorflow as tf

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8), tf.TensorSpec([None, 2], tf.float32)],
        autograph=False,
    )
    def fn(images, values):
        total = tf.reduce_sum(tf.cast(images, tf.float32), axis=[1, 2, 3])
        return total * values[:, 0] + values[:, 1], (tf.shape(images), tf.strings.as_string(total))

    return fn.get_concrete_function()


def test_flat_call_gives_what_the_ordinary_call_gives(concrete):
    images = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    values = np.array([[0.5, 1.0], [2.0, -3.0]], np.float32)
    flat = FlatCall(concrete)
    assert flat._flat is not None  # the pinned TensorFlow has the flat entry point: the fast path is tested
    got, want = flat(images, values), concrete(images, values)
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
    np.testing.assert_array_equal(got[1][0].numpy(), want[1][0].numpy())
    np.testing.assert_array_equal(got[1][1].numpy(), want[1][1].numpy())


def test_a_wrong_dtype_is_refused_not_cast(concrete):
    flat = FlatCall(concrete)
    with pytest.raises(TypeError, match="expected uint8, got int32"):
        flat(np.zeros((1, 2, 2, 3), np.int32), np.zeros((1, 2), np.float32))


def test_without_the_flat_entry_point_the_ordinary_call_is_used(concrete):
    flat = FlatCall(concrete)
    flat._flat = None  # as on a TensorFlow version without it
    out = flat(np.ones((1, 2, 2, 3), np.uint8), np.array([[1.0, 0.0]], np.float32))
    assert float(out[0].numpy()[0]) == 12.0
