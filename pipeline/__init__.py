"""augbeam: an offline, seeded image augmentation job on Apache Beam.

``pipeline`` holds the Beam job (options, listing, PTransforms, shard writer,
manifest, CLI) and ``format.reader`` to load the output with ``tf.data``
(training scripts use it as ``augbeam.load``). Importing this package imports
neither TensorFlow nor Beam. The layout and import rules: docs/layout.md.
"""

__version__ = "0.1.0"
