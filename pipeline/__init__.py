"""augbeam: an offline, seeded image augmentation job on Apache Beam.

``pipeline`` holds the Beam job (options, listing, PTransforms, shard writer,
manifest, CLI) and ``reader`` to load the output with ``tf.data``. Importing
this package imports neither TensorFlow nor Beam.
"""

__version__ = "0.1.0"
