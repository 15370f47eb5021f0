"""What a person reads: ``report.html``, ``augbeam inspect`` and ``augbeam preview``.

May import ``pipeline.format``, ``pipeline.errors``, ``pipeline.fsutil`` and ``transforms``.
"""
