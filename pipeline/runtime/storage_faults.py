"""The environment's write faults, as one line naming the path and the fix.

A full disk, a read-only filesystem, a folder this user may not write, a
file where a folder should be, or a bucket that refuses a write is not the
input's fault and not a bug: the job stops, and the user reads one line such
as ``cannot write '/data/out/train-00003-of-00008.tfrecord' (--output
'/data/out'): no space left on the device; free space there or choose another
--output, then rerun with --resume (the finished shards are kept)``.

``describe`` finds such a fault in an exception and its causes: an
``OSError`` by its errno, Beam's ``BeamIOError`` (its per-path details), the
``S3ClientError`` of Beam's S3 filesystem and Google API errors (Beam's GCS
filesystem) by their HTTP status. The path is the one ``fsutil.writing``
noted, else the ``OSError``'s own. ``storage_faults`` turns what it finds into a
``StorageFault``, a ``UserError``: on a worker the DoFns pass it on as a
``WorkerRefusal``, so the driver prints the same line whatever the runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import tempfile
from collections.abc import Iterator

from pipeline import fsutil
from pipeline.errors import UserError, WorkerRefusal

RESUME = "then rerun with --resume (the finished shards are kept)"
AGAIN = "then run again"

# errno -> (what happened, the fix); these are always a write's, wherever the path is.
_ALWAYS = {
    errno.ENOSPC: ("no space left on the device", "free space there or choose another {where}"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space there or raise the quota, or choose another {where}"),
    errno.EROFS: ("the filesystem is read-only", "choose a writable {where} (or remount it read-write)"),
    errno.EFBIG: (
        "the file size limit was hit (ulimit -f, or the filesystem's largest file)",
        "raise the limit or choose another {where}",
    ),
}
# These are a write fault only where augbeam writes (a path ``fsutil.writing`` noted, or the output folder): the
# same errno on an input folder is the input's.
_WHERE_WE_WRITE = {
    errno.EACCES: ("permission denied", "give this user write access there, or choose another {where}"),
    errno.EPERM: ("operation not permitted", "give this user write access there, or choose another {where}"),
    errno.ENOTDIR: ("a file is in the way", "{blocker} is a file, not a folder: choose another {where}"),
    errno.EEXIST: ("a file is in the way", "{blocker} is a file, not a folder: choose another {where}"),
    errno.EISDIR: ("a folder is in the way", "remove that folder, or choose another {where}"),
}


class StorageFault(UserError):
    """The environment refused a write (space, permissions, read-only, a bucket's quota): one line, no traceback."""


@dataclasses.dataclass(frozen=True)
class Fault:
    """What the environment refused: the path written (if known), what happened and what to do."""

    path: str | None
    what: str
    fix: str


def fault_line(fault: Fault, output: str | None, then: str) -> str:
    """The one line: the path, which option or folder it is in, what happened, the fix, and what to run next."""
    where = _where(fault.path, output)
    named = fault.path is None or where == repr(fault.path) or (output is not None and _same(fault.path, output))
    shown = where if named else f"{fault.path!r} ({where})"
    return f"cannot write {shown}: {fault.what}; {fault.fix.replace('{where}', _option(where))}, {then}"


def as_storage_fault(exc: BaseException, output: str | None, then: str = RESUME) -> StorageFault | None:
    """The one-line ``StorageFault`` for ``exc``, or None when it is not the environment refusing a write."""
    fault = describe(exc, output)
    return None if fault is None else StorageFault(fault_line(fault, output, then))


@contextlib.contextmanager
def storage_faults(output: str | None, then: str = RESUME) -> Iterator[None]:
    """Turns an environment's write fault raised in the block into a one-line ``StorageFault``; others pass.

    ``output``: the job's ``--output`` (None where the caller writes only to the temporary folder);
    ``then``: what to run once fixed (``RESUME`` once the run has a plan, else ``AGAIN``).
    """
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        fault = as_storage_fault(exc, output, then)
        if fault is None:
            raise
        raise fault from None


@contextlib.contextmanager
def on_worker(output: str | None, then: str = RESUME) -> Iterator[None]:
    """In a DoFn: a write fault or a ``UserError`` leaves as a ``WorkerRefusal``, so the driver prints its line.

    Whatever the runner, only a worker error's text reaches the driver (``errors.refusal_in`` finds the line).
    """
    try:
        with storage_faults(output, then):
            yield
    except UserError as exc:
        raise WorkerRefusal(str(exc)) from None


def describe(exc: BaseException, output: str | None) -> Fault | None:
    """The write fault in ``exc`` or its causes (Beam wraps them), or None when it is something else."""
    noted = fsutil.written_path(exc)
    for current in _chain(exc):
        noted = noted or fsutil.written_path(current)
        fault = _os_fault(current, noted, output) or _bucket_fault(current, noted)
        if fault is not None:
            return fault
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, Beam's per-path details and a retry's cause, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        details = getattr(current, "exception_details", None)  # BeamIOError: {path or (src, dst): exception}
        if isinstance(details, dict):
            todo.extend(e for e in details.values() if isinstance(e, BaseException))
        for attr in ("__cause__", "__context__", "cause"):  # google.api_core's RetryError keeps its cause
            inner = getattr(current, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)


def _os_fault(exc: BaseException, noted: str | None, output: str | None) -> Fault | None:
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    path = noted or (os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else None)
    if exc.errno in _ALWAYS:
        what, fix = _ALWAYS[exc.errno]
        return Fault(path, what, fix)
    if exc.errno not in _WHERE_WE_WRITE or path is None:
        return None
    if not noted and not _ours(path, output):
        return None  # e.g. an input folder this user may not read: not a write fault
    what, fix = _WHERE_WE_WRITE[exc.errno]
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(path)
        if blocker is None:
            return None
        return Fault(path, what, fix.replace("{blocker}", repr(blocker)))
    return Fault(path, what, fix)


def _bucket_fault(exc: BaseException, noted: str | None) -> Fault | None:
    """An object store's refusal of a write: Beam's S3 client error or a Google API error, by HTTP status and text.

    Only where a write noted its path: the same 403 on reading an input is the input's (or a retried read's).
    """
    status = _http_status(exc)
    if status is None or noted is None:
        return None
    text = str(getattr(exc, "message", None) or exc)
    lowered = " ".join((text, *map(str, getattr(exc, "errors", None) or ()))).lower()  # google.api_core's reasons
    short = " ".join(text.split())[:160]
    if status == 429 or any(word in lowered for word in ("ratelimit", "rate limit", "slowdown", "quota")):
        return Fault(
            noted,
            f"the bucket's quota or request-rate limit was hit ({status}: {short})",
            "wait or ask for a higher quota, or choose another {where}",
        )
    if status in (401, 403):
        return Fault(
            noted,
            f"the bucket refused the write ({status}: {short})",
            "give the job's credentials permission to create and delete objects there "
            "(GCS: roles/storage.objectAdmin; S3: s3:PutObject and s3:DeleteObject), or choose another {where}",
        )
    if status == 404:
        return Fault(noted, f"the bucket does not exist ({status}: {short})", "create it, or choose another {where}")
    if status == 507:
        return Fault(noted, f"the bucket has no space left ({status}: {short})", "free space or choose another {where}")
    return None


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of an object store's error (Beam's ``S3ClientError``, ``google.api_core``'s errors)."""
    for error_type in _bucket_error_types():
        if isinstance(exc, error_type):
            code = getattr(exc, "code", None)
            with contextlib.suppress(TypeError, ValueError):
                return int(code) if code is not None else None
    return None


def _bucket_error_types() -> tuple[type, ...]:
    """The error types of the object-store clients installed here (with Beam's [gcp] or [aws] extras)."""
    found: list[type] = []
    with contextlib.suppress(ImportError):
        from apache_beam.io.aws.clients.s3.messages import S3ClientError

        found.append(S3ClientError)
    with contextlib.suppress(ImportError):
        from google.api_core.exceptions import GoogleAPICallError  # type: ignore[import-not-found,unused-ignore]

        found.append(GoogleAPICallError)
    return tuple(found)


def _ours(path: str, output: str | None) -> bool:
    """Whether ``path`` is in (or above) the output folder; other paths count only when a write noted them."""
    return output is not None and _within(path, output)


def _file_in_the_way(path: str) -> str | None:
    """The nearest of ``path`` and its parents that exists and is not a folder (local paths only)."""
    if not fsutil.is_local(path):
        return None
    current = os.path.abspath(path)
    while True:
        if os.path.lexists(current) and not os.path.isdir(current):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _where(path: str | None, output: str | None) -> str:
    """Which option or folder the path is in: ``--output '...'``, ``the temporary folder '...' (TMPDIR)``."""
    if output is not None and (path is None or _within(path, output)):
        return f"--output {output!r}"
    temp = tempfile.gettempdir()
    if path is not None and _within(path, temp):
        return f"the temporary folder {temp!r} (TMPDIR)"
    return repr(path)


def _option(where: str) -> str:
    """What the fix tells the user to choose instead: the option, TMPDIR, or a path."""
    if where.startswith("--output"):
        return "--output"
    if where.startswith("the temporary folder"):
        return "TMPDIR"
    return "path"


def _same(path: str, other: str) -> bool:
    return fsutil.is_local(path) == fsutil.is_local(other) and fsutil.normalize(path) == fsutil.normalize(other)


def _within(path: str, folder: str) -> bool:
    """``path`` is ``folder``, inside it or one of its parents (a parent that is a file blocks the folder)."""
    if fsutil.is_local(path) != fsutil.is_local(folder):
        return False
    a, b = fsutil.normalize(path).rstrip("/"), fsutil.normalize(folder).rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
