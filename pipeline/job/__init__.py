"""The job and its Beam graph: config, listing, the shard worker, progress and finalize.

May import ``pipeline.format``, ``pipeline.runtime``, ``pipeline.errors``, ``pipeline.fsutil`` and
``transforms``; finalize reaches ``pipeline.report`` only through the side-file makers, by name.
"""
