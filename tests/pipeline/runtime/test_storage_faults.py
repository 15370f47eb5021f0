"""pipeline/runtime/storage_faults.py: the environment's write faults found in real errors, as one line."""

from __future__ import annotations

import errno
import resource
import signal

import pytest

from pipeline import fsutil
from pipeline.runtime.storage_faults import AGAIN, RESUME, StorageFault, as_storage_fault, describe, storage_faults


def full_device_error(path: str) -> OSError:
    """A real ENOSPC (``/dev/full``) from a write ``fsutil.writing`` noted as ``path``'s."""
    with pytest.raises(OSError) as caught, fsutil.writing(path), open("/dev/full", "wb") as handle:
        handle.write(b"records")
        handle.flush()
    assert caught.value.errno == errno.ENOSPC
    return caught.value


def test_a_full_device_names_the_file_the_output_and_the_fix(tmp_path):
    out = str(tmp_path / "out")
    error = full_device_error(f"{out}/train-00001-of-00003.tfrecord")
    fault = as_storage_fault(error, out, RESUME)
    assert isinstance(fault, StorageFault)
    assert str(fault) == (
        f"cannot write '{out}/train-00001-of-00003.tfrecord' (--output {out!r}): no space left on the device; "
        "free space there or choose another --output, then rerun with --resume (the finished shards are kept)"
    )


def test_the_block_raises_one_line_without_the_cause_attached(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(StorageFault) as caught, storage_faults(out, AGAIN):
        raise full_device_error(f"{out}/manifest.json")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert str(caught.value).endswith("then run again")


def test_a_failed_atomic_write_removes_its_temporary_file_and_notes_the_path(tmp_path):
    """A real EFBIG: the file size limit (``ulimit -f``) is hit while the shard's bytes are written."""
    target = str(tmp_path / "train-00000-of-00001.tfrecord")
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old_limit[1]))
    try:
        with pytest.raises(OSError) as caught, fsutil.atomic_file(target) as handle:
            handle.write(b"x" * 8192)
            handle.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert caught.value.errno == errno.EFBIG
    assert fsutil.written_path(caught.value) == target
    assert list(tmp_path.iterdir()) == []  # neither the temporary file nor the target
    line = str(as_storage_fault(caught.value, str(tmp_path)))
    assert line.startswith(f"cannot write {target!r} (--output {str(tmp_path)!r}): the file size limit was hit"), line


def test_a_file_in_the_way_is_named(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    for out in (blocker / "run1" / "out", blocker):
        with pytest.raises(OSError) as caught:
            fsutil.make_dirs(str(out))  # NotADirectoryError under a file, FileExistsError on the file itself
        line = str(as_storage_fault(caught.value, str(out), AGAIN))
        assert f"{str(blocker)!r} is a file, not a folder: choose another --output, then run again" in line, line


def test_an_unreadable_input_folder_is_not_a_write_fault(tmp_path):
    """Permission errors count only where augbeam writes (a noted path, the output), not on the inputs."""
    error = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "photos" / "cats"))
    assert describe(error, str(tmp_path / "out")) is None
    in_output = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out" / ".augbeam-work"))
    assert "permission denied; give this user write access there" in str(
        as_storage_fault(in_output, str(tmp_path / "out"))
    )


def test_beams_batch_errors_are_looked_into(tmp_path):
    """Beam's filesystems raise ``BeamIOError`` with each path's own error; a missing file is not a write fault."""
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    with pytest.raises(BeamIOError) as caught:
        FileSystems.rename([str(tmp_path / "gone.tmp")], [str(tmp_path / "gone")])
    assert describe(caught.value, str(tmp_path)) is None
    out = str(tmp_path / "out")
    wrapped = BeamIOError("Rename operation failed", {("a.tmp", "a"): full_device_error(f"{out}/a")})
    assert "no space left on the device" in str(as_storage_fault(wrapped, out))


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (403, "An error occurred (AccessDenied) when calling the UploadPart operation: Access Denied",
         "the bucket refused the write (403: An error occurred (AccessDenied)"),
        (503, "An error occurred (SlowDown) when calling the UploadPart operation: Please reduce your request rate.",
         "the bucket's quota or request-rate limit was hit (503"),
        (404, "An error occurred (NoSuchBucket) when calling the CreateMultipartUpload operation",
         "the bucket does not exist (404"),
    ],
)  # fmt: skip
def test_s3_refusals_name_the_bucket_path_and_the_fix(status, text, expected):
    """Beam's S3 filesystem raises its client's ``S3ClientError(message, http_status)`` (the real class)."""
    from apache_beam.io.aws.clients.s3.messages import S3ClientError

    out = "s3://bucket/out"
    with pytest.raises(S3ClientError) as caught, fsutil.writing(f"{out}/train-00000-of-00001.tfrecord"):
        raise S3ClientError(text, status)
    line = str(as_storage_fault(caught.value, out))
    assert line.startswith(f"cannot write '{out}/train-00000-of-00001.tfrecord' (--output '{out}'): {expected}"), line
    read = S3ClientError(text, status)  # the same error reading an input: the input's, not a write fault
    assert describe(read, out) is None


def test_paths_outside_the_output_are_named_with_temp_and_otherwise(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    spill = str(tmp_path / "tmp" / "augbeam-run-1-x" / "a.parts")
    line = str(as_storage_fault(full_device_error(spill), None, AGAIN))
    assert line.startswith(f"cannot write {spill!r} (the temporary folder {str(tmp_path / 'tmp')!r} (TMPDIR))"), line
    assert "free space there or choose another TMPDIR, then run again" in line
