"""The job's configuration: validated once in the driver, then shipped to workers as plain data.

``JobConfig`` is a frozen dataclass of plain values (the op list as dicts, not
TF objects), so it pickles to any runner's workers and is written resolved to
the manifest. Workers rebuild ops, decoders and traced functions from it in
``DoFn.setup``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

from pipeline.errors import UserError
from transforms.augment import DEVICES, RESIZE_MODES
from transforms.budget import DEFAULT_MAX_IMAGE_BYTES, mib
from transforms.config import DEFAULT_PRESET, load_ops, ops_from_data
from transforms.decode import DEFAULT_MAX_PIXELS
from transforms.encoding import check_encoding, stored_dtype
from transforms.formats import DEPTH_MODES
from transforms.ops import Op
from transforms.ops.base import shown_number
from transforms.preprocess import Preprocessing, get_preprocessing
from transforms.targets.types import TargetRules

TRAIN_SPLIT = "train"
DEFAULT_SHARD_SIZE_MB = 64.0
MAX_RECORDS_PER_SHARD = 512
# A shard is the unit of parallel work: a split with enough records gets at least MIN_SHARDS of them, a
# power of two so that 2, 4, 8 or 16 workers get equal numbers of shards (Beam's FnApiRunner deals them out
# in turn), but never so many that a shard would plan fewer than MIN_RECORDS_PER_SHARD records. Constants,
# never the runner's worker count: the shard count is part of the output's layout and of --resume.
MIN_SHARDS = 16
MIN_RECORDS_PER_SHARD = 8
# More than one input in ten failing usually means a wrong folder, format or option, not a few bad files.
DEFAULT_MAX_ERROR_RATE = 0.1
# Fields ``JobConfig.create`` fills from its ``config`` argument instead of taking them.
_DERIVED_BY_CREATE = ("config_source", "ops")
# Fields that only an annotated run (--annotations) sets: left out of a classification run's resolved config, so
# its manifest and run fingerprint stay what they were before annotations existed.
ANNOTATION_FIELDS = (
    "annotations",
    "annotation_format",
    "yolo_names",
    "min_box_area",
    "min_visibility",
    "min_box_side",
    "erasing_hides_keypoints",
)
_RULES = TargetRules()

# Bounds on the options whose value multiplies a worker's memory, the output's size or its file count. Each is
# far past what a training job needs, and each is checked here, before any work, so a typo (an extra zero, a
# wrong number) fails in one line instead of eating the machine. Why each value:
#
# Output height and width: at most 16384 each, as random_resized_crop's and resize's own sizes.
MAX_IMAGE_SIDE = 1 << 14
# Output pixels per record: at most 4096 x 4096 (16.8 M; a record of 48 MiB as uint8, 192 MiB as float32),
# many times the input of common vision models (224 to 600 a side); 16384 x 16384 would be 768 MiB a record.
MAX_IMAGE_PIXELS = 1 << 24
# A worker augments ``--batch-size`` images at once as float32, with about WORKER_FLOAT_COPIES working copies of
# the batch while the ops run, and holds up to RECORDS_IN_FLIGHT_PER_BATCH x batch finished records waiting for
# their turn in the shard (``shard._ShardRun.window``). Measured in one in-process worker, one image x 16
# copies at 2048 x 2048, standard preset, batch 8: a peak RSS of 1.81 GB against 0.66 GB at 32 x 32, so 1.15 GB
# for what is estimated so at 1.6 GB. The estimate may be at most 4 GiB per worker process: 4096 x 4096 with
# --batch-size 5 (uint8), 3344 x 3344 with the default batch of 8.
WORKER_FLOAT_COPIES = 3
RECORDS_IN_FLIGHT_PER_BATCH = 4
MAX_WORKER_BYTES = 4 << 30
# Images augmented per call, whatever the size (the worker-memory bound above usually binds first).
MAX_BATCH_SIZE = 1024
# Copies of each image: 1000 is far past any augmentation recipe; every copy is a record, so an extra zero
# multiplies the output's records, bytes and time by ten.
MAX_COPIES = 1000
# --num-shards: each shard is 4 files (shard, index and error parts, summary) and a unit of work, written even
# when it holds no record. 100,000 shards hold 51 M records at 512 a shard. Measured on the 15 sample photos
# (two splits): about 6 ms of work per empty shard, so 1,000,000 shards would be 6 M files and hours of work.
MAX_NUM_SHARDS = 100_000
# --shard-size-mb: below 1 MB a shard is mostly its framing and its parts' overhead; above 1 TiB it is one
# shard anyway (at most MAX_RECORDS_PER_SHARD records decide). Finite, so the shard count is a number.
MIN_SHARD_SIZE_MB = 1.0
MAX_SHARD_SIZE_MB = float(1 << 20)
# --max-pixels, the decode budget: at most 2**30 (32768 x 32768, 3 GiB as 8-bit RGB, 12 GiB as float32), 12
# times the default; past it one image alone would exhaust most machines' memory while it is augmented.
MAX_MAX_PIXELS = 1 << 30


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """Everything that decides the output bytes (and nothing that does not)."""

    input: str
    output: str
    model: str = "mobilenet_v2"
    image_size: tuple[int, int] = (224, 224)
    copies: int = 1
    eval_copies: int = 1
    augment_eval: bool = False
    seed: int = 0
    num_shards: int | None = None
    shard_size_mb: float = DEFAULT_SHARD_SIZE_MB
    encoding: str = "uint8"
    jpeg_quality: int = 95
    resize_mode: str = "stretch"
    alpha_fill: int = 255
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    high_bit_depth: str = "scale"
    classes: tuple[str, ...] | None = None
    config_source: str = DEFAULT_PRESET
    ops: tuple[dict[str, Any], ...] = ()
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    device: str = "auto"
    batch_size: int = 8
    dali_index: bool = False
    overwrite: bool = False
    resume: bool = False
    # (split, path) of each --annotations source (COCO .json, VOC or YOLO folder); () for classification.
    annotations: tuple[tuple[str, str], ...] = ()
    annotation_format: str = "auto"
    yolo_names: str | None = None
    min_box_area: float = _RULES.min_area
    min_visibility: float = _RULES.min_visibility
    min_box_side: float = _RULES.min_side
    erasing_hides_keypoints: bool = _RULES.erasing_hides_keypoints

    def __post_init__(self) -> None:
        self.preprocessing  # noqa: B018  # validates --model, --mean and --std
        check_encoding(self.encoding)
        self._check_sizes()
        if self.copies < 1 or self.eval_copies < 1:
            raise UserError("--copies and --eval-copies must be at least 1")
        for option, copies in (("--copies", self.copies), ("--eval-copies", self.eval_copies)):
            if copies > MAX_COPIES:
                raise UserError(
                    f"{option} {shown_number(copies)}: at most {MAX_COPIES} copies of each image (each copy is a "
                    "record: more multiplies the output's size and time); use fewer copies"
                )
        if self.eval_copies > 1 and not self.augment_eval:
            raise UserError(
                f"--eval-copies {self.eval_copies} without --augment-eval would write identical copies; "
                "add --augment-eval or use one copy"
            )
        if not 0 <= self.seed < 2**63:
            raise UserError(f"--seed {shown_number(self.seed)}: use an integer in [0, 2**63)")
        if self.num_shards is not None and self.num_shards < 1:
            raise UserError(f"--num-shards {self.num_shards}: must be at least 1")
        if self.num_shards is not None and self.num_shards > MAX_NUM_SHARDS:
            raise UserError(
                f"--num-shards {shown_number(self.num_shards)}: at most {MAX_NUM_SHARDS} (each shard is 4 files and "
                "a unit of work, written even when empty); leave it out to size shards from the data"
            )
        if not MIN_SHARD_SIZE_MB <= self.shard_size_mb <= MAX_SHARD_SIZE_MB:
            raise UserError(
                f"--shard-size-mb {self.shard_size_mb}: use {MIN_SHARD_SIZE_MB:g} to {MAX_SHARD_SIZE_MB:.0f} "
                "(a smaller shard is mostly overhead; the default is 64)"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality {self.jpeg_quality}: must be in [1, 100]")
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"--resize {self.resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
        if not 0 <= self.alpha_fill <= 255:
            raise UserError(f"--alpha-fill {self.alpha_fill}: must be a grey level in [0, 255]")
        if not 1 <= self.max_pixels <= MAX_MAX_PIXELS:
            raise UserError(
                f"--max-pixels {shown_number(self.max_pixels)}: use 1 to {MAX_MAX_PIXELS} (32768 x 32768; one image "
                "that large takes 12 GiB as float32)"
            )
        if self.max_image_bytes < 1:
            raise UserError(f"--max-image-bytes {self.max_image_bytes}: must be positive")
        if self.rendered_bytes() > self.max_image_bytes:  # every record holds its output image while rendered
            h, w = self.image_size
            raise UserError(
                f"--image-size {h} {w}: each record is rendered as {h}x{w} x 3 float32 = {self.rendered_bytes()} "
                f"bytes ({mib(self.rendered_bytes())}), over --max-image-bytes {self.max_image_bytes} "
                f"({mib(self.max_image_bytes)}); use a smaller --image-size or raise --max-image-bytes"
            )
        if self.device not in DEVICES:
            raise UserError(f"--device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.classes is not None and (
            not self.classes or not all(self.classes) or len(set(self.classes)) != len(self.classes)
        ):
            raise UserError(f"--classes {','.join(self.classes)!r}: give distinct, non-empty class names")
        if self.high_bit_depth not in DEPTH_MODES:
            raise UserError(f"--high-bit-depth {self.high_bit_depth!r}: choose one of {', '.join(DEPTH_MODES)}")
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise UserError(f"--max-error-rate {self.max_error_rate}: use a fraction in [0, 1]")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise UserError(f"--batch-size {shown_number(self.batch_size)}: must be in [1, {MAX_BATCH_SIZE}]")
        self._check_worker_bytes()
        self._check_annotations()
        # Validates the op list, and names the sizes that mean "the job's output size" (random_resized_crop),
        # so the manifest's config replays exactly whatever --image-size a later run is given.
        object.__setattr__(self, "ops", tuple(op.to_config() for op in self.train_ops()))

    def _check_annotations(self) -> None:
        """--annotations and the removal rules: one line naming the option (no file is opened here)."""
        for option, value in (("--min-box-area", self.min_box_area), ("--min-box-side", self.min_box_side)):
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"{option} {value}: use a finite number of pixels, 0 or more")
        if not (math.isfinite(self.min_visibility) and 0.0 <= self.min_visibility <= 1.0):
            raise UserError(f"--min-visibility {self.min_visibility}: use a fraction in [0, 1]")
        if self.annotation_format not in ("auto", "coco", "voc", "yolo"):
            raise UserError(f"--annotation-format {self.annotation_format!r}: choose one of auto, coco, voc, yolo")
        splits = [split for split, _ in self.annotations]
        for split in splits:
            if splits.count(split) > 1:
                raise UserError(f"--annotations: split {split!r} is given twice; give one source per split")
        if not self.annotations:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            changed = [
                f"--{name.replace('_', '-')}" for name in ANNOTATION_FIELDS[1:] if getattr(self, name) != defaults[name]
            ]
            if changed:
                raise UserError(f"{', '.join(changed)} without --annotations: they apply to annotated images only")

    @property
    def rules(self) -> TargetRules:
        """The removal rules objects meet after the ops (``--min-box-area`` ...), recorded in the manifest."""
        return TargetRules(self.min_box_area, self.min_visibility, self.min_box_side, self.erasing_hides_keypoints)

    def _check_sizes(self) -> None:
        """--image-size: each side, then the pixels of one record (``MAX_IMAGE_SIDE``, ``MAX_IMAGE_PIXELS``)."""
        h, w = self.image_size
        shown = f"--image-size {shown_number(h)} {shown_number(w)}"
        if not (1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
            raise UserError(f"{shown}: height and width must be in [1, {MAX_IMAGE_SIDE}]")
        if h * w > MAX_IMAGE_PIXELS:
            raise UserError(
                f"{shown}: {h * w} pixels a record, over the bound of {MAX_IMAGE_PIXELS} (4096 x 4096; a record "
                f"of {h * w * 3 / 2**20:.0f} MiB as uint8); use a smaller --image-size"
            )

    def worker_bytes_estimate(self, batch_size: int | None = None) -> int:
        """What one worker holds at most for a batch at the output size (see ``MAX_WORKER_BYTES``)."""
        h, w = self.image_size
        stored = {"float32": 4, "float16": 2, "uint8": 1}[stored_dtype(self.encoding)]
        per_image = h * w * 3 * (4 * WORKER_FLOAT_COPIES + RECORDS_IN_FLIGHT_PER_BATCH * stored)
        return (self.batch_size if batch_size is None else batch_size) * per_image

    def _check_worker_bytes(self) -> None:
        """Refuses an --image-size and --batch-size whose batches would take more than ``MAX_WORKER_BYTES``."""
        estimate = self.worker_bytes_estimate()
        if estimate <= MAX_WORKER_BYTES:
            return
        fits = MAX_WORKER_BYTES // self.worker_bytes_estimate(1)
        h, w = self.image_size
        raise UserError(
            f"--image-size {h} {w} with --batch-size {self.batch_size} (--encoding {self.encoding}): a worker would "
            f"hold about {estimate / 2**30:.1f} GiB of images ({self.batch_size} augmented at once as float32, up "
            f"to {RECORDS_IN_FLIGHT_PER_BATCH * self.batch_size} finished records), over the bound of "
            f"{MAX_WORKER_BYTES // 2**30} GiB; use --batch-size {fits} or less, or a smaller --image-size"
        )

    @classmethod
    def create(cls, config: str | None = None, **kwargs: Any) -> JobConfig:
        """Builds a config, loading the op list from a preset name or file."""
        source = config or DEFAULT_PRESET
        ops = tuple(op.to_config() for op in load_ops(source, None))  # sizes resolved once --image-size is checked
        return cls(config_source=source, ops=ops, **kwargs)

    @classmethod
    def create_parameters(cls) -> tuple[str, ...]:
        """The names ``create`` takes (its own, then every field it does not derive), so callers map by name."""
        own = [p.name for p in inspect.signature(cls.create).parameters.values() if p.kind is not p.VAR_KEYWORD]
        return (*own, *(f.name for f in dataclasses.fields(cls) if f.name not in _DERIVED_BY_CREATE))

    @property
    def preprocessing(self) -> Preprocessing:
        return get_preprocessing(self.model, self.mean, self.std)

    def train_ops(self) -> tuple[Op, ...]:
        size = (int(self.image_size[0]), int(self.image_size[1]))
        return ops_from_data(list(self.ops), f"--config {self.config_source}", size)

    def ops_for(self, split: str) -> tuple[Op, ...]:
        """Training gets the op list; evaluation splits none unless ``augment_eval``."""
        if split == TRAIN_SPLIT or self.augment_eval:
            return self.train_ops()
        return ()

    def copies_for(self, split: str) -> int:
        return self.copies if split == TRAIN_SPLIT else self.eval_copies

    def rendered_bytes(self) -> int:
        """The output image one record holds while it is rendered (float32 RGB), counted in the memory budget."""
        h, w = self.image_size
        return h * w * 3 * 4

    def record_bytes_estimate(self) -> int:
        """A record's size, for choosing shard counts (JPEG/PNG: a rough compression guess)."""
        h, w = self.image_size
        raw = h * w * 3 * {"float32": 4, "float16": 2, "uint8": 1}[stored_dtype(self.encoding)]
        if self.encoding == "jpeg":
            raw //= 6
        elif self.encoding == "png":
            raw //= 2
        return raw + 600  # the other features and framing

    def shards_for(self, records: int) -> int:
        """Shard count for a split: ``--num-shards``, else from the target size.

        Also at most ``MAX_RECORDS_PER_SHARD`` records per shard, and at least
        ``parallel_shards(records)`` shards, since a shard is the unit of
        parallel work: a small or mid-sized job still spreads over workers.
        It depends only on the listing and the config, never on the runner.
        """
        if self.num_shards is not None:
            return self.num_shards
        # A shard cannot hold less than a record: records bigger than --shard-size-mb get one shard each, not
        # several of which all but one stay empty.
        by_size = min(records, math.ceil(records * self.record_bytes_estimate() / (self.shard_size_mb * 2**20)))
        by_count = math.ceil(records / MAX_RECORDS_PER_SHARD)
        return max(1, by_size, by_count, parallel_shards(records))

    def resolved(self) -> dict[str, Any]:
        """The config as the manifest records it (the output folder is not part of it)."""
        out = dataclasses.asdict(self)
        out.pop("output")
        out.pop("overwrite")
        out.pop("resume")
        out.pop("batch_size")  # batching never changes the bytes
        out.pop("max_error_rate")  # decides whether the run finishes, not what it writes
        out["image_size"] = list(self.image_size)
        for name in ("mean", "std", "classes"):
            out[name] = list(out[name]) if out[name] is not None else None
        out["ops"] = [dict(op) for op in self.ops]
        out["eval_ops"] = "same as train" if self.augment_eval else "none"
        if not self.annotations:  # a classification run's config is what it was before annotations existed
            for name in ANNOTATION_FIELDS:
                out.pop(name)
        else:
            out["annotations"] = [list(pair) for pair in self.annotations]
        return out


def parallel_shards(records: int) -> int:
    """The fewest shards a split of ``records`` gets: the largest power of two up to ``MIN_SHARDS`` that leaves
    each shard ``MIN_RECORDS_PER_SHARD`` records or more (1 for fewer than twice that)."""
    fit = min(MIN_SHARDS, records // MIN_RECORDS_PER_SHARD)
    return 1 << (fit.bit_length() - 1) if fit >= 1 else 1
