"""What to process: a folder of class subfolders, or a CSV / Parquet / JSONL listing.

Folder layout (as Keras' ``image_dataset_from_directory``): ``ROOT/<class>/...``
or ``ROOT/<split>/<class>/...`` with split folders ``train``, ``validation``,
``test``. Labels are the indices of the sorted class names. Hidden files
(names starting with ``.``) are skipped; other files that are not inside a
class folder are reported, not dropped.

Listing files have a ``path`` column, and optional ``label`` (integers, or
class names mapped to sorted indices) and ``split`` columns. Relative paths
are resolved against the listing's folder.

Keys are paths relative to the input root, ``/``-separated. A file listed
twice is kept once (deterministically, whatever the row order) and the other
rows are reported.
"""

from __future__ import annotations

import dataclasses
import io
import os
import posixpath
import re
from collections import Counter
from typing import Any

from pipeline import fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow

SPLIT_FOLDERS = ("train", "validation", "test")
LISTING_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
UNLABELED = -1


@dataclasses.dataclass(frozen=True)
class InputItem:
    """One input image: where it is, its key, label and split."""

    key: str
    path: str
    label: int
    split: str


@dataclasses.dataclass
class Listing:
    """The listed inputs, the inputs refused while listing, and the class names."""

    root: str
    kind: str
    items: list[InputItem]
    errors: list[ErrorRow]
    classes: list[str]
    listed: Counter  # rows per split, refused rows included

    def splits(self) -> list[str]:
        return sorted(self.listed)


def listing_error(key: str, split: str, error_type: str, message: str) -> ErrorRow:
    return ErrorRow(key, None, split, "listing", error_type, message)


def list_inputs(source: str, classes: tuple[str, ...] | None = None) -> Listing:
    """Lists ``source``; bad or empty sources are a ``UserError`` before any work starts.

    ``classes`` fixes the class names and their order (labels are indices
    into it, the same across datasets); a label or class folder outside it is
    reported as ``UnknownLabel``. Without it, classes are the sorted names found.
    """
    root = fsutil.normalize(source)
    suffix = posixpath.splitext(root)[1].lower()
    if suffix in LISTING_SUFFIXES and not fsutil.is_dir(root):
        if not fsutil.exists(root):
            raise UserError(f"--input {source!r}: listing file does not exist")
        listing = _list_table(root, LISTING_SUFFIXES[suffix], classes)
    elif fsutil.is_dir(root):
        listing = _list_folder(root, classes)
    elif fsutil.exists(root):
        raise UserError(
            f"--input {source!r} is a file but not a listing; give a folder of class "
            f"subfolders or a {', '.join(sorted(LISTING_SUFFIXES))} file"
        )
    else:
        raise UserError(f"--input {source!r} does not exist; give a folder of class subfolders or a listing file")
    if not listing.items and not listing.errors:
        raise UserError(f"--input {source!r} lists no files: nothing to do")
    if not listing.items:
        first = listing.errors[0]
        raise UserError(
            f"--input {source!r}: none of its {len(listing.errors)} entries can be used "
            f"(first: {first.key}: {first.message})"
        )
    return listing


def _list_folder(root: str, fixed: tuple[str, ...] | None = None) -> Listing:
    files = []
    for path, _size in fsutil.list_files(root):
        rel = path[len(root) :].lstrip("/\\").replace("\\", "/")
        parts = rel.split("/")
        if any(part.startswith(".") for part in parts):
            continue
        files.append((rel, path, parts))
    tops = {parts[0] for _, _, parts in files if len(parts) >= 2}
    split_tops = tops & set(SPLIT_FOLDERS)
    if split_tops and tops - split_tops:
        raise UserError(
            f"--input {root!r} mixes split folders ({', '.join(sorted(split_tops))}) with class "
            f"folders ({', '.join(sorted(tops - split_tops))}); "
            "put every class folder inside a split folder, or use none"
        )
    depth = 3 if split_tops else 2
    items_raw: list[tuple[str, str, str, str]] = []
    errors: list[ErrorRow] = []
    listed: Counter[str] = Counter()
    for rel, path, parts in files:
        split = parts[0] if split_tops and len(parts) >= 2 else "train"
        listed[split] += 1
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # a name that is not valid UTF-8 cannot be a key, nor go in a report as is
            shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            errors.append(listing_error(shown, split, "BadFileName", "the file name is not valid UTF-8; rename it"))
            continue
        if len(parts) < depth:
            where = f"{split}/<class>/" if split_tops else "<class>/"
            errors.append(listing_error(rel, split, "NotInClassFolder", f"file is not inside a class folder ({where})"))
            continue
        items_raw.append((rel, path, parts[depth - 2], split))
    classes = list(fixed) if fixed else sorted({cls for _, _, cls, _ in items_raw})
    index = {name: i for i, name in enumerate(classes)}
    items = []
    for rel, path, cls, split in items_raw:
        if cls not in index:
            errors.append(listing_error(rel, split, "UnknownLabel", f"class folder {cls!r} is not one of --classes"))
            continue
        items.append(InputItem(rel, path, index[cls], split))
    return Listing(root, "folder", items, errors, classes, listed)


