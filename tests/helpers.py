"""Plain helpers shared by the test modules: the repository's paths, small jobs and their outputs, test images.

Fixtures live in the ``conftest.py`` files (``tests/conftest.py`` for those of several folders); this module has
none, so a test module imports what it uses from here by name. TensorFlow is imported inside the helpers that
need it, so importing this module stays cheap (the op registry needs only NumPy). The example ops at the end
(one configured instance of every registered op, and a broken one) also serve tests/golden/make_golden.py.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.format.manifest import (
    Counts,
    DaliIndexInfo,
    FileInfo,
    ImageInfo,
    InputInfo,
    Manifest,
    ShardInfo,
    SplitInfo,
    TableInfo,
)
from transforms.ops import Op, op_from_config, registered_ops

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"
DATA = Path(__file__).resolve().parent / "data"


# --- the job and what it writes ---------------------------------------------------------------------------------


def run(input_dir: Path, output_dir: Path, beam_args: list[str] | None = None, **kwargs):
    """Runs the job with test-sized defaults; returns the manifest."""
    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job

    # photos_with_bad has 2 bad files of 17, over the default --max-error-rate 0.1.
    params = dict(image_size=(32, 32), copies=3, seed=1, num_shards=3, max_error_rate=0.5)
    params.update(kwargs)
    config = JobConfig.create(input=str(input_dir), output=str(output_dir), **params)
    return run_job(config, beam_args or [])


def cli_args(input_dir, out) -> list[str]:
    """Run A's command line: the same config as ``run``'s defaults."""
    size = ["--image-size", "32", "32"]
    return [
        "run",
        "--input",
        str(input_dir),
        "--output",
        str(out),
        *size,
        "--copies",
        "3",
        "--seed",
        "1",
        "--num-shards",
        "3",
        "--max-error-rate",
        "0.5",
    ]


# The ``clean`` fixture's run (tests/conftest.py): a faulty run with these arguments must give its bytes.
CLEAN_ARGS = dict(copies=2, num_shards=3)


def shard_bytes(output: Path) -> dict[str, bytes]:
    """Every file the run wrote, by name."""
    return {p.name: p.read_bytes() for p in sorted(output.iterdir()) if p.is_file()}


def write_listing(root: Path, rows: list[Path], path: Path) -> Path:
    """A CSV listing (path, label, split) of files under ``root``/<split>/<class>/, paths relative to the listing."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for p in rows:
            rel = p.relative_to(root)
            writer.writerow([str(p.relative_to(path.parent)), rel.parts[1], rel.parts[0]])
    return path


def progress_lines(err: str) -> list[str]:
    """The progress lines of a run's stderr."""
    return [line for line in err.splitlines() if line.startswith("augbeam: ") and " records (" in line]


def all_files(folder: Path) -> dict[str, bytes]:
    """Every file under the folder (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- processes, through /proc (Linux only) -------------------------------------------------------------------------


def process_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in a process group."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if (st := process_stat(pid)) is not None and st[1] == pgid and st[0] != "Z"]


# --- runners' options ------------------------------------------------------------------------------------------

SETUP_FILE_ARG = f"--setup_file={ROOT / 'setup.py'}"
FLINK_CLUSTER = ["--runner=FlinkRunner", "--flink_master=flink-host:8081", "--environment_config=registry/augbeam:1"]
# The end of the error for a path that remote workers cannot reach.
UNREACHABLE_FIX = (
    "use a shared filesystem URL (gs://, s3://, hdfs://...) or a local runner "
    "(or pass --shared-mount if every worker mounts this path)"
)


# --- the report's run --------------------------------------------------------------------------------------------

REPORT_CONFIG = """ops:
  - {op: random_resized_crop, scale: [0.35, 1.0]}
  - {op: horizontal_flip, p: 0.5}
  - {op: rotation, degrees: [-15, 15], p: 0.5}
  - op: some_of
    n: [1, 2]
    ops: [{op: brightness, delta: [-0.15, 0.15]}, {op: saturation, factor: [0.7, 1.3]}]
  - {op: randaugment, num_ops: 1, magnitude: 5}
