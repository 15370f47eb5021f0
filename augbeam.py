"""augbeam's public import for training scripts: ``import augbeam; ds = augbeam.load("out", split="train")``.

The reader and the manifest's types live here, so a training script never imports a module named
``pipeline``. The job itself is the ``augbeam`` command.
"""

from typing import Any

from pipeline import __version__
from pipeline.format.manifest import ErrorRow, IndexRow, Manifest, ShardInfo, SplitInfo
from pipeline.format.reader import ReaderError, iter_errors, iter_index, load, read_manifest


def check_model(model: Any, data: Any) -> list[str]:
    """Warnings when ``model`` and the output ``data`` normalise twice or never (``pipeline.checks.model_check``)."""
    from pipeline.checks.model_check import check_model as check

    return check(model, data)


__all__ = [
    "ErrorRow",
    "IndexRow",
    "Manifest",
    "ReaderError",
    "ShardInfo",
    "SplitInfo",
    "__version__",
    "check_model",
    "iter_errors",
    "iter_index",
    "load",
    "read_manifest",
]
