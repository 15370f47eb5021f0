"""What a config file may be, checked while it is read: its size, YAML aliases, nesting and op count.

A config is a few hundred bytes to a few kilobytes of ops written by a person
(the largest preset, ``heavy``, dumps to 1.0 KB of YAML, 2.3 KB of JSON). Each bound below is far past that,
and each stops a file that would otherwise eat the machine before any op is
built: the text is measured before it is parsed, YAML is composed by a
``SafeLoader`` that refuses anchors and aliases (a 456-byte file of nested
aliases expands to 43 million ops, "billion laughs") and nesting, and the
parsed data is walked once, without recursion, for depth and op count (JSON
and data given in Python included). Numbers are checked where the ops read
them (``transforms.ops.base``), so the message names the op and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from transforms.errors import ConfigError

# 64 KiB: 28 times the largest preset, room for about 1,300 one-line ops. YAML is parsed in pure Python
# (256 KiB of ops took 3.5 s here), so a bigger file would be slow to refuse as well as pointless.
MAX_CONFIG_BYTES = 64 * 1024
# Lists and mappings nested at most 32 deep: an op in a one_of is 2 levels below its parent op, so this leaves
# 14 levels of one_of / some_of (the presets use 2), and stops a file of '[[[[...' long before Python's
# recursion limit.
MAX_NESTING = 32
# Ops in a config, nested ones included: each op is a branch of the traced render function and a block of its
# parameter row, so thousands of them make tracing itself the cost. The presets have at most 12.
MAX_OPS = 1000

# YAML 1.2 floats in exponent form without a dot ("1e-3", "2E5"): PyYAML (YAML 1.1) reads them as strings, so a
# user writing ``p: 1e-3`` got "expected a number". Read as numbers here, they meet the op's range checks.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases and nesting deeper than ``MAX_NESTING``."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(
                f"{self.source}: line {line}: YAML anchors and aliases (&name, *name) are not accepted in a config; "
                "write each op out in full"
            )
        if not isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            return super().compose_node(parent, index)
        if self.depth >= MAX_NESTING:
            raise ConfigError(_too_deep(f"{self.source}: line {line}"))
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def read_config_text(path: Path, source: str) -> str:
    """The file's text, refused if it is larger than ``MAX_CONFIG_BYTES``, unreadable or not UTF-8."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)  # never more, even if the file grows
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: the config is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a list of ops "
            "(the presets are under 2.5 KB): is this the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: the config is not UTF-8 text (byte {exc.start}); is this the right file?"
        ) from None


def parse_text(text: str, suffix: str, source: str) -> Any:
    """Parses YAML or JSON text safely; ``check_shape`` follows when the data becomes ops."""
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            loader = _BoundedLoader(text, source)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except ConfigError:
        raise
    except RecursionError:  # JSON nested thousands deep: Python's parser gives up before our walk can count
        raise ConfigError(_too_deep(source)) from None
    except Exception as exc:  # a parse error of the user's file, reported as such
        raise ConfigError(f"{source}: cannot parse: {' '.join(str(exc).split())}") from None
    return data


def check_shape(data: Any, source: str) -> None:
    """Refuses data nested deeper than ``MAX_NESTING`` or holding more than ``MAX_OPS`` ops (no recursion)."""
    ops = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
            ops += "op" in node
        elif isinstance(node, (list, tuple)):
            children = list(node)
        else:
            continue
        if depth > MAX_NESTING:
            raise ConfigError(_too_deep(source))
        if ops > MAX_OPS:
            raise ConfigError(
                f"{source}: more than {MAX_OPS} ops (nested ones included); a config this long is not one a person "
                "wrote: check the file, or split the work into several runs"
            )
        stack.extend((child, depth + 1) for child in children)


def _too_deep(where: str) -> str:
    return f"{where}: lists and mappings nested more than {MAX_NESTING} deep; a config is a list of ops, a few deep"