"""
REPORT_BAD_NAME = "<b>notes & co.jpg"  # an error row whose key must be escaped


def report_run(root: Path, name: str) -> Path:
    """The report's job (random ops, a corrupt input, a text file named .jpg) into ``root / name``."""
    src = root / "photos"
    if not src.exists():
        shutil.copytree(PHOTOS, src)
        shutil.copy(DATA / "truncated_half.jpg", src / "train" / "textures" / "truncated.jpg")
        shutil.copy(DATA / "not_an_image.jpg", src / "train" / "everyday" / REPORT_BAD_NAME)
        (root / "ops.yaml").write_text(REPORT_CONFIG)
    out = root / name
    run(src, out, config=str(root / "ops.yaml"), copies=2, num_shards=2)
    return out


def report_page(out: Path) -> str:
    return (out / "report.html").read_text(encoding="utf-8")


# --- a manifest without a run ----------------------------------------------------------------------------------

MANIFEST_SHARD = ShardInfo(
    "train-00000-of-00001.tfrecord",
    2,
    300,
    "a" * 64,
    TableInfo("index-train-00000-of-00001.parquet", 2, 100, "c" * 64),
    TableInfo("errors-train-00000-of-00001.parquet", 1, 50, "d" * 64),
    DaliIndexInfo("x.idx", 9, "b" * 64),
)


def sample_manifest(side: dict[str, FileInfo] | None = None) -> Manifest:
    """A small complete manifest: one split of one shard (``MANIFEST_SHARD``), side files as given."""
    counts = Counts(3, 1, {"listing": 0, "read": 0, "decode": 1}, 2, 1, 2, 2, 0)
    return Manifest(
        format_version=1,
        producer={"augbeam": "0.1.0"},
        config={"seed": 1, "ops": []},
        input=InputInfo("/in", "folder"),
        classes=("cat", "dog"),
        image=ImageInfo((8, 8, 3), "uint8", "uint8"),
        preprocessing={"name": "mobilenet_v2"},
        features={},
        seeding={},
        sharding="by hash",
        splits={"train": SplitInfo(True, (MANIFEST_SHARD,), counts, {"decode/CorruptImage": 1})},
        side_files=side,
    )


# --- test images ---------------------------------------------------------------------------------------------------


def read_data(name: str) -> bytes:
    """The bytes of a file of tests/data."""
    return (DATA / name).read_bytes()


def decoded_rocket():
    """The small test photo (64 x 96) as the job decodes it: a uint8 tensor [H, W, 3]."""
    from transforms.decode import Decoder

    return Decoder()((DATA / "rocket_small.jpg").read_bytes())


def rocket_image():
    """The small test photo as Pillow reads it, in RGB."""
    from PIL import Image

    return Image.open(DATA / "rocket_small.jpg").convert("RGB")


def color_test_images() -> dict[str, np.ndarray]:
    """Test images (uint8 [H, W, 3]) chosen to reach the colour and tonal ops' edge cases."""
    rng = np.random.default_rng(7)
    photo = np.asarray(rocket_image())
    h, w = photo.shape[:2]
    flat_green = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    flat_green[..., 1] = 77  # one level: equalize keeps it, auto_contrast keeps it
    return {
        "photo": photo,
        "noise": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "low_contrast": rng.integers(90, 131, (h, w, 3), dtype=np.uint8),
        "skewed": np.clip(rng.exponential(20.0, (h, w, 3)), 0, 255).astype(np.uint8),
        "flat_green": flat_green,
        "tiny": rng.integers(0, 256, (3, 5, 3), dtype=np.uint8),  # < 255 pixels: equalize's step is 0
    }


def float_test_image(photo: np.ndarray) -> np.ndarray:
    """The photo with non-integer values, to check ops that do not round."""
    rng = np.random.default_rng(3)
    x = photo.astype(np.float32) + rng.uniform(-0.5, 0.5, photo.shape).astype(np.float32)
    return np.clip(x, 0.0, 255.0)


def to_pil(image: np.ndarray):
    """A uint8 [H, W, 3] array as a Pillow RGB image."""
    from PIL import Image

    return Image.fromarray(image, "RGB")


def as_uint8(out: np.ndarray) -> np.ndarray:
    """Ours as uint8, checking first that the values are whole levels (the exact ops)."""
    assert np.array_equal(out, np.round(out))
    return out.astype(np.uint8)


# --- ops applied and rendered --------------------------------------------------------------------------------------


def apply_checked(op, image: np.ndarray, **params) -> np.ndarray:
    """``op.apply`` on one image (uint8 or float), as a numpy float32 array of the image's shape (checked)."""
    out = op.apply(np.asarray(image, np.float32), params).numpy()
    assert out.dtype == np.float32 and out.shape == image.shape
    return out


