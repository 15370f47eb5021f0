"""Image math for augbeam: seeding, ops, decoding, model preprocessing, encodings.

``ops/`` holds the augmentation ops and their registry (``import transforms.ops``
registers them all); beside it: ``augment`` (sampling and the traced render),
``config`` (op lists, presets), ``config_bounds`` (a config file's size, nesting,
op count; YAML aliases refused), ``catalog`` (``augbeam ops``), ``decode``,
``formats`` and ``budget`` (decoded bytes from headers), ``preprocess`` (model
preprocessing), ``encoding``, ``rng`` (seeding), ``tfcall``, ``tfmath``,
``errors``, and ``tf_import`` (TensorFlow's API imported name by name, which
the job's processes install: ``pipeline.job``).

TensorFlow and NumPy only. Nothing here imports Apache Beam, so the same code
runs in a Beam worker, in a notebook, and in the reader.
"""
