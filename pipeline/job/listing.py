"""What to process: a folder of class subfolders, or a CSV / Parquet / JSONL listing.

Folder layout (as Keras' ``image_dataset_from_directory``): ``ROOT/<class>/...``
or ``ROOT/<split>/<class>/...`` with split folders ``train``, ``validation``,
``test``. Labels are the indices of the sorted class names. Hidden files
(names starting with ``.``) are skipped; other files that are not inside a
class folder are reported, not dropped.

Listing files have a ``path`` column, and optional ``label`` (integers, or
class names mapped to sorted indices) and ``split`` columns, and the target
columns ``labels``, ``values`` and ``mask`` (read by ``target_columns``).
Relative paths are resolved against the listing's folder.

Keys are paths relative to the input root, ``/``-separated. A file listed
twice is kept once (deterministically, whatever the row order) and the other
rows are reported. A local folder is walked by ``folder_walk``: a symbolic
link is followed at most once, and only to a hidden place inside the input
folder; every other link, and a folder too deep, is a listing error row.

The driver only opens the source (``open_source``: the top-level folders,
O(classes)); the files are listed by the workers, one ``Unit`` (a class
folder, the loose files of a folder, a listing file or one of its Parquet row
groups) at a time, with the functions here. ``list_inputs`` runs the same
functions in one process, for tools that want the whole listing at hand.
"""

from __future__ import annotations

import dataclasses
import io
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline import fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow
from pipeline.job.folder_walk import DUPLICATE, Refused, judge_link, walk
from pipeline.job.target_columns import (
    COLUMNS,
    Targets,
    is_problem,
    label_names,
    max_label_index,
    parse_labels,
    parse_values,
    values_count,
    values_dim,
)

SPLIT_FOLDERS = ("train", "validation", "test")
LISTING_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
UNLABELED = -1


@dataclasses.dataclass(frozen=True)
class InputItem:
    """One input image: where it is, its key, label and split; its listing targets (None: no such column)."""

    key: str
    path: str
    label: int
    split: str
    labels: tuple[int, ...] | None = None
    values: tuple[float, ...] | None = None
    mask: str | None = None
    annotation: str | None = None  # ``ImageAnnotation.to_json`` of an annotated run's input (``--annotations``)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One piece of listing work for one worker.

    ``kind``: ``tree`` (every file under ``path``, recursively), ``loose``
    (the files directly in ``path``), ``table`` (a listing file), or
    ``row_group`` (row group ``part`` of a Parquet listing, its first row
    numbered ``first_row``), or ``annotations`` (split ``split``'s annotation
    source, ``--annotations``).
    """

    kind: str
    path: str
    part: int = 0
    first_row: int = 0
    split: str = ""


@dataclasses.dataclass(frozen=True)
class Source:
    """What the driver learnt about the input: O(classes), never O(files)."""

    root: str
    kind: str  # folder, csv, parquet, jsonl, annotations (a folder of images and --annotations)
    units: tuple[Unit, ...]
    split_layout: bool | None = None  # folders: ROOT/<split>/<class>/...; None: decided per file (object stores)
    fixed_classes: tuple[str, ...] | None = None

    @property
    def is_table(self) -> bool:
        return self.kind != "folder"

    @property
    def prefix(self) -> str:
        """What a file's path starts with before its key (paths that do are not stored twice: see ``chunks``)."""
        base = self.root
        if self.kind in LISTING_SUFFIXES.values():
            base = os.path.dirname(base) if fsutil.is_local(base) else posixpath.dirname(base)
        return base if base.endswith("/") else base + "/"


@dataclasses.dataclass(frozen=True)
class FolderEntry:
    """A file found in a class folder; its label waits for the class names."""

    key: str
    path: str
    cls: str
    split: str