def apply_tensor(op, image: np.ndarray, params: dict) -> np.ndarray:
    """``op.apply`` on one image passed as a tensor, as a numpy array."""
    import tensorflow as tf

    return op.apply(tf.constant(image), params).numpy()


def render_sampled(ops, image, sampled):
    """The ops rendered with the given sampled params, stretched to the image's own size, float32 unprocessed."""
    from transforms.augment import Renderer
    from transforms.preprocess import get_preprocessing

    renderer = Renderer(tuple(ops), image.shape[:2], "stretch", get_preprocessing("none"), "float32")
    return np.frombuffer(renderer.render(image, sampled), np.float32).reshape(image.shape)


def sampled_entry(op, applied=True, **params):
    """One op's entry of a sampled list, as ``Augmenter.sample`` records it."""
    return {"op": op.name, "version": op.version, "applied": applied, "params": params}


# The shape layers_of samples for: composites and policies record their children under params["layers"].
COMPOSITE_SHAPE = (120, 160, 3)


def layers_of(op, n=600, shape=COMPOSITE_SHAPE):
    """The recorded children ("layers") of ``op`` for ``n`` keys."""
    from transforms.augment import Augmenter

    aug = Augmenter((op,), seed=7)
    return [aug.sample(f"img{i}", 0, shape)[0]["params"]["layers"] for i in range(n)]


# These two keep their leading underscore: pytest names test cases after them (e.g. ``[_mixed_ops-False-jpeg]``).
def _mixed_ops():
    """Covers every segment kind: batched prefix, per-image run after a crop, resize, batched suffix."""
    from transforms.config import ops_from_data

    return ops_from_data(
        [
            {"op": "horizontal_flip"},
            {"op": "brightness", "p": 0.7},
            {"op": "random_resized_crop", "scale": [0.3, 1.0]},
            {"op": "rotation", "p": 0.6},
            {"op": "resize", "height": 24, "width": 20},
            {"op": "one_of", "ops": [{"op": "gaussian_blur", "p": 1.0}, {"op": "equalize", "p": 1.0}]},
            {"op": "randaugment", "num_ops": 2, "magnitude": 12},
            {"op": "random_erasing", "p": 0.5},
            {"op": "gaussian_noise", "p": 0.5},
        ]
    )


def _crop_then_every_op():
    """A crop, then every op that keeps the size: one per-image run up to the final resize."""
    from transforms.config import ops_from_data
    from transforms.ops import registered_ops

    crop = ops_from_data([{"op": "random_resized_crop", "scale": [0.3, 1.0]}])
    return crop + tuple(example_op(n) for n in sorted(registered_ops()) if not example_op(n).changes_shape)


# ---------------------------------------------------------------- example ops: one per registered op, a broken one

# Ops that cannot be built from defaults alone (composites need children).
CONFIGS = {
    "one_of": {"op": "one_of", "ops": [{"op": "rotation", "p": 1.0}, {"op": "brightness"}], "weights": [1.0, 3.0]},
    "some_of": {
        "op": "some_of",
        "n": [1, 2],
        "ops": [{"op": "contrast"}, {"op": "horizontal_flip", "p": 1.0}, {"op": "translate"}],
    },
}


def example_op(name: str) -> Op:
    """A valid instance of ``name`` with p = 1 where the op has a probability, so it runs."""
    entry = dict(CONFIGS.get(name, {"op": name}))
    entry.setdefault("p", 1.0)
    return op_from_config(entry)


def all_examples() -> list[Op]:
    return [example_op(name) for name in sorted(registered_ops())]


def traced_batch(op: Op, images, rows):
    """``op.apply_batch`` traced (as ``Op.apply`` and the pipeline run it), on float32 [B, H, W, 3]."""
    import tensorflow as tf

    rows = tf.constant(rows, tf.float32)
    fn = tf.function(
        lambda x, r: op.apply_batch(x, op.unpack(r)),
        autograph=False,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec(rows.shape, tf.float32)],
    )
    return fn(tf.constant(images, tf.float32), rows).numpy()


@dataclasses.dataclass(frozen=True)
class Overflow(Op):
    """A broken op for the range guard: adds 300 to some images and does not clip.

    Not registered: a test that names it in a config registers it for itself (others see the registry as shipped).
    """

    name = "test_overflow"
    param_names = ("on",)

    def sample(self, rng: Any, shape: Any) -> dict[str, float]:
        return {"on": float(rng.bernoulli(0.5))}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return images + 300.0 * params["on"][:, None, None, None]
