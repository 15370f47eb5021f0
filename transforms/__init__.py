"""Image math for augbeam: seeding, ops, decoding, model preprocessing, encodings.

``ops/`` holds the augmentation ops and their registry (``import transforms.ops``
registers them all); beside it: ``augment`` (sampling and the traced render),
``config`` (op lists, presets), ``config_bounds`` (a config file's size, nesting,
op count; YAML aliases refused), ``catalog`` (``augbeam ops``), ``decode``,
``formats`` and ``budget`` (decoded bytes from headers), ``preprocess`` (model
preprocessing), ``encoding``, ``rng`` (seeding), ``tfcall``, ``tfmath``,
``errors``, and ``tf_import``, installed here: ``import tensorflow`` then
resolves TensorFlow's API name by name, as used.

TensorFlow and NumPy only. Nothing here imports Apache Beam, so the same code
runs in a Beam worker, in a notebook, and in the reader.
"""

from transforms import tf_import as _tf_import

# Before any module here imports TensorFlow: its public API name by name (``tf_import``, why and how much).
_tf_import.install()
