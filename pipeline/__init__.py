"""augbeam: an offline, seeded image augmentation job on Apache Beam.

``pipeline`` holds the Beam job (options, listing, PTransforms, shard writer,
manifest, CLI) and ``format.reader`` to load the output with ``tf.data``
(training scripts use it as ``augbeam.load``). Importing this package imports
neither TensorFlow nor Beam; it makes ``import tensorflow`` load TensorFlow's
API name by name (``transforms.tf_import``). The layout and import rules:
docs/layout.md.
"""

import transforms as _transforms  # noqa: F401  (installs transforms.tf_import before anything imports TensorFlow)

__version__ = "0.1.0"
