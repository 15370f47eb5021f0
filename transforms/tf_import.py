"""TensorFlow's public API, imported name by name as it is first used.

``import tensorflow`` runs a generated ``__init__`` that imports every public module of TensorFlow (tf.data,
distribute, compat.v1, feature columns, autograph's whole tree, Keras' optimizers): 2.6-3.0 CPU-seconds, of which a
worker of this job uses under half. Every process of a job pays it before its first image, and on a local run it
is most of the path to the first record (measured: docs/performance.md, "Importing TensorFlow by name").

:func:`install` puts the module ``tensorflow`` in ``sys.modules`` unexecuted. Its attributes are resolved on first
use from the ``from X import Y as Z`` lines of TensorFlow's own ``__init__``: the same objects from the same modules,
so nothing renders differently (the golden files are the check). Before the first, it does what that ``__init__``
does besides importing: TensorFlow 2 behaviour, the kernel and plugin libraries it loads, and the ops modules
whose imports give every tensor its operators, slicing, conversions and gradients. A name the table lacks
(``tf.keras``, which the ``__init__`` sets up in code, or ``dir(tf)``), and ``import tensorflow.keras``, run the
whole ``__init__`` in the module, which is from then on what a plain import makes. It pickles by name.

Installed by the job's processes only (``pipeline.job``), whose TensorFlow code is this project's and tested under
it; a training script that imports ``augbeam`` to read the output gets a plain import. Nothing happens where
``tensorflow`` is imported already, or with ``AUGBEAM_LAZY_TENSORFLOW=0``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENV_SWITCH = "AUGBEAM_LAZY_TENSORFLOW"

# ``from tensorflow.python.ops.math_ops import cast # line: 940`` and ``from tensorflow._api.v2 import image``
_IMPORT_LINE = re.compile(r"^from (tensorflow[\w.]*) import (\w+)(?: as (\w+))?(?:\s*#.*)?$", re.MULTILINE)
_API_PACKAGE = "tensorflow._api.v2"

_lock = threading.RLock()


class _LazyTensorFlow(types.ModuleType):
    """The ``tensorflow`` module until a name outside its ``__init__``'s import lines is asked for."""

    def __getattr__(self, name: str) -> Any:
        table: dict[str, tuple[str, str]] | None = self.__dict__.get("_augbeam_table")
        if table is None:  # the whole __init__ has run and did not set it
            raise AttributeError(f"module 'tensorflow' has no attribute {name!r}")
        source = table.get(name)
        if source is None:
            if name.startswith("__") and name != "__all__":  # probes (``__wrapped__``) it would lack too
                raise AttributeError(f"module 'tensorflow' has no attribute {name!r}")
            run_whole_init(self)
            return getattr(self, name)
        _prelude(self)
        # No lock: two threads resolving one name import through importlib's own locks and set the same object.
        module_name, attribute = source
        if module_name == _API_PACKAGE:
            value: Any = importlib.import_module(f"{module_name}.{attribute}")
        else:
            value = getattr(importlib.import_module(module_name), attribute)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        run_whole_init(self)
        return list(self.__dict__)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled by name, as a plain module is (Beam's cloudpickle dispatches on the exact type)."""
        return importlib.import_module, (self.__name__,)


def _prelude(module: types.ModuleType) -> None:
    """What TensorFlow's ``__init__`` does besides importing names, once, before the first name is resolved."""
    if "_augbeam_prelude" not in module.__dict__:
        return
    with _lock:  # another thread waits here until it is done; this one, re-entering from inside it, goes on
        if module.__dict__.get("_augbeam_prelude") is True:
            module.__dict__["_augbeam_prelude"] = "running"
            try:
                _run_prelude(module)
            finally:
                module.__dict__.pop("_augbeam_prelude", None)


def _run_prelude(module: types.ModuleType) -> None:
    from tensorflow.python import tf2
    from tensorflow.python.compat import v2_compat
    from tensorflow.python.framework import load_library

    tf2.enable()
    v2_compat.enable_v2_behavior()
    # What other modules' imports register for every tensor (operators, slicing, conversions, gradients), which
    # a plain import has before any name is used: ``tf.constant(2) * 2`` needs math_ops imported (0.2 s more).
    importlib.import_module("tensorflow.python.ops.standard_ops")
    if os.environ.get("TF_USE_MODULAR_FILESYSTEM", "0") in ("1", "true"):
        importlib.import_module("tensorflow_io_gcs_filesystem")
    kernel_dir = Path(module.__path__[0]) / "core" / "kernels"
    if kernel_dir.exists():
        load_library.load_library(str(kernel_dir))
    for entry in sorted({entry for entry in sys.path if "site-packages" in entry}):
        plugin_dir = Path(entry) / "tensorflow-plugins"
        if plugin_dir.exists():
            load_library.load_library(str(plugin_dir))
            load_library.load_pluggable_device_library(str(plugin_dir))
    if os.environ.get("TF_PLUGGABLE_DEVICE_LIBRARY_PATH", ""):
        load_library.load_pluggable_device_library(os.environ["TF_PLUGGABLE_DEVICE_LIBRARY_PATH"])


def run_whole_init(module: types.ModuleType) -> None:
    """Run TensorFlow's own ``__init__`` in the module: from then on it is the module a plain import makes."""
    with _lock:
        if module.__dict__.pop("_augbeam_table", None) is None:
            return
        module.__dict__.pop("_augbeam_prelude", None)  # the __init__ does it itself
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(module)
        module.__class__ = types.ModuleType


class _MissingChildFinder(importlib.abc.MetaPathFinder):
    """``import tensorflow.keras``: a child the whole ``__init__`` adds to the package's path, so it runs first."""

    def __init__(self, package_dir: Path) -> None:
        self._package_dir = package_dir

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        parent, _, child = fullname.partition(".")
        if parent != "tensorflow" or not child or "." in child:
            return None
        if (self._package_dir / child).exists() or (self._package_dir / f"{child}.py").exists():
            return None
        module = sys.modules.get("tensorflow")
        if not isinstance(module, _LazyTensorFlow):
            return None
        run_whole_init(module)
        return importlib.machinery.PathFinder.find_spec(fullname, module.__path__)


def resolve_used_by(*packages: str) -> list[str]:
    """Resolve every ``tf.NAME`` spelt by the imported modules of these packages, as a server does before forking.

    Read from the sources of the modules this process has imported, so a name that new code uses is warmed with
    no list to keep, and a name only other code uses (the reader's ``tf.data``) is not. Names outside the import
    table (``tf.keras``) are left to their first use, which runs the whole ``__init__``. Returns the names resolved
    (none where TensorFlow was imported plainly: nothing is left to resolve).
    """
    module = sys.modules.get("tensorflow")
    if not isinstance(module, _LazyTensorFlow):
        return []
    table: dict[str, tuple[str, str]] = module.__dict__.get("_augbeam_table") or {}
    names: set[str] = set()
    for name, imported in list(sys.modules.items()):
        source = getattr(imported, "__file__", None)
        if source and source.endswith(".py") and any(name == p or name.startswith(f"{p}.") for p in packages):
            text = Path(source).read_text(encoding="utf-8")
            if "tf." in text:  # code, not docstrings: ``tf.data`` in the reader's description is not a use
                names.update(
                    node.attr
                    for node in ast.walk(ast.parse(text))
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "tf"
                )
    resolved = sorted(names & set(table))
    for name in resolved:
        getattr(module, name)
    return resolved


def install() -> bool:
    """Make ``import tensorflow`` resolve the public API name by name; True where this process now has it.

    Imports nothing of TensorFlow itself: until a name is used, the module is only its table.
    """
    if "tensorflow" in sys.modules or os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None or spec.loader is None or not spec.submodule_search_locations:
        return False
    init_file = Path(spec.origin)
    table = {
        alias or attribute: (module_name, attribute)
        for module_name, attribute, alias in _IMPORT_LINE.findall(init_file.read_text(encoding="utf-8"))
    }
    if "image" not in table or "function" not in table:  # not the generated __init__ this was written for
        return False
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _LazyTensorFlow
    module.__dict__["_augbeam_table"] = table
    module.__dict__["_augbeam_prelude"] = True
    with _lock:
        if "tensorflow" in sys.modules:
            return False
        # The __init__'s first act, before any TensorFlow module reads it at import time.
        os.environ["TF2_BEHAVIOR"] = "1"
        sys.modules["tensorflow"] = module
        sys.meta_path.insert(0, _MissingChildFinder(init_file.parent))
    return True