@dataclasses.dataclass(frozen=True)
class TableRow:
    """One row of a listing file, as read (``label`` raw: int, float, str or None).

    ``labels``, ``values``, ``mask``: the raw cells, None when the listing has no such column
    (an empty cell of a column it has is ``""``).
    """

    row: int
    path: Any
    split: Any
    label: Any
    labels: Any = None
    values: Any = None
    mask: Any = None


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A usable listing row: its resolved file, split and label; duplicates are settled by ``(split, label, row)``."""

    key: str
    path: str
    split: str
    label: int
    row: int
    labels: tuple[int, ...] | None = None
    values: tuple[float, ...] | None = None
    mask: str | None = None


@dataclasses.dataclass
class Listing:
    """The listed inputs, the inputs refused while listing, and the class names (``list_inputs``)."""

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


# --- the driver's part: O(classes) ---------------------------------------------------------------------------------


def open_source(source: str, classes: tuple[str, ...] | None = None) -> Source:
    """The input's kind and its listing units; a bad or empty source is a ``UserError`` before any work."""
    root = fsutil.normalize(source)
    suffix = posixpath.splitext(root)[1].lower()
    if suffix in LISTING_SUFFIXES and not fsutil.is_dir(root):
        if not fsutil.exists(root):
            raise UserError(f"--input {source!r}: listing file does not exist")
        return Source(root, LISTING_SUFFIXES[suffix], (Unit("table", root),), fixed_classes=classes)
    if fsutil.is_dir(root):
        return _open_folder(source, root, classes)
    if fsutil.exists(root):
        raise UserError(
            f"--input {source!r} is a file but not a listing; give a folder of class "
            f"subfolders or a {', '.join(sorted(LISTING_SUFFIXES))} file"
        )
    raise UserError(f"--input {source!r} does not exist; give a folder of class subfolders or a listing file")


def _open_folder(source: str, root: str, classes: tuple[str, ...] | None) -> Source:
    """Local folders: one unit per class folder (and one for loose files), found from the top two levels.

    On an object store, folders are only name prefixes and Beam's filesystems
    cannot list one level without listing everything, so the whole tree is
    one unit, listed by one worker, and the layout is decided per file there.
    """
    if not fsutil.is_local(root):
        return Source(root, "folder", (Unit("tree", root),), None, classes)
    top_dirs, top_files = _visible_entries(root)
    # A link that is not followed is a unit of its own: its worker gives its listing error row.
    real_root = os.path.realpath(root)
    refused = [d for d in top_dirs if _refused_link(real_root, os.path.join(root, d))]
    top_dirs = [d for d in top_dirs if d not in refused]
    used = [d for d in top_dirs if _has_visible_file(os.path.join(root, d))]
    split_tops = sorted(set(used) & set(SPLIT_FOLDERS))
    if split_tops and set(used) - set(split_tops):
        raise UserError(
            f"--input {root!r} mixes split folders ({', '.join(split_tops)}) with class "
            f"folders ({', '.join(sorted(set(used) - set(split_tops)))}); "
            "put every class folder inside a split folder, or use none"
        )
    units = [Unit("loose", root)] if top_files else []
    units += [Unit("tree", os.path.join(root, d)) for d in refused]
    if split_tops:
        for split in split_tops:
            folder = os.path.join(root, split)
            dirs, files = _visible_entries(folder)
            units += [Unit("loose", folder)] if files else []
            units += [Unit("tree", os.path.join(folder, d)) for d in dirs]
    else:
        units += [Unit("tree", os.path.join(root, d)) for d in used]
    if not units:
        raise UserError(f"--input {source!r} lists no files: nothing to do")
    return Source(root, "folder", tuple(units), bool(split_tops), classes)


def _visible_entries(folder: str) -> tuple[list[str], list[str]]:
    """Sorted names of the folders and files directly in ``folder``, hidden ones left out."""
    dirs: list[str] = []
    files: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            (dirs if entry.is_dir() else files).append(entry.name)
    return sorted(dirs), sorted(files)


def _refused_link(real_root: str, path: str) -> bool:
    """A symbolic link the walk will not follow (out of the input folder, a loop, or listed under its own name)."""
    return os.path.islink(path) and isinstance(judge_link(real_root, path), Refused)


def _has_visible_file(folder: str) -> bool:
    """Whether any file under ``folder`` counts; stops at the first one found.

    ``os.scandir`` yields entries as it reads them, so a class folder of a
    million files costs one read of its first entries, not a listing of all
    of them (``os.walk`` lists each folder whole before yielding it). A link
    counts without being followed: its worker lists it, or gives its error row.
    """
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                        continue
                    return True  # a file, or a link
        except OSError:
            continue  # an unreadable folder: the workers that list it report it
    return False


# --- the workers' part: one unit at a time -------------------------------------------------------------------------


