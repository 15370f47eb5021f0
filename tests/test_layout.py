"""The package layout's import rules, as each subpackage's docstring states them, checked on the source.

A rule broken here is a layering mistake (a reader that would pull in the Beam job, an op that would
import Beam), caught before it lands rather than found by a user's import error.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.helpers import ROOT

FOUNDATION = {"pipeline", "pipeline.errors", "pipeline.fsutil"}
# subpackage -> the pipeline modules/subpackages it may import (besides itself and the foundation)
ALLOWED = {
    "pipeline.format": set(),
    "pipeline.runtime": set(),
    "pipeline.report": {"pipeline.format"},
    "pipeline.annotations": {"pipeline.format"},
    "pipeline.job": {"pipeline.annotations", "pipeline.format", "pipeline.runtime"},
    "pipeline.checks": {"pipeline.annotations", "pipeline.format", "pipeline.job", "pipeline.runtime"},
}


def _imports(path: Path) -> set[str]:
    """Every absolute module name the file imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _owner(name: str) -> str | None:
    """The subpackage (or foundation module) an imported pipeline name belongs to."""
    parts = name.split(".")
    if parts[0] != "pipeline":
        return None
    if len(parts) == 1 or ".".join(parts[:2]) in FOUNDATION:
        return "foundation"
    if (ROOT / "pipeline" / parts[1]).is_dir() or (ROOT / "pipeline" / f"{parts[1]}.py").is_file():
        return ".".join(parts[:2])  # a subpackage, or a top module such as pipeline.cli
    return "foundation"  # a name defined in pipeline/__init__.py (__version__)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_subpackage_imports_only_what_its_docstring_allows(package):
    folder = ROOT / package.replace(".", "/")
    allowed = ALLOWED[package] | {package, "foundation"}
    wrong = []
    for path in sorted(folder.glob("*.py")):
        for name in sorted(_imports(path)):
            owner = _owner(name)
            if owner is not None and owner not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)
    doc = importlib.import_module(package).__doc__
    assert doc and "may import" in doc.lower(), f"{package}/__init__.py must say what may import it"


def test_transforms_import_neither_beam_nor_pipeline():
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "transforms").rglob("*.py"))
        for name in sorted(_imports(path))
        if name.split(".")[0] in ("apache_beam", "pipeline")
    ]
    assert not wrong, "\n".join(wrong)


def test_training_scripts_need_only_augbeam():
    """``import augbeam`` gives the reader and the manifest's types without naming ``pipeline``."""
    import augbeam
    from pipeline.format import reader

    assert augbeam.load is reader.load and augbeam.read_manifest is reader.read_manifest
    assert {"load", "read_manifest", "Manifest", "SplitInfo", "IndexRow", "ErrorRow"} <= set(augbeam.__all__)


def test_no_flat_prefix_modules_left_in_pipeline():
    """Modules live in role subpackages, not under name prefixes at the top of ``pipeline``."""
    top = sorted(p.stem for p in (ROOT / "pipeline").glob("*.py"))
    assert top == ["__init__", "__main__", "cli", "errors", "fsutil"], top
