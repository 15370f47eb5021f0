"""File access through Beam's FileSystems, so local paths and any Beam URL (gs://, s3://...) work.

Writes are atomic: bytes go to a temporary name next to the target, which is
then renamed over it. A retried or duplicated worker writes the same bytes to
the same name, so a rename race is harmless.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from collections.abc import Collection, Iterable
from typing import IO

from apache_beam.io.filesystems import FileSystems


def is_local(path: str) -> bool:
    """True for plain paths (no ``scheme://``)."""
    return "://" not in path


def normalize(path: str) -> str:
    """An absolute local path, or a URL without a trailing slash."""
    if is_local(path):
        return os.path.abspath(os.path.expanduser(path))
    return path.rstrip("/")


def join(base: str, *parts: str) -> str:
    """Joins path parts the way the base's filesystem does."""
    if is_local(base):
        return os.path.join(base, *parts)
    return posixpath.join(base, *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def is_dir(path: str) -> bool:
    """True for a local directory, or a URL prefix that has objects under it."""
    if is_local(path):
        return os.path.isdir(path)
    return bool(list_files(path, limit=1))


def list_files(root: str, limit: int | None = None) -> list[tuple[str, int]]:
    """(path, size) of every file under ``root``, recursively, sorted by path."""
    if is_local(root):
        found = []

        def fail(error: OSError) -> None:
            raise error  # an unreadable folder must not drop its files silently

        for dirpath, dirnames, filenames in os.walk(root, onerror=fail, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    found.append((full, os.path.getsize(full)))
                except OSError:
                    found.append((full, -1))
                if limit and len(found) >= limit:
                    return found
        return sorted(found)
    pattern = posixpath.join(root, "**")
    result = FileSystems.match([pattern], limits=[limit] if limit else None)[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def read_bytes(path: str) -> bytes:
    """The whole file; local paths read directly, so OS errors keep their types (missing, unreadable)."""
    if is_local(path):
        with open(path, "rb") as handle:
            return handle.read()
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read()


def open_read(path: str) -> IO[bytes]:
    """A seekable binary handle (local files directly; Beam's for URLs)."""
    if is_local(path):
        return open(path, "rb")
    return FileSystems.open(path, compression_type="uncompressed")


def open_write(path: str) -> IO[bytes]:
    return FileSystems.create(path, compression_type="uncompressed")


def temp_name(path: str) -> str:
    """A unique temporary sibling of ``path``."""
    return f"{path}.tmp-{uuid.uuid4().hex}"


def commit(temp: str, final: str) -> None:
    """Renames a finished temporary file to its final name, replacing any older one."""
    if is_local(final):
        os.replace(temp, final)
        return
    if FileSystems.exists(final):
        FileSystems.delete([final])
    FileSystems.rename([temp], [final])


def write_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary name and a rename."""
    temp = temp_name(path)
    with open_write(temp) as handle:
        handle.write(data)
    commit(temp, path)


def make_dirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    elif not FileSystems.exists(path):
        FileSystems.mkdirs(path)


def is_empty_dir(path: str, ignore: Collection[str] = ()) -> bool:
    """True when ``path`` does not exist or holds nothing but the top-level names in ``ignore``."""
    if is_local(path):
        return not os.path.exists(path) or (
            os.path.isdir(path) and not [n for n in os.listdir(path) if n not in ignore]
        )
    skip = {join(normalize(path), name) for name in ignore}
    return not [p for p, _ in list_files(path, limit=len(skip) + 1) if p not in skip]


def clear_dir(path: str, first: Iterable[str] = (), keep: Collection[str] = ()) -> None:
    """Deletes everything inside ``path`` but the top-level names in ``keep``; the names in ``first`` go first."""
    for name in first:
        target = join(path, name)
        if exists(target):
            FileSystems.delete([target])
    if is_local(path):
        for name in sorted(os.listdir(path)):
            if name in keep:
                continue
            target = os.path.join(path, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.remove(target)
        return
    skip = {join(normalize(path), name) for name in keep}
    paths = [p for p, _ in list_files(path) if p not in skip]
    if paths:
        FileSystems.delete(paths)


def remove_tree(path: str) -> None:
    """Deletes a folder and what it holds, if it exists."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    paths = [p for p, _ in list_files(path)]
    if paths:
        FileSystems.delete(paths)


def delete(path: str) -> None:
    """Deletes one file."""
    if is_local(path):
        os.remove(path)
    else:
        FileSystems.delete([path])