def list_folder_unit(source: Source, unit: Unit) -> Iterator[FolderEntry | ErrorRow]:
    """The files of one folder unit, each as an entry or as its listing error."""
    root = source.root
    found: Iterable[tuple[str, Refused | None]]
    if unit.kind == "loose":
        found = ((os.path.join(unit.path, name), None) for name in _visible_entries(unit.path)[1])
    elif fsutil.is_local(unit.path):
        found = ((f.path, f.refused) for f in walk(root, unit.path))
    else:  # an object store: no links, no loops
        found = ((path, None) for path, _size in fsutil.list_files(unit.path))
    for path, refused in found:
        entry = classify_file(root, path, source.split_layout, refused)
        if entry is not None:
            yield entry


def classify_file(
    root: str, path: str, split_layout: bool | None, refused: Refused | None = None
) -> FolderEntry | ErrorRow | None:
    """One file of a folder input: an entry, the reason it cannot be one, or None for a hidden file.

    ``refused``: the walk did not enter this link or folder, and says why (its row's type and sentence).
    """
    rel = path[len(root) :].lstrip("/\\").replace("\\", "/")
    parts = rel.split("/")
    if any(part.startswith(".") for part in parts):
        return None
    if split_layout is None:  # an object store's tree: the layout shows in each path
        if len(parts) >= 2 and parts[0] not in SPLIT_FOLDERS:
            split_layout = False
        else:
            split_layout = len(parts) >= 2 and parts[0] in SPLIT_FOLDERS
    split = parts[0] if split_layout and len(parts) >= 2 else "train"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not valid UTF-8 cannot be a key, nor go in a report as is
        shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return listing_error(shown, split, "BadFileName", "the file name is not valid UTF-8; rename it")
    if refused is not None:
        return listing_error(rel, split, refused.error_type, refused.message)
    depth = 3 if split_layout else 2
    if len(parts) < depth:
        where = f"{split}/<class>/" if split_layout else "<class>/"
        return listing_error(rel, split, "NotInClassFolder", f"file is not inside a class folder ({where})")
    return FolderEntry(rel, path, parts[depth - 2], split)


def class_folder_of(key: str) -> str | None:
    """The class folder a folder input's key lies in (``<class>/...`` or ``<split>/<class>/...``), else None.

    A folder is in the split layout exactly when its used top-level folders
    are split folders, so a key's first name says which layout it has.
    """
    parts = key.split("/")
    depth = 3 if parts[0] in SPLIT_FOLDERS else 2
    return parts[depth - 2] if len(parts) >= depth else None


def label_folder_entry(entry: FolderEntry, classes: tuple[str, ...]) -> InputItem | ErrorRow:
    """The entry with its label, or ``UnknownLabel`` when ``--classes`` does not name its folder."""
    try:
        label = classes.index(entry.cls)
    except ValueError:
        return listing_error(
            entry.key, entry.split, "UnknownLabel", f"class folder {entry.cls!r} is not one of --classes"
        )
    return InputItem(entry.key, entry.path, label, entry.split)


def table_units(source: Source) -> list[Unit]:
    """A Parquet listing splits into its row groups (read in parallel); CSV and JSONL are one unit each.

    Type inference of CSV and JSON depends on the whole file, so they are
    read whole by one worker and their rows spread out after; a million-row
    CSV reads in about a second.
    """
    if source.kind != "parquet":
        return [Unit("table", source.root)]
    import pyarrow.parquet as pq

    with fsutil.open_read(source.root) as handle:
        meta = _parquet_file(handle, source.root).metadata
        units, first = [], 0
        for group in range(meta.num_row_groups):
            units.append(Unit("row_group", source.root, group, first))
            first += meta.row_group(group).num_rows
    del pq
    return units


def read_table_unit(source: Source, unit: Unit, chunk: int = 4096) -> Iterator[list[TableRow]]:
    """The unit's rows, a chunk at a time."""
    if unit.kind == "row_group":
        with fsutil.open_read(source.root) as handle:
            table = _parquet_file(handle, source.root).read_row_group(unit.part)
            yield from chunks(_rows(source.root, table, unit.first_row), chunk)
        return
    table = _read_table(source.root, source.kind)
    yield from chunks(_rows(source.root, table, 0), chunk)


