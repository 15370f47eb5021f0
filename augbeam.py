"""augbeam's public import for training scripts: ``import augbeam; ds = augbeam.load("out", split="train")``.

The reader and the manifest's types live here, so a training script never imports a module named
``pipeline``. The job itself is the ``augbeam`` command.
"""

from pipeline import __version__
from pipeline.format.manifest import ErrorRow, IndexRow, Manifest, ShardInfo, SplitInfo
from pipeline.format.reader import ReaderError, load, read_manifest

__all__ = [
    "ErrorRow",
    "IndexRow",
    "Manifest",
    "ReaderError",
    "ShardInfo",
    "SplitInfo",
    "__version__",
    "load",
    "read_manifest",
]
