"""File access through Beam's FileSystems, so local paths and any Beam URL (gs://, s3://...) work.

Writes are atomic: bytes go to a temporary name next to the target, which is
then renamed over it. A retried or duplicated worker writes the same bytes to
the same name, so a rename race is harmless. A write that fails removes its
temporary file and notes the path it was writing on the exception
(``written_path``), so the error a user sees can name it, whatever the
filesystem's own error says.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import uuid
from collections.abc import Collection, Iterable, Iterator
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
    """(path, size) of every file under ``root``, recursively, sorted by path.

    Local symbolic links to folders are listed as entries, not followed: a
    link back up the tree would list forever. (Input folders are walked by
    ``pipeline.job.folder_walk``, which reports such links.)
    """
    if is_local(root):
        found = []

        def fail(error: OSError) -> None:
            raise error  # an unreadable folder must not drop its files silently

        for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
            dirnames.sort()
            links = [name for name in dirnames if os.path.islink(os.path.join(dirpath, name))]
            for name in sorted(filenames + links):
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


WRITING = "augbeam: while writing "  # the note ``writing`` adds to an exception; ``written_path`` reads it back


def written_path(exc: BaseException) -> str | None:
    """The path ``writing`` noted on ``exc`` (the innermost one), if any."""
    for note in reversed(getattr(exc, "__notes__", ())):
        if isinstance(note, str) and note.startswith(WRITING):
            return note[len(WRITING) :]
    return None


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Notes ``path`` on any exception the block raises (once), so its message can name what was written."""
    try:
        yield
    except BaseException as exc:
        if written_path(exc) is None:
            exc.add_note(WRITING + path)
        raise


def open_write(path: str) -> IO[bytes]:
    with writing(path):
        return FileSystems.create(path, compression_type="uncompressed")


def temp_name(path: str) -> str:
    """A unique temporary sibling of ``path``."""
    return f"{path}.tmp-{uuid.uuid4().hex}"


def commit(temp: str, final: str) -> None:
    """Renames a finished temporary file to its final name, replacing any older one."""
    with writing(final):
        if is_local(final):
            os.replace(temp, final)
            return
        if FileSystems.exists(final):
            FileSystems.delete([final])
        FileSystems.rename([temp], [final])


def commit_all(pairs: Iterable[tuple[str, str]]) -> None:
    """Renames each (from, to), replacing any older file; remote ones in one batched call (Beam batches them)."""
    pairs = list(pairs)
    local = [(a, b) for a, b in pairs if is_local(b)]
    remote = [(a, b) for a, b in pairs if not is_local(b)]
    for temp, final in local:
        commit(temp, final)
    if remote:
        with writing(remote[0][1]):
            FileSystems.rename([a for a, _ in remote], [b for _, b in remote])


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[IO[bytes]]:
    """A handle whose bytes take ``path``'s name when the block ends.

    If the block or the write fails (a full disk, a bucket that refuses),
    the temporary file is removed, best effort, and the error notes ``path``:
    nothing half-written stays behind to fill the disk or be mistaken for output.
    """
    temp = temp_name(path)
    try:
        with writing(path):
            with open_write(temp) as handle:
                yield handle
            commit(temp, path)
    except BaseException:
        discard(temp)
        raise


def write_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary name and a rename."""
    with atomic_file(path) as handle:
        handle.write(data)


def discard(path: str) -> None:
    """Deletes a file if it is there; never raises (for clean-up on a path that is already failing)."""
    with contextlib.suppress(Exception):
        if is_local(path):
            os.remove(path)
        elif FileSystems.exists(path):
            FileSystems.delete([path])


def make_dirs(path: str) -> None:
    with writing(path):
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
    with writing(path):
        _clear_dir(path, first, keep)


def _clear_dir(path: str, first: Iterable[str], keep: Collection[str]) -> None:
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
    with writing(path):
        paths = [p for p, _ in list_files(path)]
        if paths:
            FileSystems.delete(paths)


def delete(path: str) -> None:
    """Deletes one file."""
    with writing(path):
        if is_local(path):
            os.remove(path)
        else:
            FileSystems.delete([path])
