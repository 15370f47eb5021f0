"""A listing's target columns: ``labels`` (several classes), ``values`` (regression) and ``mask`` (a PNG).

Each cell is read here, on the worker that reads the listing, into the small
typed value that travels with the input (``Targets``), or into the reason it
cannot be used (``Problem``: the row's listing error). CSV has no lists, so
there ``labels`` and ``values`` are ``;``-separated strings (``cat;dog``,
``0.5;1.25``); Parquet and JSONL give lists (or one scalar).

- ``labels``: class names or class indices. A part made of digits is an
  index (as integer ``label`` cells are); a part that is a number but not a
  whole one is refused; anything else is a class name, one of ``--classes``
  or else of the sorted names the ``label`` and ``labels`` columns use. An
  empty cell is an empty set (an image with no positive class). Stored as
  sorted, distinct indices.
- ``values``: finite floats, the same count on every row: the most common
  count of the listing (ties: the smaller), so one bad row cannot set it.
- ``mask``: a path resolved as ``path`` is; the file must exist (stat on the
  worker). Its pixels are checked when the shard reads it (``mask_carry``).

A listing without one of these columns gets ``None`` for it: its records
keep the bytes they had before these columns existed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

LABELS, VALUES, MASK = "labels", "values", "mask"
COLUMNS = (LABELS, VALUES, MASK)
SEPARATOR = ";"
_INDEX = re.compile(r"^-?[0-9]+$")

Problem = tuple[str, str]  # (error type, message) of a listing error row


@dataclasses.dataclass(frozen=True)
class Targets:
    """One input's targets from the listing; ``None``: the listing has no such column."""

    labels: tuple[int, ...] | None = None
    values: tuple[float, ...] | None = None
    mask: str | None = None


def _parts(raw: Any) -> list[Any] | None:
    """A cell as a list of items: a list as is, a CSV string split on ``;``, a scalar alone; None: not a cell."""
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return list(raw)
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(SEPARATOR)] if raw.strip() else []
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return [raw]
    return None


def label_names(raw: Any) -> Iterator[str]:
    """The class names a ``labels`` cell uses (its parts that are neither indices nor numbers)."""
    for part in _parts(raw) or []:
        if isinstance(part, str) and part and not _INDEX.match(part) and not _is_number(part):
            yield part


def max_label_index(labels: tuple[int, ...] | None) -> int:
    return max(labels, default=-1) if labels else -1


def parse_labels(raw: Any, class_index: Mapping[str, int], fixed: bool) -> tuple[int, ...] | Problem:
    """A ``labels`` cell as sorted, distinct class indices, or its problem (``InvalidLabels``, ``UnknownLabel``)."""
    parts = _parts(raw)
    if parts is None:
        return ("InvalidLabels", f"labels {raw!r} is not a list of class names or indices")
    found: set[int] = set()
    for part in parts:
        if isinstance(part, str) and _INDEX.match(part):
            part = int(part)
        if isinstance(part, bool) or part is None or (isinstance(part, str) and not part):
            return ("InvalidLabels", f"labels {raw!r} has an empty or invalid entry")
        if isinstance(part, float):
            if not part.is_integer():
                return ("InvalidLabels", f"labels {raw!r}: {part!r} is not a whole class index")
            part = int(part)
        if isinstance(part, str):
            if _is_number(part):
                return ("InvalidLabels", f"labels {raw!r}: {part!r} is not a whole class index")
            if part not in class_index:
                return ("UnknownLabel", f"label {part!r} in labels is not one of --classes")
            found.add(class_index[part])
            continue
        if not isinstance(part, int):
            return ("InvalidLabels", f"labels {raw!r} is not a list of class names or indices")
        if part < 0:
            return ("InvalidLabels", f"labels {raw!r}: class index {part} is negative")
        if fixed and part >= len(class_index):
            return ("UnknownLabel", f"labels {raw!r}: index {part} is past the {len(class_index)} classes of --classes")
        found.add(part)
    return tuple(sorted(found))


def values_count(raw: Any) -> int | None:
    """How many values a ``values`` cell holds (None when it cannot be read: it gets its error row later)."""
    parts = _parts(raw)
    return None if not parts else len(parts)


def values_dim(counts: Mapping[int, int]) -> int | None:
    """The listing's values length: the most common count over its rows (ties: the smaller); None: no rows."""
    if not counts:
        return None
    return min(counts, key=lambda n: (-counts[n], n))


def parse_values(raw: Any, dim: int | None) -> tuple[float, ...] | Problem:
    """A ``values`` cell as ``dim`` finite floats, or its problem (``MissingValues``, ``InvalidValues``)."""
    parts = _parts(raw)
    if parts is None:
        return ("InvalidValues", f"values {raw!r} is not a number or a list of numbers")
    if not parts:
        return ("MissingValues", "the values cell is empty")
    out: list[float] = []
    for part in parts:
        try:
            value = float(part) if not isinstance(part, bool) and part is not None else math.nan
        except (TypeError, ValueError):
            return ("InvalidValues", f"values {raw!r}: {part!r} is not a number")
        if not math.isfinite(value):
            return ("InvalidValues", f"values {raw!r}: {part!r} is not finite")
        out.append(value)
    if dim is not None and len(out) != dim:
        return ("InvalidValues", f"values has {len(out)} numbers, the listing's rows have {dim}")
    return tuple(out)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_problem(parsed: tuple[Any, ...]) -> bool:
    """Whether a ``parse_*`` result is a ``Problem`` (error type, message) rather than the parsed values."""
    return len(parsed) == 2 and isinstance(parsed[0], str)
