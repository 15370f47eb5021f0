"""``transforms.tf_import``: TensorFlow's API name by name, the same values as a plain import, and every way back.

Each case runs in a fresh interpreter: this test process has TensorFlow imported already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transforms import tf_import

ROOT = Path(__file__).resolve().parents[2]

# The same render as the job's kinds of ops (decode, resize, a projective warp, colour), printed as a hash.
RENDER = """
import hashlib, json, sys, types
import pipeline.job  # installs it, unless switched off
import tensorflow as tf
UNUSED = ("tensorflow._api.v2.compat.v1", "tensorflow.python.feature_column.feature_column_v2",
          "tensorflow.python.distribute.combinations", "keras")
data = open(sys.argv[1], "rb").read()
image = tf.io.decode_jpeg(data)
x = tf.image.resize(image, [61, 47], antialias=True)
x = tf.raw_ops.ImageProjectiveTransformV3(
    images=x[tf.newaxis], transforms=tf.constant([[0.9, 0.1, 2.0, -0.1, 0.9, 1.0, 0.0, 0.0]]),
    output_shape=tf.constant([40, 30]), fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")[0]
x = tf.image.adjust_contrast(tf.image.adjust_brightness(x, 0.1), 1.3)
f = tf.function(lambda t: tf.cast(tf.clip_by_value(tf.round(t), 0, 255), tf.uint8))
print(json.dumps({
    "sha256": hashlib.sha256(f(x).numpy().tobytes()).hexdigest(),
    "lazy": type(sys.modules["tensorflow"]) is not types.ModuleType,
    "modules": len(sys.modules),
    "unused_imported": [m for m in UNUSED if m in sys.modules],
    "eager": tf.executing_eagerly(),
    "version": tf.__version__,
}))
"""


def run_python(code: str, *args: str, lazy: bool = True) -> dict:
    env = {**os.environ, tf_import.ENV_SWITCH: "1" if lazy else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_lazy_module_renders_the_same_bytes_as_a_plain_import_with_less_imported():
    photo = str(ROOT / "tests" / "data" / "rocket_small.jpg")
    lazy = run_python(RENDER, photo)
    plain = run_python(RENDER, photo, lazy=False)
    assert lazy["lazy"] and not plain["lazy"]
    assert lazy["sha256"] == plain["sha256"]
    assert lazy["eager"] and plain["eager"]
    assert lazy["version"] == plain["version"]
    assert lazy["unused_imported"] == [] and len(plain["unused_imported"]) == 4
    assert lazy["modules"] < plain["modules"] * 0.7


def test_a_name_outside_the_table_runs_the_whole_init_and_the_module_is_then_a_plain_one():
    result = run_python(
        """
import json, sys, types
import pipeline.job
import tensorflow as tf
probe = hasattr(tf, "__wrapped__")  # a dunder probe finds nothing and loads nothing
before = type(tf) is types.ModuleType
keras = tf.keras  # set up by code in TensorFlow's __init__, not by an import line
print(json.dumps({"probe": probe, "before": before, "after": type(tf) is types.ModuleType,
                  "all": "image" in tf.__all__, "dense": keras.layers.Dense.__name__}))
"""
    )
    assert result == {"probe": False, "before": False, "after": True, "all": True, "dense": "Dense"}


def test_import_of_tensorflow_keras_works_before_any_name_is_used():
    result = run_python(
        """
import json
import pipeline.job
from tensorflow.keras import layers
import tensorflow as tf
print(json.dumps({"dense": layers.Dense.__name__, "same": tf.keras.layers.Dense is layers.Dense}))
"""
    )
    assert result == {"dense": "Dense", "same": True}


def test_nothing_is_installed_where_tensorflow_is_imported_first_or_it_is_switched_off():
    first = run_python(
        """
import json, sys, types
import tensorflow
from transforms import tf_import
print(json.dumps({"installed": tf_import.install(), "plain": type(sys.modules["tensorflow"]) is types.ModuleType}))
"""
    )
    assert first == {"installed": False, "plain": True}
    off = run_python(
        """
import json, sys, types
import pipeline.job
print(json.dumps({"imported": "tensorflow" in sys.modules}))
""",
        lazy=False,
    )
    assert off == {"imported": False}


def test_installing_imports_nothing_of_tensorflow_until_a_name_is_used():
    result = run_python(
        """
import json, sys
import pipeline.job
loaded = sorted(name for name in sys.modules if name.startswith("tensorflow."))
import tensorflow as tf
tf.constant(1)
print(json.dumps({"loaded": loaded, "after": "tensorflow.python.framework.ops" in sys.modules}))
"""
    )
    assert result == {"loaded": [], "after": True}


@pytest.mark.parametrize("line", ["from tensorflow.python.ops.math_ops import cast # line: 940"])
def test_the_import_lines_of_tensorflows_init_are_read(line: str) -> None:
    assert tf_import._IMPORT_LINE.findall(line) == [("tensorflow.python.ops.math_ops", "cast", "")]


def test_the_names_the_workers_code_uses_are_resolved_before_a_fork_and_the_rest_are_not():
    """What the warm worker server runs last (``pipeline.job.warm_start``): after it a shard imports no more."""
    result = run_python(
        """
import importlib, json, sys
from pipeline.job.warm_start import WORKER_MODULES
from pipeline.runtime.fork_server import preload
preload(list(WORKER_MODULES))
tf = sys.modules["tensorflow"]
resolved = set(vars(tf))
print(json.dumps({"image": "image" in resolved, "function": "function" in resolved,
                  "data": "data" in resolved, "keras": "keras" in resolved,
                  "decoding": "tensorflow.python.ops.image_ops_impl" in sys.modules,
                  "lazy": type(tf).__name__}))
"""
    )
    # tf.data is named only in the reader's docstrings among these modules; tf.keras would load everything
    assert result == {
        "image": True,
        "function": True,
        "data": False,
        "keras": False,
        "decoding": True,
        "lazy": "_LazyTensorFlow",
    }


def test_threads_resolving_names_at_once_get_the_same_objects_and_the_prelude_once():
    result = run_python(
        """
import json, threading
import pipeline.job
import tensorflow as tf
names = ["image", "io", "function", "cast", "constant", "raw_ops", "math", "float32"] * 4
got = {}
barrier = threading.Barrier(len(names))
def resolve(i, name):
    barrier.wait()
    got[i] = getattr(tf, name)
threads = [threading.Thread(target=resolve, args=(i, n)) for i, n in enumerate(names)]
for t in threads: t.start()
for t in threads: t.join()
same = all(got[i] is getattr(tf, n) for i, n in enumerate(names))
print(json.dumps({"same": same, "value": int(tf.cast(tf.constant(2.6), tf.int32)), "eager": tf.executing_eagerly()}))
"""
    )
    assert result == {"same": True, "value": 2, "eager": True}


def test_a_function_that_uses_tf_pickles_with_beams_pickler_as_with_a_plain_import():
    """Beam pickles a lambda with its globals; the lazy module must travel by name as a plain module does."""
    result = run_python(
        """
import json, pickle
import pipeline.job
import tensorflow as tf
from apache_beam.internal import pickler
double = lambda x: int(tf.constant(x) * 2)
again = pickler.loads(pickler.dumps(double))
print(json.dumps({"beam": again(21), "plain_pickle": pickle.loads(pickle.dumps(tf)) is tf}))
"""
    )
    assert result == {"beam": 42, "plain_pickle": True}


def test_tensors_behave_as_with_a_plain_import_before_any_other_name_is_used():
    """Operators, slicing and gradients come from other modules' imports, which a plain import has made."""
    result = run_python(
        """
import json
import pipeline.job
import tensorflow as tf
x = tf.constant([1.0, 2.0, 3.0])
times, sliced = (x * 2).numpy().tolist(), x[1:].numpy().tolist()  # before any name but ``constant``
with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.reduce_sum(x * x)
print(json.dumps({"times": times, "slice": sliced,
                  "grad": tape.gradient(y, x).numpy().tolist(), "from_list": tf.stack([x[0], 5.0]).numpy().tolist()}))
"""
    )
    assert result == {"times": [2.0, 4.0, 6.0], "slice": [2.0, 3.0], "grad": [2.0, 4.0, 6.0], "from_list": [1.0, 5.0]}


def test_a_training_script_that_reads_the_output_gets_a_plain_import():
    result = run_python(
        """
import json, sys, types
import augbeam
import tensorflow as tf
print(json.dumps({"plain": type(sys.modules["tensorflow"]) is types.ModuleType}))
"""
    )
    assert result == {"plain": True}
