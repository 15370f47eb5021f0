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
from transforms.preprocess import Preprocessing, get_preprocessing

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

    def __post_init__(self) -> None:
        self.preprocessing  # noqa: B018  # validates --model, --mean and --std
        check_encoding(self.encoding)
        h, w = self.image_size
        if not (1 <= h <= 16384 and 1 <= w <= 16384):
            raise UserError(f"--image-size {h} {w}: height and width must be in [1, 16384]")
        if self.copies < 1 or self.eval_copies < 1:
            raise UserError("--copies and --eval-copies must be at least 1")
        if self.eval_copies > 1 and not self.augment_eval:
            raise UserError(
                f"--eval-copies {self.eval_copies} without --augment-eval would write identical copies; "
                "add --augment-eval or use one copy"
            )
        if not 0 <= self.seed < 2**63:
            raise UserError(f"--seed {self.seed}: use an integer in [0, 2**63)")
        if self.num_shards is not None and self.num_shards < 1:
            raise UserError(f"--num-shards {self.num_shards}: must be at least 1")
        if not self.shard_size_mb > 0:
            raise UserError(f"--shard-size-mb {self.shard_size_mb}: must be positive")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality {self.jpeg_quality}: must be in [1, 100]")
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"--resize {self.resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
        if not 0 <= self.alpha_fill <= 255:
            raise UserError(f"--alpha-fill {self.alpha_fill}: must be a grey level in [0, 255]")
        if self.max_pixels < 1:
            raise UserError(f"--max-pixels {self.max_pixels}: must be positive")
        if self.max_image_bytes < 1:
            raise UserError(f"--max-image-bytes {self.max_image_bytes}: must be positive")
        if self.rendered_bytes() > self.max_image_bytes:  # every record holds its output image while rendered
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
        if not 1 <= self.batch_size <= 1024:
            raise UserError(f"--batch-size {self.batch_size}: must be in [1, 1024]")
        # Validates the op list, and names the sizes that mean "the job's output size" (random_resized_crop),
        # so the manifest's config replays exactly whatever --image-size a later run is given.
        object.__setattr__(self, "ops", tuple(op.to_config() for op in self.train_ops()))

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
        by_size = math.ceil(records * self.record_bytes_estimate() / (self.shard_size_mb * 2**20))
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
        return out


def parallel_shards(records: int) -> int:
    """The fewest shards a split of ``records`` gets: the largest power of two up to ``MIN_SHARDS`` that leaves
    each shard ``MIN_RECORDS_PER_SHARD`` records or more (1 for fewer than twice that)."""
    fit = min(MIN_SHARDS, records // MIN_RECORDS_PER_SHARD)
    return 1 << (fit.bit_length() - 1) if fit >= 1 else 1