def chunks(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``values`` in lists of ``size`` (the last shorter): what travels between listing stages as one element."""
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parquet_file(handle: Any, path: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(handle)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"--input {path!r}: cannot read as parquet: {exc}") from None


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


def _rows(path: str, table: Any, first_row: int) -> Iterator[TableRow]:
    columns = set(table.column_names)
    if "path" not in columns:
        raise UserError(
            f"--input {path!r} has no 'path' column (columns: {', '.join(table.column_names) or 'none'}); "
            "a listing needs 'path', and may have 'label', 'split', 'labels', 'values' and 'mask'"
        )
    paths = table.column("path").to_pylist()
    splits = table.column("split").to_pylist() if "split" in columns else [None] * len(paths)
    labels = table.column("label").to_pylist() if "label" in columns else [UNLABELED] * len(paths)
    # A target column the listing has: an empty (null) cell becomes "", told apart from a column it lacks (None).
    targets = [
        [("" if cell is None else cell) for cell in table.column(name).to_pylist()]
        if name in columns
        else [None] * len(paths)
        for name in COLUMNS
    ]
    rows = zip(paths, splits, labels, *targets, strict=True)
    for offset, (raw_path, raw_split, raw_label, raw_labels, raw_values, raw_mask) in enumerate(rows):
        # CSV reads an empty cell as "" in a text column: that is a missing label, not a class.
        label = None if isinstance(raw_label, str) and not raw_label.strip() else raw_label
        yield TableRow(first_row + offset, raw_path, raw_split, label, raw_labels, raw_values, raw_mask)


def row_split(row: TableRow) -> str:
    return "train" if row.split in (None, "") else str(row.split)


def class_names_of(row: TableRow) -> Iterator[str]:
    """The class names a row contributes to the sorted class list (string ``label`` and ``labels`` entries)."""
    if isinstance(row.label, str):
        yield row.label
    if row.labels is not None:
        yield from label_names(row.labels)


def row_values_count(row: TableRow) -> int | None:
    """How many ``values`` the row holds, for the listing's common length (None: no values column or cell)."""
    return None if row.values is None else values_count(row.values)


def resolve_row(
    source: Source, row: TableRow, classes: tuple[str, ...], values_dim: int | None = None
) -> Candidate | ErrorRow:
    """A row's file, split, label and targets, or its listing error; a split that is not a name fails the job.

    ``values_dim``: the listing's ``values`` length (``target_columns.values_dim``). A ``mask`` file is
    checked to exist here, on the worker that reads the listing.
    """
    base = os.path.dirname(source.root) if fsutil.is_local(source.root) else posixpath.dirname(source.root)
    split = row_split(row)
    raw_path = row.path
    key = _key_for(base, raw_path) if isinstance(raw_path, str) and raw_path else f"<row {row.row}>"
    if not isinstance(raw_path, str) or not raw_path:
        return listing_error(key, split, "MissingPath", f"row {row.row} has an empty path")
    if not _SPLIT_NAME.match(split):
        raise UserError(
            f"--input {source.root!r} row {row.row}: split {split!r} is not a lowercase name such as "
            "train, validation or test; fix the split column"
        )
    class_index = {name: i for i, name in enumerate(classes)}
    fixed = source.fixed_classes is not None
    label, problem = _label_of(row.label, class_index, fixed)
    if problem:
        return listing_error(key, split, problem[0], f"row {row.row}: {problem[1]}")
    targets = _targets_of(base, row, class_index, fixed, values_dim)
    if not isinstance(targets, Targets):
        return listing_error(key, split, targets[0], f"row {row.row}: {targets[1]}")
    path = _resolve(base, raw_path)
    return Candidate(key, path, split, label, row.row, targets.labels, targets.values, targets.mask)


def _targets_of(
    base: str, row: TableRow, class_index: dict[str, int], fixed: bool, values_dim: int | None
) -> Targets | tuple[str, str]:
    """The row's ``labels``, ``values`` and ``mask``, or the first problem among them."""
    labels = values = None
    mask: str | None = None
    if row.labels is not None:
        parsed_labels = parse_labels(row.labels, class_index, fixed)
        if is_problem(parsed_labels):
            return parsed_labels  # type: ignore[return-value]
        labels = parsed_labels
    if row.values is not None:
        parsed_values = parse_values(row.values, values_dim)
        if is_problem(parsed_values):
            return parsed_values  # type: ignore[return-value]
        values = parsed_values
    if row.mask is not None:
        if not isinstance(row.mask, str) or not row.mask.strip():
            return ("MissingMask", "the mask cell is empty")
        mask = _resolve(base, row.mask.strip())
        if not fsutil.exists(mask):
            return ("MaskNotFound", f"mask file {mask!r} does not exist")
    return Targets(labels, values, mask)  # type: ignore[arg-type]


def settle_key(source: Source, rows: Iterable[Candidate]) -> tuple[InputItem, list[ErrorRow]]:
    """The rows naming one key: the file is kept once, in its first row by (split, label, row); others reported."""
    ordered = sorted(rows, key=lambda r: (r.split, r.label, r.row))
    first = ordered[0]
    if any(r.path != first.path for r in ordered):
        raise UserError(
            f"--input {source.root!r}: different files give the same key {first.key!r}; use paths that differ"
        )
    errors = [
        listing_error(
            dup.key,
            dup.split,
            DUPLICATE,
            f"row {dup.row}: file listed {len(ordered)} times; kept once, "
            f"in split {first.split!r} with label {first.label}",
        )
        for dup in ordered[1:]
    ]
    item = InputItem(first.key, first.path, first.label, first.split, first.labels, first.values, first.mask)
    return item, errors


def table_classes(found: Iterable[str], fixed: tuple[str, ...] | None) -> tuple[str, ...]:
    """``--classes``, else the sorted class names the rows use."""
    return tuple(fixed) if fixed else tuple(sorted(set(found)))


def item_max_label(item: InputItem) -> int:
    """The largest class index an input names (its ``label`` and ``labels``), for ``numbered_classes``."""
    return max(item.label, max_label_index(item.labels))


def numbered_classes(classes: tuple[str, ...], max_label: int) -> tuple[str, ...]:
    """Integer labels without class names get the names ``"0"``, ``"1"``, ... up to the largest label."""
    if not classes and max_label >= 0:
        return tuple(str(i) for i in range(max_label + 1))
    return classes


def check_usable(source: str, usable: int, refused: int, first: ErrorRow | None) -> None:
    """A source with no usable entry is the user's mistake, not a run with every input failed."""
    if usable:
        return
    if not refused or first is None:
        raise UserError(f"--input {source!r} lists no files: nothing to do")
    raise UserError(
        f"--input {source!r}: none of its {refused} entries can be used (first: {first.key}: {first.message})"
    )


# --- all of it in one process --------------------------------------------------------------------------------------


def list_inputs(source: str, classes: tuple[str, ...] | None = None) -> Listing:
    """The whole listing in this process (the job lists on its workers with the same functions)."""
    src = open_source(source, classes)
    errors: list[ErrorRow] = []
    items: list[InputItem] = []
    listed: Counter[str] = Counter()
    if not src.is_table:
        entries: list[FolderEntry] = []
        for unit in src.units:
            for found in list_folder_unit(src, unit):
                listed[found.split] += 1
                (errors if isinstance(found, ErrorRow) else entries).append(found)  # type: ignore[arg-type]
        names = tuple(classes) if classes else tuple(sorted({e.cls for e in entries}))
        for entry in entries:
            labelled = label_folder_entry(entry, names)
            (errors if isinstance(labelled, ErrorRow) else items).append(labelled)  # type: ignore[arg-type]
    else:
        rows = [row for unit in table_units(src) for chunk in read_table_unit(src, unit) for row in chunk]
        names = table_classes((n for r in rows for n in class_names_of(r)), classes)
        dim = values_dim(Counter(n for r in rows if (n := row_values_count(r)) is not None))
        by_key: dict[str, list[Candidate]] = {}
        for row in rows:
            listed[row_split(row)] += 1
            resolved = resolve_row(src, row, names, dim)
            if isinstance(resolved, ErrorRow):
                errors.append(resolved)
            else:
                by_key.setdefault(resolved.key, []).append(resolved)
        for key in sorted(by_key):
            item, dups = settle_key(src, by_key[key])
            items.append(item)
            errors.extend(dups)
        names = numbered_classes(names, max((item_max_label(i) for i in items), default=UNLABELED))
    check_usable(source, len(items), len(errors), errors[0] if errors else None)
    items.sort(key=lambda i: i.key)
    return Listing(src.root, src.kind, items, errors, list(names), listed)


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
