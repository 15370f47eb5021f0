"""The output format: record schema and writer, manifest, index and side files, and the ``tf.data`` reader.

May import ``pipeline.errors``, ``pipeline.fsutil`` and ``transforms``; nothing else in ``pipeline``,
so a training job that reads the output never imports the Beam job.
"""
