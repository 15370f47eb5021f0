"""The job and its Beam graph: config, listing, the shard worker, progress and finalize.

May import ``pipeline.format``, ``pipeline.runtime``, ``pipeline.errors``, ``pipeline.fsutil`` and
``transforms``; finalize reaches ``pipeline.report`` only through the side-file makers, by name.

Importing it installs ``transforms.tf_import`` (unless TensorFlow is imported already): the job's processes (driver,
warm worker server, workers on any runner) import TensorFlow's API name by name, as their code uses it. A training
script that reads the output (``augbeam.load``) does not import this package, and gets a plain ``import tensorflow``.
"""

from transforms import tf_import as _tf_import

_tf_import.install()
