"""The work of one shard: read, decode, augment, encode and write its records.

Only keys cross the shuffle; each shard's worker reads its own source files
(measured: shipping pixels through ``GroupByKey`` cost about two thirds of
local throughput). A key's copies that land in the same shard share one read
and one decode. On a CPU, a key's only copy in the shard (the usual case:
copies scatter across shards) is decoded inside its render call, a group of
such images of any sizes in one TensorFlow call, when its header gives its
size (JPEG, 8-bit PNG): the same bytes as decoding first (tested), at about
four fifths of the CPU per image (measured). Records are sorted by a hash of (key, copy) and written to a
temporary name, then renamed; the shard's index and error rows go to their
own Parquet parts beside it, and a small summary (counts and checksums, no
rows) goes to the work folder last, for finalize and for ``--resume``.

Every outcome is deterministic, so a retried or duplicated shard writes the
same bytes to the same names.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from pipeline import fsutil
from pipeline.format.dali_index import write_dali_index
from pipeline.format.detection_records import encode_png
from pipeline.format.manifest import (
    DaliIndexInfo,
    ErrorRow,
    IndexRow,
    SchemaError,
    ShardInfo,
    ShardSummary,
    errors_name,
    index_name,
    record_order,
    shard_name,
)
from pipeline.format.records import TFRecordWriter, example_parts, framed_length, record_sha256
from pipeline.format.tables import write_table
from pipeline.job import annotated
from pipeline.job.mask_carry import check_mask_size, read_mask
from pipeline.job.options import RECORDS_IN_FLIGHT_PER_BATCH, JobConfig
from pipeline.job.progress_file import ShardProgress
from transforms.augment import RangeError, params_json
from transforms.decode import DecodeError, HeaderInfo, header_info, sniff_format
from transforms.encoding import stored_dtype
from transforms.errors import ConfigError
from transforms.rng import stable_hash64
from transforms.targets.carry import carry_semantic_mask
from transforms.targets.types import Objects
from transforms.window import add_plan, ends_whole, plan_of, plans_windows

if TYPE_CHECKING:
    from pipeline.job.plan import Plan

WORK_DIR = ".augbeam-work"
PROGRESS_DIR = "progress"  # under WORK_DIR: one small JSON per shard for the driver's progress display
SUMMARY_DIR = "summaries"  # under WORK_DIR: one ShardSummary per written shard
SPILL_DIR = "planned"  # under WORK_DIR: on the DirectRunner, the planned records on their way to the shards
# Under WORK_DIR: files a reader could open on their own (the DALI indexes, finalize's side files), kept here until
# the manifest is written, then moved beside the shards, so that no reader takes an unfinished run for a finished one.
STAGED_DIR = "staged"
MASK64 = 2**64 - 1
READ_ATTEMPTS = 3
READ_RETRY_DELAY_S = 0.2  # before the 2nd try; 0.4 before the 3rd: 0.6 s in all for a file that never reads
# OS errors that say "try again later", not "this file is bad": still failing after the tries, the bundle is
# retried by the runner. Any other OS error that every try meets alike (EIO: a bad sector) is the input's.
TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EAGAIN",
        "EINTR",
        "EBUSY",
        "ETIMEDOUT",
        "ESTALE",
        "ENOMEM",
        "ENOBUFS",
        "ENOLCK",
        "ECONNRESET",
        "ECONNABORTED",
        "ECONNREFUSED",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENOTCONN",
        "ECOMM",
        "EREMOTEIO",
    )
    if hasattr(errno, name)
)
# A failure at these stages is the input's (all its copies), not one record's; ``annotation``: an annotated
# image whose annotation does not fit the decoded image (``annotated.image_objects``).
INPUT_STAGES = ("read", "decode", annotated.STAGE)


class PlannedRecord(NamedTuple):
    """What crosses the shuffle: a few short strings and ints per record (and the listing's targets, if any)."""

    order: int
    key: str
    copy: int
    path: str
    label: int
    labels: tuple[int, ...] | None = None
    values: tuple[float, ...] | None = None
    mask: str | None = None
    annotation: str | None = None  # an annotated run: the image's ``ImageAnnotation`` JSON


def summary_path(output: str, split: str, shard: int, num_shards: int) -> str:
    return fsutil.join(output, WORK_DIR, SUMMARY_DIR, f"{split}-{shard:05d}-of-{num_shards:05d}.json")


def work_dir(output: str) -> str:
    """The run's work folder: its plan, the shards' summaries and progress files; gone once the run finishes."""
    return fsutil.join(output, WORK_DIR)


def staged_dir(output: str) -> str:
    """Where files wait for the manifest before they go beside the shards (``finalize.publish``)."""
    return fsutil.join(output, WORK_DIR, STAGED_DIR)


def progress_dir(output: str) -> str:
    """Where the shards' progress files go (``progress_file.ShardProgress``), inside the work folder."""
    return fsutil.join(output, WORK_DIR, PROGRESS_DIR)


@dataclasses.dataclass
class ShardProcessor:
    """Turns one shard's planned records into a shard file and a sidecar."""

    config: JobConfig
    tf_threads: int = 0  # TensorFlow's thread pools in this process (0: its default); see pipeline.runtime.tf_threads

    def setup(self) -> None:
        """Imports and sizes TensorFlow, then builds decoders and renderers (traced on first use)."""
        from pipeline.runtime.tf_threads import configure_tensorflow, usable_cpus
        from transforms.augment import Augmenter, Renderer, device_name
        from transforms.decode import Decoder

        configure_tensorflow(self.tf_threads)

        cfg = self.config
        device_name(cfg.device)  # --device gpu on a worker without one: fail the job here, not each record
        # On a CPU, a key's only copy in a shard is decoded inside its render call (``_plan_encoded``). With a GPU
        # the usual path stays: decoding runs on the CPU and same-size batches go to the GPU together.
        self.decode_in_render = cfg.device == "cpu" or (cfg.device == "auto" and not _gpus())
        # Where TensorFlow has more than one thread, a helper thread makes those calls, so the worker's Python
        # (reading, hashing, building records) overlaps TensorFlow's work instead of leaving cores idle.
        threads = self.tf_threads or usable_cpus()
        self.render_thread = ThreadPoolExecutor(1, "augbeam-render") if self.decode_in_render and threads > 1 else None
        self.decoder = Decoder(cfg.alpha_fill, cfg.max_pixels, cfg.high_bit_depth, cfg.max_image_bytes)
        self._augmenters: dict[str, Any] = {}
        self._renderers: dict[str, Any] = {}
        for kind, ops in (("train", cfg.ops_for("train")), ("eval", cfg.ops_for("validation"))):
            self._augmenters[kind] = Augmenter(ops, cfg.seed)
            self._renderers[kind] = Renderer(
                ops,
                cfg.image_size,
                cfg.resize_mode,
                cfg.preprocessing,
                cfg.encoding,
                cfg.jpeg_quality,
                device=cfg.device,
            )

    def close(self) -> None:
        """Stops the helper thread, if any (the DoFn's teardown)."""
        thread = getattr(self, "render_thread", None)
        if thread is not None:
            thread.shutdown(wait=True)
            self.render_thread = None

    def process(
        self, split: str, shard: int, plan: Plan, planned: list[PlannedRecord], refused: list[ErrorRow]
    ) -> ShardSummary:
        """Writes the shard, its index and error parts and its summary; returns the summary.

        Records are taken in their final order and written as soon as every
        record before them is done, so a worker holds a window of records,
        not the whole shard: memory does not grow with the shard. Images of
        the same size inside the window are rendered in one batch; images
        decoded inside the render call go in groups of ``batch_size``; each
        batch or group holds at most ``--max-image-bytes`` (decoded bytes and
        output images), so memory does not grow with the images either. With
        ``--resume``, a shard whose summary and files are complete is kept.
        """
        if self.config.resume:
            kept = kept_summary(self.config.output, split, shard, plan)
            if kept is not None:
                return kept
        run = _ShardRun(self, split, shard, plan, planned, refused)
        try:
            run.write_records()
        finally:
            self.peak_in_flight = run.peak_in_flight  # records read but not yet written: bounded by the window (tested)
        summary = run.summary()
        run.write_summary(summary)
        return summary

    def _load(self, path: str, source: tuple[bytes, str] | None = None) -> tuple[Any, str] | _Failed:
        """The decoded image and the source's sha256, or why it failed (read or decode); ``source``: already read."""
        if source is None:
            read = self._source(path)
            if isinstance(read, _Failed):
                return read
            source = read
        return self._decode_bytes(*source)

    def _source(self, path: str) -> tuple[bytes, str] | _Failed:
        """The file's bytes and their sha256, or why they could not be read."""
        try:
            data = self._read(path)
        except _InputFailed as exc:
            return _Failed("read", exc.kind, str(exc))
        return data, hashlib.sha256(data).hexdigest()

    def _decode_bytes(self, data: bytes, source_sha: str) -> tuple[Any, str] | _Failed:
        try:
            return self.decoder(data), source_sha
        except DecodeError as exc:
            return _Failed("decode", exc.kind, str(exc))

    def _read(self, path: str) -> bytes:
        """The file's bytes. A missing or unreadable file is this input's error; anything else is transient.

        Transient errors (a flaky network filesystem, a timeout) are retried
        here a few times and then raised, so the runner retries the bundle
        instead of writing the input off as bad data. A read that meets the
        same OS error on every try, one that does not say "try again" (EIO
        from a bad sector), is this input's ``Unreadable``: retrying the
        bundle would only fail the job on one bad file.
        """
        if fsutil.is_local(path):
            try:
                mode = os.stat(path).st_mode
            except OSError:
                mode = None  # missing or a broken link: the read below says which
            if mode is not None and not stat.S_ISREG(mode):
                # a FIFO would block forever, a socket or device never yields an image
                raise _InputFailed("NotAFile", "not a regular file (a pipe, socket, device or folder)")
        failures: list[Exception] = []
        for attempt in range(READ_ATTEMPTS):
            try:
                return fsutil.read_bytes(path)
            except (IsADirectoryError, PermissionError) as exc:
                raise _InputFailed("Unreadable", f"cannot be read: {exc.strerror or exc}") from None
            except Exception as exc:  # Beam wraps OS errors in its own types
                failures.append(exc)
                if fsutil.is_local(path) and os.path.islink(path) and not os.path.exists(path):
                    raise _InputFailed("Unreadable", "a symbolic link to a file that does not exist") from None
                if not fsutil.exists(path):
                    raise _InputFailed("FileNotFound", "the file no longer exists (deleted after listing?)") from None
                if attempt + 1 < READ_ATTEMPTS:
                    time.sleep(READ_RETRY_DELAY_S * (attempt + 1))
        code = _same_errno(failures)
        if code is not None and code not in TRANSIENT_ERRNOS:
            raise _InputFailed(
                "Unreadable",
                f"cannot be read: {os.strerror(code)} ({errno.errorcode.get(code, code)}) on each of "
                f"{READ_ATTEMPTS} tries; a damaged file or disk: copy it again from a good source",
            ) from None
        last = failures[-1]
        raise TransientReadError(f"reading {path!r} failed {READ_ATTEMPTS} times: {last}") from last


class _ShardRun:
    """One call of ``ShardProcessor.process``: the shard's state, and the steps that move it on.

    Records are numbered by their place in the shard (``position``). Each
    ends in ``slots`` (rendered, or None when it failed with an error row)
    and is written by ``write_ready`` once every record before it is done.
    """

    writer: TFRecordWriter  # the open shard's, from ``write_records`` on

    def __init__(
        self,
        processor: ShardProcessor,
        split: str,
        shard: int,
        plan: Plan,
        planned: list[PlannedRecord],
        refused: list[ErrorRow],
    ) -> None:
        cfg = processor.config
        kind = "train" if (split == "train" or cfg.augment_eval) else "eval"
        self.processor = processor
        self.cfg = cfg
        self.plan = plan
        self.split, self.shard, self.num_shards = split, shard, plan.shards[split]
        self.copies = plan.copies[split]
        num_shards = self.num_shards
        self.augmenter, self.renderer = processor._augmenters[kind], processor._renderers[kind]
        self.name = shard_name(split, shard, num_shards)
        self.final = fsutil.join(cfg.output, self.name)
        self.ordered = sorted(planned, key=lambda r: (r.order, r.key, r.copy))
        self.left = Counter(r.key for r in self.ordered)  # copies of each key still to come in this shard
        # Memory (``--max-image-bytes``): the cache, a batch of decoded images and the groups rendering from their
        # files each hold at most the budget, counted as decoded bytes plus each record's rendered output image.
        self.budget = cfg.max_image_bytes
        self.images = _ImageCache(self.budget)
        self.windows = plans_windows(self.renderer.ops)  # a JPEG may be decoded as its crop window only
        self.whole_only: set[str] = set()  # keys whose file is never decoded as a window (not a whole JPEG)
        self.window = RECORDS_IN_FLIGHT_PER_BATCH * cfg.batch_size  # records held: bounded in JobConfig
        self.slots: dict[int, _Rendered | None] = {}
        self.refused = refused  # listing rows routed to this shard
        self.errors: list[ErrorRow] = []  # inputs (copy 0 here) and records that failed here
        self.index: list[IndexRow] = []
        self.offsets: list[tuple[int, int]] = []  # (offset, framed length) per record, for --dali-index
        self.done = 0  # records before this position are written (or failed)
        self.failed_inputs = 0  # inputs whose copy 0 is here and that could not be read or decoded
        self.other_copies_failed = 0  # records of copy >= 1 whose input could not be read or decoded
        self.other_copies_hash = 0
        self.peak_in_flight = 0
        self.progress = ShardProgress(progress_dir(cfg.output), split, shard, len(self.ordered))
        self.batches = _Batcher(cfg.batch_size, self.budget, cfg.rendered_bytes(), self.render_batch)
        self.encoded = _Group(cfg.batch_size, self.budget, self.render_encoded)
        self.running: list[tuple[Callable[[], list[bytes | Exception]], list[_Encoded]]] = []  # on the helper thread
        # Checked masks (and their image's decoded shape) of records not yet rendered, by position.
        self.masks: dict[int, tuple[np.ndarray, tuple[int, ...]]] = {}
        # An annotated run: what its sources declare, and each record's objects at its decoded shape, by position.
        self.run_targets = annotated.plan_targets(plan)
        self.objects: dict[int, tuple[Objects, tuple[int, ...]]] = {}
        self.removed: Counter[str] = Counter()  # objects the rules removed from this shard's records, by reason

    # --- the shard, start to end ---------------------------------------------------------------------------------

    def write_records(self) -> None:
        """Every record, in order, into a temporary file that takes the shard's name once complete."""
        with fsutil.atomic_file(self.final) as handle:  # a failed write leaves no temporary file behind
            self.writer = TFRecordWriter(handle)
            for position, rec in enumerate(self.ordered):
                self.start(position, rec)
                self.advance(position)
            self.flush_in_flight()
            self.write_ready()

    def summary(self) -> ShardSummary:
        """Writes the index and error parts (and the DALI index if asked for); the shard's summary."""
        check_shard_rows(self.split, self.shard, self.num_shards, self.index)
        out, split, shard, n = self.cfg.output, self.split, self.shard, self.num_shards
        # Whatever order the groups finished in: the same shard, the same parts.
        errors = sorted([*self.refused, *self.errors], key=lambda e: e.sort_key)
        index_info = write_table(out, index_name(split, shard, n), self.index, IndexRow)
        errors_info = write_table(out, errors_name(split, shard, n), errors, ErrorRow)
        # The DALI index waits in the work folder: DALI reads a shard with its index and knows no manifest.
        dali = write_dali_index(staged_dir(out), self.name, self.offsets) if self.cfg.dali_index else None
        info = ShardInfo(
            self.name,
            self.writer.records,
            self.writer.bytes,
            self.writer.sha256.hexdigest(),
            index_info,
            errors_info,
            DaliIndexInfo.from_json(dali) if dali is not None else None,
        )
        owned = [e for e in self.errors if e.copy is None]
        owned_hash = sum(stable_hash64(e.key) * (self.copies - 1) for e in owned) & MASK64
        return ShardSummary(
            split=split,
            shard=shard,
            num_shards=n,
            run=self.plan.run,
            info=info,
            planned=len(self.ordered),
            owned_inputs=sum(1 for rec in self.ordered if rec.copy == 0),
            listing_errors_by_reason=dict(sorted(Counter(e.reason for e in self.refused).items())),
            failed_inputs_by_reason=dict(sorted(Counter(e.reason for e in owned).items())),
            failed_records_by_reason=dict(sorted(Counter(e.reason for e in self.errors if e.copy is not None).items())),
            other_copies_failed=self.other_copies_failed,
            other_copies_hash=self.other_copies_hash,
            owned_failed_hash=owned_hash,
            removed_by_reason={r: n for r, n in sorted(self.removed.items()) if n},
        )

    def write_summary(self, summary: ShardSummary) -> None:
        """The final progress numbers, then the summary: the shard's last write.

        Finalize and ``--resume`` trust a shard whose summary exists, so it
        goes after every file it names.
        """
        failed = self.done - self.writer.records
        self.progress.update(self.done, self.writer.records, failed, self.failed_inputs, final=True)
        data = json.dumps(summary.to_json(), sort_keys=True).encode()
        fsutil.write_atomic(summary_path(self.cfg.output, self.split, self.shard, self.num_shards), data)

    # --- one record ----------------------------------------------------------------------------------------------

    def start(self, position: int, rec: PlannedRecord) -> None:
        """Reads the record's image (or reuses it), or plans it for decoding inside its render call.

        A JPEG whose first applied op is a resizing crop gets only its crop window decoded, each copy its own
        (``start_window``): its copies never share a decoded image, so its bytes never depend on how many
        copies a shard holds.
        """
        cached = self.images.get(rec.key)
        source: tuple[bytes, str] | None = None
        # Every copy of a JPEG is planned on its own, even when another copy's decoded image is at hand (that
        # copy's crop was not applied): its bytes must not depend on which copies share the shard.
        if self.windows and rec.key not in self.whole_only and not isinstance(cached, _Failed):
            read = self.start_window(position, rec)
            if read is None:  # planned (or failed): nothing more to do here
                if self.left[rec.key] == 1:
                    self.images.drop(rec.key)
                self.left[rec.key] -= 1
                return
            source = read
        if cached is None and self.left[rec.key] == 1 and self.processor.decode_in_render:
            self.plan_encoded(position, rec, source)
        else:
            loaded = cached or self.images.put(rec.key, self.processor._load(rec.path, source))
            if self.left[rec.key] == 1:
                self.images.drop(rec.key)  # its last copy in this shard
            self.take(position, rec, loaded)
        self.left[rec.key] -= 1

    def start_window(self, position: int, rec: PlannedRecord) -> tuple[bytes, str] | None:
        """Plans a JPEG window decode (``transforms.window``) for the record: None when done, else the bytes read.

        The plan depends only on the sampled crop and the header, never on batching, order or copies.
        """
        read = self.processor._source(rec.path)
        if isinstance(read, _Failed):
            if self.left[rec.key] > 1:
                self.images.put(rec.key, read)  # its other copies here fail the same way, without reading again
            self.take(position, rec, read)
            return None
        data, source_sha = read
        header = None
        try:  # a truncated JPEG is decoded (and fails) whole; the header checks (size, budget) come before decoding
            if sniff_format(data) == "jpeg" and ends_whole(data):
                header = self.header(data)
        except Exception:  # the decoder names the reason
            header = None
        if header is None:
            self.whole_only.add(rec.key)  # never planned: its copies here share one decoded image
            return read
        height, width, orientation = header.shape()
        if not self.take_targets(position, rec, (height, width, 3)):
            return None
        sampled = self.sample(position, rec, (height, width, 3))
        if sampled is None:
            return None
        stored = (width, height) if orientation >= 5 else (height, width)
        sampled = add_plan(self.renderer.ops, sampled, stored, orientation)
        plan = plan_of(sampled)
        if plan is None:  # its first applied op is not the resizing crop
            return read
        cost = header.decoded.window(plan.window[2], plan.window[3]).nbytes + self.cfg.rendered_bytes()
        item = _Encoded(rec, data, (height, width), orientation, sampled, source_sha, position, cost)
        if self.processor.decode_in_render:
            self.encoded.add(item)
        else:
            self.take_window(item)
        return None

    def take_window(self, item: _Encoded) -> None:
        """A planned record decoded here (its window only), to its batch; or its error row.

        A window that cannot be decoded fails this record only (stage ``window``): another copy's window of the
        same file may decode, so it is not the whole input's failure (which all its copies share).
        """
        try:
            image = self.processor.decoder.decode_for(item.data, item.sampled)
        except DecodeError as exc:
            self.fail(item.position, item.rec, "window", exc.kind, f"cannot decode the crop's window: {exc}"[:500])
            return
        self.batches.add(_Pending(item.rec, image, item.sampled, item.source_sha, item.position))

    def advance(self, position: int) -> None:
        """Renders what is pending once the window is full, writes what is ready, and reports progress."""
        if position - self.done >= self.window:
            self.flush_in_flight()
        self.write_ready()
        self.peak_in_flight = max(self.peak_in_flight, position + 1 - self.done)
        self.progress.update(self.done, self.writer.records, self.done - self.writer.records, self.failed_inputs)

    def take(self, position: int, rec: PlannedRecord, loaded: tuple[Any, str] | _Failed) -> None:
        """A decoded image (or why it failed) to its batch, or its error row."""
        if isinstance(loaded, _Failed):
            self.fail(position, rec, loaded.stage, loaded.kind, loaded.message)
            self.failed_inputs += int(rec.copy == 0)
            return
        image, source_sha = loaded
        if not self.take_targets(position, rec, tuple(int(d) for d in image.shape)):
            return
        sampled = self.sample(position, rec, tuple(int(d) for d in image.shape))
        if sampled is not None:
            self.batches.add(_Pending(rec, image, sampled, source_sha, position))

    def plan_encoded(self, position: int, rec: PlannedRecord, source: tuple[bytes, str] | None = None) -> None:
        """A key's only copy in this shard: decoded inside the render call when its header gives the size.

        One TensorFlow call then decodes and renders a group of such images
        of any sizes (measured: a call costs about 0.2-0.4 ms of Python and
        executor set-up, and the decoded pixels no longer cross into Python).
        Other formats, and headers that do not give the size, go the usual way.
        ``source``: the bytes and sha256, when already read.
        """
        read = source or self.processor._source(rec.path)
        if isinstance(read, _Failed):
            self.take(position, rec, read)
            return
        data, source_sha = read
        try:
            header = self.header(data)
        except Exception:  # the decoder names the reason
            header = None
        if header is None:
            self.take(position, rec, self.processor._decode_bytes(data, source_sha))
            return
        height, width, orientation = header.shape()
        if not self.take_targets(position, rec, (height, width, 3)):
            return
        sampled = self.sample(position, rec, (height, width, 3))
        if sampled is not None:
            cost = header.decoded.nbytes + self.cfg.rendered_bytes()
            self.encoded.add(_Encoded(rec, data, (height, width), orientation, sampled, source_sha, position, cost))

    def take_targets(self, position: int, rec: PlannedRecord, shape: tuple[int, ...]) -> bool:
        """The record's listing mask and annotation at its decoded (upright) ``shape``; False with its error row.

        An annotation that does not fit the decoded image is the input's (stage ``annotation``, one row for all
        its copies), as a bad image is.
        """
        if rec.mask is not None and not self.take_mask(position, rec, shape):
            return False
        if rec.annotation is None:
            return True
        assert self.run_targets is not None
        objects = annotated.image_objects(rec.annotation, shape, self.run_targets)
        if not isinstance(objects, Objects):
            self.fail(position, rec, annotated.STAGE, *annotated.refused(objects))
            self.failed_inputs += int(rec.copy == 0)
            self.objects.pop(position, None)
            return False
        self.objects[position] = (objects, tuple(int(d) for d in shape))
        return True

    def take_mask(self, position: int, rec: PlannedRecord, shape: tuple[int, ...]) -> bool:
        """Reads and checks the record's mask against its decoded image's ``shape``; False with its error row.

        A bad mask is the input's (stage ``decode``, one row for all its copies), as a bad image is.
        """
        assert rec.mask is not None
        read = self.processor._source(rec.mask)
        if isinstance(read, _Failed):
            problem: tuple[str, str] | None = (f"Mask{read.kind}", f"mask {rec.mask!r}: {read.message}")
        else:
            mask = read_mask(read[0])
            problem = mask if isinstance(mask, tuple) else check_mask_size(mask, shape)
        if problem is not None:
            self.fail(position, rec, "decode", problem[0], problem[1][:500])
            self.failed_inputs += int(rec.copy == 0)
            return False
        self.masks[position] = (mask, tuple(int(d) for d in shape))  # type: ignore[assignment]
        return True

    def header(self, data: bytes) -> HeaderInfo | None:
        """``decode.header_info`` under this job's limits (raises ``DecodeError`` for what they refuse)."""
        return header_info(data, self.cfg.max_pixels, self.cfg.max_image_bytes)

    def sample(self, position: int, rec: PlannedRecord, shape: tuple[int, ...]) -> list[dict[str, Any]] | None:
        """The record's params, or None with its error row (one record's failure must not end the shard)."""
        try:
            return self.augmenter.sample(rec.key, rec.copy, shape)
        except Exception as exc:
            self.fail(position, rec, "augment", type(exc).__name__, str(exc)[:500])
            return None

    def fail(self, position: int, rec: PlannedRecord, stage: str, error_type: str, message: str) -> None:
        """The record's error row; its slot is done with nothing to write.

        An input that cannot be read or decoded gets one row, with no copy,
        from the shard that holds its copy 0; its other copies are counted
        for finalize's cross-shard check, without rows of their own.
        """
        self.slots[position] = None
        self.masks.pop(position, None)
        self.objects.pop(position, None)
        if stage not in INPUT_STAGES:
            self.errors.append(ErrorRow(rec.key, rec.copy, self.split, stage, error_type, message))
        elif rec.copy == 0:
            self.errors.append(ErrorRow(rec.key, None, self.split, stage, error_type, message))
        else:
            self.other_copies_failed += 1
            self.other_copies_hash = (self.other_copies_hash + stable_hash64(rec.key)) & MASK64

    # --- rendering -----------------------------------------------------------------------------------------------

    def flush_in_flight(self) -> None:
        """Renders every group and batch still pending, so the records they hold can be written."""
        self.encoded.flush()
        self.drain()
        self.batches.flush_all()

    def render_batch(self, items: list[_Pending]) -> None:
        """Renders same-size items in one call; on failure, one by one so only the bad record fails."""
        renderer = self.renderer
        try:
            # One image (the usual case: sizes rarely repeat) is passed as a view, not copied into a stack.
            images = np.asarray(items[0].image)[np.newaxis] if len(items) == 1 else np.stack([it.image for it in items])
            payloads: list[bytes | Exception] = list(renderer.render_checked(images, [it.sampled for it in items]))
        except ConfigError:
            raise  # a setup problem (device, config), not bad data: fail the job
        except Exception:  # find the record that failed
            payloads = []
            for it in items:
                try:
                    payloads.append(renderer.render_checked(it.image[np.newaxis], [it.sampled])[0])
                except ConfigError:
                    raise
                except Exception as exc:
                    payloads.append(exc)
        self.finish([(it.rec, it.sampled, it.source_sha, it.position) for it in items], payloads)

    def render_encoded(self, items: list[_Encoded]) -> None:
        """One call decodes and renders the group; with a helper thread, while the last group is finished."""
        render_thread = self.processor.render_thread
        if render_thread is None:
            self.finish_encoded(lambda: self.call_encoded(items), items)
            return
        in_flight = sum(it.cost for _, running in self.running for it in running)
        if in_flight + sum(it.cost for it in items) > self.budget:
            self.drain()  # two groups rendering at once would hold more than the budget: one after the other
        future = render_thread.submit(self.call_encoded, items)
        self.drain()
        self.running.append((future.result, items))

    def call_encoded(self, items: list[_Encoded]) -> list[bytes | Exception]:
        """The TensorFlow call for a group of encoded images (on the helper thread, if there is one)."""
        return self.renderer.render_encoded(
            [it.data for it in items],
            [it.shape for it in items],
            [it.orientation for it in items],
            [it.sampled for it in items],
            self.cfg.alpha_fill,
        )

    def drain(self) -> None:
        """Finishes the group rendering on the helper thread, if any."""
        while self.running:
            self.finish_encoded(*self.running.pop(0))

    def finish_encoded(self, result: Callable[[], list[bytes | Exception]], items: list[_Encoded]) -> None:
        """``result()`` gives the group's payloads; if the call failed, each goes the usual way."""
        try:
            payloads = result()
        except ConfigError:
            raise
        except Exception:  # a file the header alone could not judge: the usual path names the reason
            for it in items:
                if plan_of(it.sampled) is not None:
                    self.take_window(it)  # the same plan, decoded here
                else:
                    self.take(it.position, it.rec, self.processor._decode_bytes(it.data, it.source_sha))
            return
        self.finish([(it.rec, it.sampled, it.source_sha, it.position) for it in items], payloads)

    def finish(
        self, items: list[tuple[PlannedRecord, list[dict[str, Any]], str, int]], payloads: list[bytes | Exception]
    ) -> None:
        """Each rendered record's Example into its slot; a failed one's error row."""
        cfg = self.cfg
        for (rec, sampled, source_sha, position), payload in zip(items, payloads, strict=True):
            if isinstance(payload, Exception):
                message = str(payload).strip().splitlines()[0][:500] if str(payload).strip() else repr(payload)
                stage = "range" if isinstance(payload, RangeError) else "augment"
                self.fail(position, rec, stage, type(payload).__name__, message)
                continue
            if rec.annotation is not None:
                try:
                    self.slots[position] = self.detection_record(position, rec, sampled, source_sha, payload)
                except ValueError as exc:  # a carry that cannot follow the params: this record's, said in its row
                    self.fail(position, rec, "augment", type(exc).__name__, str(exc)[:500])
                continue
            params = params_json(sampled)
            mask_png = self.carried_mask(position, sampled)
            example = example_parts(
                image=payload,
                shape=(cfg.image_size[0], cfg.image_size[1], 3),
                dtype=stored_dtype(cfg.encoding),
                encoding=cfg.encoding,
                label=rec.label,
                key=rec.key,
                copy=rec.copy,
                params=params,
                source_sha256=source_sha,
                labels=rec.labels,
                values=rec.values,
                mask_png=mask_png,
            )
            self.slots[position] = _Rendered(example, rec, params, source_sha)

    def detection_record(
        self, position: int, rec: PlannedRecord, sampled: list[dict[str, Any]], source_sha: str, payload: bytes
    ) -> _Rendered:
        """An annotated record: its objects carried through its params, the rules' removals counted in its params."""
        assert self.run_targets is not None
        cfg = self.cfg
        objects, shape = self.objects.pop(position)
        carried, removed = annotated.record_targets(
            objects, self.renderer.ops, sampled, shape, cfg, self.run_targets.keypoints
        )
        params = params_json([*sampled, annotated.removed_entry(removed)])
        self.removed.update(removed.counts())
        example = annotated.detection_example(
            payload, cfg, rec.key, rec.copy, params, source_sha, carried, self.run_targets.classes
        )
        return _Rendered((example,), rec, params, source_sha)

    def carried_mask(self, position: int, sampled: list[dict[str, Any]]) -> bytes | None:
        """The record's mask carried to the output as its image was, as PNG bytes; None when it has none."""
        held = self.masks.pop(position, None)
        if held is None:
            return None
        mask, shape = held
        cfg = self.cfg
        size = (cfg.image_size[0], cfg.image_size[1])
        shape3 = (int(shape[0]), int(shape[1]), 3)
        carried = carry_semantic_mask(mask, self.renderer.ops, sampled, shape3, size, cfg.resize_mode)
        return encode_png(carried)

    # --- writing -------------------------------------------------------------------------------------------------

    def write_ready(self) -> None:
        """Writes every record whose predecessors are all done, in the shard's order."""
        while self.done in self.slots:
            item = self.slots.pop(self.done)
            self.done += 1
            if item is not None:
                self.write(item)

    def write(self, item: _Rendered) -> None:
        """One record into the shard, with its index row and (for --dali-index) its offset."""
        example, rec = item.example, item.rec
        row = IndexRow(
            key=rec.key,
            copy=rec.copy,
            split=self.split,
            shard=self.name,
            position=self.writer.records,
            label=rec.label,
            params=item.params,
            record_sha256=record_sha256(example),
            source_sha256=item.source_sha,
        )
        self.offsets.append((self.writer.bytes, framed_length(example)))
        self.writer.write(example)
        self.index.append(row)


def _gpus() -> list[Any]:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def check_shard_rows(split: str, shard: int, num_shards: int, rows: list[IndexRow]) -> None:
    """No (key, copy) twice, each in the shard its hash names: so, with every shard checked, none twice in the split."""
    from pipeline.errors import ReconcileError

    seen: set[tuple[str, int]] = set()
    for row in rows:
        pair = (row.key, row.copy)
        if pair in seen:
            raise ReconcileError(f"{split} shard {shard}: record ({pair[0]!r}, copy {pair[1]}) written twice")
        seen.add(pair)
        if record_order(*pair) % num_shards != shard:
            raise ReconcileError(f"{split} shard {shard}: record ({pair[0]!r}, copy {pair[1]}) is in the wrong shard")


def kept_summary(output: str, split: str, shard: int, plan: Plan) -> ShardSummary | None:
    """``--resume``: the shard's summary when it names this run and every file it names has its bytes, else None."""
    path = summary_path(output, split, shard, plan.shards[split])
    if not fsutil.exists(path):
        return None
    try:
        summary = ShardSummary.from_json(json.loads(fsutil.read_bytes(path)))
    except (ValueError, UnicodeDecodeError, SchemaError):
        return None  # cut short by the crash: the shard is written again
    if summary.run != plan.run:
        return None
    info = summary.info
    files = [(info.file, info.bytes, info.sha256)] + [(t.name, t.bytes, t.sha256) for t in (info.index, info.errors)]
    if not all(_has_bytes(fsutil.join(output, name), size, sha) for name, size, sha in files):
        return None
    dali = info.dali_index
    if dali is not None and not any(  # staged, or already moved by a finalize killed after the manifest
        _has_bytes(fsutil.join(folder, dali.file), dali.bytes, dali.sha256) for folder in (staged_dir(output), output)
    ):
        return None
    return summary


def _has_bytes(path: str, size: int, sha: str) -> bool:
    """The file exists with this size and sha256; read in blocks, so a large shard is never held in memory."""
    if not fsutil.exists(path):
        return False
    digest, seen = hashlib.sha256(), 0
    with fsutil.open_read(path) as handle:
        while block := handle.read(1 << 20):
            seen += len(block)
            if seen > size:
                return False
            digest.update(block)
    return seen == size and digest.hexdigest() == sha


def _same_errno(failures: list[Exception]) -> int | None:
    """The errno every failure has, when they are all OS errors with the same one; else None."""
    codes = {exc.errno if isinstance(exc, OSError) else None for exc in failures}
    code = codes.pop() if len(codes) == 1 else None
    return code if isinstance(code, int) else None


class TransientReadError(OSError):
    """A read that kept failing for a file that exists: raised for the runner to retry the bundle."""


class _Pending(NamedTuple):
    """A record waiting for its batch: the decoded image (shared by a key's copies) and its params."""

    rec: PlannedRecord
    image: Any
    sampled: list[dict[str, Any]]
    source_sha: str
    position: int


class _Rendered(NamedTuple):
    """A rendered record waiting for those before it: its Example's parts and what its index row needs."""

    example: tuple[bytes, ...]
    rec: PlannedRecord
    params: str
    source_sha: str


class _Encoded(NamedTuple):
    """A record whose image is decoded inside its render call: the file's bytes and what its header says."""

    rec: PlannedRecord
    data: bytes
    shape: tuple[int, int]
    orientation: int
    sampled: list[dict[str, Any]]
    source_sha: str
    position: int
    cost: int  # bytes its render call holds for it: what it decodes (whole, or its window) and its output image


class _Group:
    """Collects encoded records and hands them on ``size`` at a time, or before their costs would pass ``budget``.

    A record alone over the budget still goes (alone): the decoder's header check has already refused any image
    whose decoding alone is over it. Whatever is left goes on ``flush``.
    """

    def __init__(self, size: int, budget: int, handle: Callable[[list[_Encoded]], None]) -> None:
        self.size = size
        self.budget = budget
        self.handle = handle
        self.items: list[_Encoded] = []
        self.cost = 0

    def add(self, item: _Encoded) -> None:
        if self.items and self.cost + item.cost > self.budget:
            self.flush()
        self.items.append(item)
        self.cost += item.cost
        if len(self.items) >= self.size:
            self.flush()

    def flush(self) -> None:
        items, self.items, self.cost = self.items, [], 0
        if items:
            self.handle(items)


class _Failed(NamedTuple):
    """Why a key's file could not be used: the stage, a short type and a sentence."""

    stage: str
    kind: str
    message: str


class _ImageCache:
    """Decoded images of keys whose copies in this shard are not all done, within a byte budget.

    A key whose copies are far apart in the shard's order would otherwise pin
    its image; over budget the oldest entries go and are decoded again if
    needed (the same bytes in, the same pixels out).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.entries: dict[str, Any] = {}
        self.bytes = 0

    @staticmethod
    def _size(value: Any) -> int:
        return 0 if isinstance(value, _Failed) else int(np.prod(value[0].shape))  # uint8 [H, W, 3]

    def get(self, key: str) -> Any:
        return self.entries.get(key)

    def put(self, key: str, value: Any) -> Any:
        self.entries[key] = value
        self.bytes += self._size(value)
        while self.bytes > self.budget and len(self.entries) > 1:
            oldest = next(iter(self.entries))
            self.bytes -= self._size(self.entries.pop(oldest))
        return value

    def drop(self, key: str) -> None:
        value = self.entries.pop(key, None)
        if value is not None:
            self.bytes -= self._size(value)


class _Batcher:
    """Groups pending records by image size; flushes a group when it is full, and every group before the batch
    would hold more than ``budget`` bytes (each record: its decoded uint8 image and its ``rendered`` output).

    Output order is fixed later by sorting, and a batch renders each image as it would alone, so when a batch
    is flushed never changes the bytes (tested); the budget bounds what one worker holds.
    """

    def __init__(self, batch_size: int, budget: int, rendered: int, render: Callable[[list[_Pending]], None]) -> None:
        self.batch_size = batch_size
        self.budget = budget
        self.rendered = rendered
        self.render = render
        self.groups: dict[tuple[int, ...], list[_Pending]] = {}
        self.bytes = 0

    def _cost(self, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape)) + self.rendered

    def add(self, item: _Pending) -> None:
        shape = tuple(int(d) for d in item.image.shape)
        cost = self._cost(shape)
        if self.groups and self.bytes + cost > self.budget:
            self.flush_all()
        group = self.groups.setdefault(shape, [])
        group.append(item)
        self.bytes += cost
        if len(group) >= self.batch_size:
            self._flush(shape)

    def _flush(self, shape: tuple[int, ...]) -> None:
        group = self.groups.pop(shape)
        self.bytes -= self._cost(shape) * len(group)
        self.render(group)

    def flush_all(self) -> None:
        for shape in sorted(self.groups):
            self._flush(shape)


class _InputFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
