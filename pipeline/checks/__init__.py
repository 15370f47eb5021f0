"""Checks of a finished output: ``augbeam verify`` and the model's normalisation check.

May import ``pipeline.format``, ``pipeline.job`` (to re-list and regenerate), ``pipeline.runtime`` (to run
``verify``'s checks as a Beam job), ``pipeline.errors``, ``pipeline.fsutil`` and ``transforms``.
"""
