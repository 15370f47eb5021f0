"""Walking a local input folder so that it cannot run away: symbolic links followed at most once, depth bounded.

``os.walk(followlinks=True)`` follows ``ln -s .. cats/up`` into the whole
input again, and again, until paths grow too long: inputs multiply under
the wrong class, and two loops list for hours. Here a link is followed only
when its target is inside the input folder and the walk would not reach it
under its own name (it is in a hidden folder), and only the first time one
class folder's walk reaches it. Every other link becomes a listing error row
(``Refused``), never a silent skip:

- ``SymlinkOutsideRoot``: its target is outside the input folder;
- ``SymlinkLoop``: its target holds the link (``ln -s .. cats/up``), or the
  link leads back to itself;
- ``DuplicateInput``: its target is listed under its own name already, or
  this walk reached it through another link (kept once: not a failure).

A broken link is listed as a file: reading it says it points nowhere. Hard
links are plain files: two names of one file are two inputs, as two copies
are. A folder more than ``MAX_DEPTH`` levels below the input folder is one
``TooDeep`` row, its files not listed.
"""

from __future__ import annotations

import dataclasses
import errno
import os

MAX_DEPTH = 64  # folder levels below the input folder; real datasets use a handful
DUPLICATE = "DuplicateInput"  # kept once: not a failure (listing.DUPLICATE is this)
OUTSIDE = "SymlinkOutsideRoot"
LOOP = "SymlinkLoop"
TOO_DEEP = "TooDeep"


@dataclasses.dataclass(frozen=True)
class Refused:
    """A link or folder the walk did not enter: the listing error row's type and sentence."""

    error_type: str
    message: str


@dataclasses.dataclass(frozen=True)
class Found:
    """One entry of the walk: a file to list (``refused`` None), or a link or folder not entered, and why."""

    path: str
    refused: Refused | None = None


def judge_link(real_root: str, link: str) -> str | Refused | None:
    """The real path to follow ``link`` to, why it is not followed, or None for a broken link (listed as a file)."""
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Refused(LOOP, "a symbolic link that leads back to itself (through other links); remove it")
        return None  # points nowhere (or somewhere unreadable): reading it says which
    target = os.path.realpath(link)
    rel = _inside(real_root, target)
    if rel is None:
        return Refused(
            OUTSIDE,
            f"a symbolic link out of the input folder (to {_shown(target)}); not followed: copy what it "
            "points at into the input folder, or name the files in a listing file (CSV, Parquet, JSONL)",
        )
    holder = os.path.realpath(os.path.dirname(link))
    if _inside(target, holder) is not None:
        where = "the input folder" if rel == "" else repr(_shown(rel))
        return Refused(LOOP, f"a symbolic link to {where}, a folder that holds it; not followed (it would repeat)")
    if not any(part.startswith(".") for part in rel.split(os.sep)):
        return Refused(
            DUPLICATE,
            f"a symbolic link to {_shown(rel)!r}, which is listed under its own name; not followed: listed once",
        )
    return target


def walk(root: str, start: str, max_depth: int = MAX_DEPTH) -> list[Found]:
    """Every file under ``start`` (a folder inside ``root``, or a link to one), and what was refused; by path.

    Names starting with ``.`` are skipped (hidden). Folders are visited in
    sorted order, so which of two links to one target is followed (the first)
    is the same on every run.
    """
    real_root = os.path.realpath(root)
    found: list[Found] = []
    reached: set[str] = set()  # real paths of the folders and files reached through links
    # (path as listed, its real path when reached through a link, else None: the real path is the path itself)
    pending: list[tuple[str, str | None]] = []
    if os.path.islink(start):
        judged = judge_link(real_root, start)
        if isinstance(judged, Refused):
            return [Found(start, judged)]
        if judged is None:
            return [Found(start)]
        reached.add(judged)
        pending.append((start, judged))
    else:
        pending.append((start, None))
    while pending:
        folder, real = pending.pop()
        if _depth(root, folder) > max_depth:
            found.append(Found(folder, _too_deep(max_depth)))
            continue
        dirs: list[tuple[str, str | None]] = []
        for name, is_link, is_dir in _entries(folder):
            path = os.path.join(folder, name)
            inner = None if real is None else os.path.join(real, name)
            if is_link:
                judged = judge_link(real_root, path)
                if judged is None:
                    found.append(Found(path))
                elif isinstance(judged, Refused):
                    found.append(Found(path, judged))
                elif _reached(reached, judged):
                    found.append(Found(path, _again(real_root, judged)))
                else:
                    reached.add(judged)
                    if os.path.isdir(judged):
                        dirs.append((path, judged))
                    else:
                        found.append(Found(path))
            elif inner is not None and inner in reached:  # a folder or file under a link, reached before
                found.append(Found(path, _again(real_root, inner)))
            else:
                if inner is not None:
                    reached.add(inner)
                if is_dir:
                    dirs.append((path, inner))
                else:
                    found.append(Found(path))  # files, and pipes or sockets: reading them says what they are
        pending.extend(reversed(dirs))  # depth first, in sorted order
    found.sort(key=lambda f: f.path)
    return found


def _entries(folder: str) -> list[tuple[str, bool, bool]]:
    """(name, is a link, is a folder) of what ``folder`` holds, hidden names left out, sorted by name.

    Only names and two flags are held (from the directory entry, no ``stat``
    per file): a class folder of a million files costs what its names do.
    An unreadable folder raises: its files must not vanish from the listing.
    """
    with os.scandir(folder) as entries:
        held = [
            (entry.name, entry.is_symlink(), entry.is_dir(follow_symlinks=False))
            for entry in entries
            if not entry.name.startswith(".")
        ]
    held.sort()
    return held


def _reached(reached: set[str], real: str) -> bool:
    """Whether ``real`` or a folder holding it was reached through a link already."""
    path = real
    while True:
        if path in reached:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def _again(real_root: str, real: str) -> Refused:
    rel = _inside(real_root, real) or real
    return Refused(
        DUPLICATE,
        f"reaches {_shown(rel)!r} again through symbolic links (listed once, where first reached); not followed",
    )


def _too_deep(max_depth: int) -> Refused:
    return Refused(
        TOO_DEEP,
        f"a folder more than {max_depth} levels below the input folder; its files are not listed: move them up",
    )


def _depth(root: str, folder: str) -> int:
    rel = os.path.relpath(folder, root)
    return 0 if rel == "." else rel.count(os.sep) + 1


def _inside(folder: str, path: str) -> str | None:
    """``path`` relative to ``folder`` ("" for the folder itself), or None when it is not inside it."""
    if path == folder:
        return ""
    prefix = folder.rstrip(os.sep) + os.sep
    return path[len(prefix) :] if path.startswith(prefix) else None


def _shown(text: str) -> str:
    """A path as a message may hold it: names that are not UTF-8 escaped, long ones shortened."""
    safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return safe if len(safe) <= 160 else safe[:77] + "..." + safe[-80:]
