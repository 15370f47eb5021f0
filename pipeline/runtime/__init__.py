"""Where a job runs: which Beam runner, how its workers get this project, TensorFlow's threads on a worker.

May import ``pipeline.errors`` and ``pipeline.fsutil`` only.
"""