def _read_table(path: str, fmt: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    data = fsutil.read_bytes(path)
    try:
        if fmt == "csv":
            return pacsv.read_csv(pa.BufferReader(data))
        if fmt == "parquet":
            return pq.read_table(io.BytesIO(data))
        return pajson.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"--input {path!r}: cannot read as {fmt}: {exc}") from None


def _list_table(path: str, fmt: str, fixed: tuple[str, ...] | None = None) -> Listing:
    table = _read_table(path, fmt)
    columns = set(table.column_names)
    if "path" not in columns:
        raise UserError(
            f"--input {path!r} has no 'path' column (columns: {', '.join(table.column_names) or 'none'}); "
            "a listing needs 'path', and may have 'label' and 'split'"
        )
    base = os.path.dirname(path) if fsutil.is_local(path) else posixpath.dirname(path)
    paths = table.column("path").to_pylist()
    splits = table.column("split").to_pylist() if "split" in columns else [None] * len(paths)
    labels = table.column("label").to_pylist() if "label" in columns else [UNLABELED] * len(paths)
    # CSV reads an empty cell as "" in a text column: that is a missing label, not a class.
    labels = [None if isinstance(v, str) and not v.strip() else v for v in labels]

    classes = list(fixed) if fixed else sorted({v for v in labels if isinstance(v, str)})
    class_index = {name: i for i, name in enumerate(classes)}
    errors: list[ErrorRow] = []
    listed: Counter[str] = Counter()
    candidates: dict[str, list[tuple[str, int, int, str]]] = {}  # path -> (split, label, row, key) per row
    for row, (raw_path, raw_split, raw_label) in enumerate(zip(paths, splits, labels, strict=True)):
        split = "train" if raw_split in (None, "") else str(raw_split)
        key = _key_for(base, raw_path) if isinstance(raw_path, str) and raw_path else f"<row {row}>"
        listed[split] += 1
        if not isinstance(raw_path, str) or not raw_path:
            errors.append(listing_error(key, split, "MissingPath", f"row {row} has an empty path"))
            continue
        if not _SPLIT_NAME.match(split):
            raise UserError(
                f"--input {path!r} row {row}: split {split!r} is not a lowercase name such as "
                "train, validation or test; fix the split column"
            )
        label, problem = _label_of(raw_label, class_index, fixed is not None)
        if problem:
            errors.append(listing_error(key, split, problem[0], f"row {row}: {problem[1]}"))
            continue
        full = _resolve(base, raw_path)
        candidates.setdefault(full, []).append((split, label, row, key))
    items = []
    for full, rows in candidates.items():
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        split, label, _row, key = rows[0]
        items.append(InputItem(key, full, label, split))
        for dup_split, _label, dup_row, dup_key in rows[1:]:
            errors.append(
                listing_error(
                    dup_key,
                    dup_split,
                    "DuplicateInput",
                    f"row {dup_row}: file listed {len(rows)} times; kept once, in split {split!r} with label {label}",
                )
            )
    if not classes and any(i.label >= 0 for i in items):
        classes = [str(i) for i in range(max(i.label for i in items) + 1)]
    items.sort(key=lambda i: i.key)
    keys = Counter(i.key for i in items)
    clashes = [k for k, n in keys.items() if n > 1]
    if clashes:
        raise UserError(f"--input {path!r}: different files give the same key {clashes[0]!r}; use paths that differ")
    return Listing(path, fmt, items, errors, classes, listed)


def _label_of(value: Any, class_index: dict[str, int], fixed: bool = False) -> tuple[int, tuple[str, str] | None]:
    if value is None:
        return 0, ("MissingLabel", "the label is empty")
    if isinstance(value, float) and not value.is_integer():  # NaN and 2.5 alike
        return 0, ("InvalidLabel", f"label {value!r} is not an integer")
    if isinstance(value, str):
        if value not in class_index:
            return 0, ("UnknownLabel", f"label {value!r} is not one of --classes")
        return class_index[value], None
    if fixed and isinstance(value, (int, float)) and int(value) >= len(class_index):
        return 0, ("UnknownLabel", f"label {value!r} is past the {len(class_index)} classes of --classes")
    if isinstance(value, float) and not value.is_integer():
        return 0, ("InvalidLabel", f"label {value!r} is not an integer")
    if int(value) < UNLABELED:
        return 0, ("InvalidLabel", f"label {value!r} is negative")
    return int(value), None


def _resolve(base: str, raw: str) -> str:
    if "://" in raw:
        return raw
    if fsutil.is_local(base):
        return os.path.normpath(os.path.join(base, raw))
    scheme, rest = base.split("://", 1)  # normpath would turn "gs://b" into "gs:/b"
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, raw))}"


def _key_for(base: str, raw: str) -> str:
    full = _resolve(base, raw)
    prefix = base.rstrip("/") + "/"
    if full.startswith(prefix):
        return full[len(prefix) :].replace("\\", "/")
    return full.replace("\\", "/")
