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
from pipeline.job.plan import Plan
from transforms.ops import Op, op_from_config, registered_ops

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"
DATA = Path(__file__).resolve().parent / "data"


# --- the job and what it writes ---------------------------------------------------------------------------------


# One in-process worker. The default local mode starts a worker process per core, each importing TensorFlow
# (seconds per job), and a monkeypatch in the test process does not reach them: tests about something else
# than that mode run this one, as a user passing ``-- --direct_num_workers=1`` does.
IN_PROCESS = ["--direct_num_workers=1"]


def in_process(argv: list[str]) -> list[str]:
    """An ``augbeam`` command line with ``IN_PROCESS`` added to its Beam options."""
    return [*argv, *IN_PROCESS] if "--" in argv else [*argv, "--", *IN_PROCESS]


def run(input_dir: Path, output_dir: Path, beam_args: list[str] | None = None, **kwargs):
    """Runs the job with test-sized defaults, one in-process worker unless ``beam_args`` say otherwise."""
    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job

    # photos_with_bad has 2 bad files of 17, over the default --max-error-rate 0.1.
    params = dict(image_size=(32, 32), copies=3, seed=1, num_shards=3, max_error_rate=0.5)
    params.update(kwargs)
    config = JobConfig.create(input=str(input_dir), output=str(output_dir), **params)
    return run_job(config, IN_PROCESS if beam_args is None else beam_args)


def cli_args(input_dir, out) -> list[str]:
    """Run A's command line: the same config as ``run``'s defaults (no Beam options: see ``in_process``)."""
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


def wait_job(proc: Any, timeout: float) -> int:
    """A job started in its own process group: its exit code; past ``timeout`` its whole group is SIGKILLed."""
    import os
    import signal

    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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


def read_index(out: Path) -> list[dict]:
    """Every index row of an output folder (all its parts, in split and shard order), as dicts."""
    import pyarrow.parquet as pq

    return [row for part in sorted(Path(out).glob("index-*.parquet")) for row in pq.read_table(part).to_pylist()]


def read_errors(out: Path) -> list[dict]:
    """Every error row of an output folder (all its parts), as dicts."""
    import pyarrow.parquet as pq

    return [row for part in sorted(Path(out).glob("errors-*.parquet")) for row in pq.read_table(part).to_pylist()]


def report_page(out: Path) -> str:
    return (out / "report.html").read_text(encoding="utf-8")


# --- a plan without a listing --------------------------------------------------------------------------------------


def sample_plan(shards: int = 1, copies: int = 1, split: str = "train") -> Plan:
    """A plan for calling the shard worker directly: one split, its shard and copy counts."""
    return Plan(
        root="/in",
        kind="folder",
        classes=(),
        listed={split: 0},
        inputs={split: 0},
        refused={},
        first_refused=None,
        copies={split: copies},
        shards={split: shards},
        listing="0:0",
        run="test-run",
    )


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
        format_version=2,
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


# --- a format-version-2 folder without a job ---------------------------------------------------------------------

SYNTHETIC_SHAPE = (4, 4, 3)


def write_output(
    out: Path,
    inputs: dict[str, list[str]],
    copies: int = 2,
    num_shards: int = 3,
    failed_inputs: dict[str, str] | None = None,
    failed_records: dict[tuple[str, int], str] | None = None,
    listing_errors: dict[str, str] | None = None,
    add_records: tuple[tuple[str, str, int], ...] = (),
    drop_records: tuple[tuple[str, str, int], ...] = (),
) -> Manifest:
    """A complete output folder written by the format's rules alone (no job, no TensorFlow): for readers' tests.

    ``inputs``: split -> keys (label: the key's first folder, ``cat`` or ``dog``). ``failed_inputs``:
    key -> ``stage/ErrorType`` of a whole input (no records); ``failed_records``: (key, copy) ->
    reason; ``listing_errors``: key -> ``listing/ErrorType`` (in the first split). The counts are
    those of that run; ``add_records`` / ``drop_records`` ((split, key, copy)) then change only the
    written records, so a reader sees a folder whose counts still add up but whose records do not.
    Pixels are a hash of (key, copy): uint8 ``SYNTHETIC_SHAPE``, mobilenet_v2 preprocessing by the reader.
    """
    import hashlib
    import json

    from pipeline.format.manifest import ErrorRow, IndexRow, errors_name, index_name, record_order, shard_name
    from pipeline.format.records import FEATURES, FORMAT_VERSION, TFRecordWriter, example_parts, record_sha256
    from pipeline.format.tables import write_table

    failed_inputs, failed_records = failed_inputs or {}, failed_records or {}
    listing_errors = listing_errors or {}
    out.mkdir(parents=True, exist_ok=True)
    classes = ("cat", "dog")
    splits = {}
    for n, (split, keys) in enumerate(sorted(inputs.items())):
        errors = [
            ErrorRow(key, None, split, *reason.split("/", 1), f"{reason} (synthetic)")
            for key, reason in sorted(failed_inputs.items())
            if key in keys
        ]
        if n == 0:
            errors += [
                ErrorRow(key, None, split, *reason.split("/", 1), "synthetic") for key, reason in listing_errors.items()
            ]
        decoded = [key for key in keys if key not in failed_inputs]
        planned = {(split, key, copy) for key in decoded for copy in range(copies)}
        written = sorted((planned | set(add_records)) - set(drop_records) - {(split, *pair) for pair in failed_records})
        errors += [
            ErrorRow(key, copy, split, *reason.split("/", 1), "synthetic")
            for (key, copy), reason in failed_records.items()
            if key in keys
        ]
        by_shard: dict[int, list[tuple[int, str, int]]] = {shard: [] for shard in range(num_shards)}
        for order, key, copy in sorted((record_order(k, c), k, c) for s, k, c in written if s == split):
            by_shard[order % num_shards].append((order, key, copy))
        shards = []
        for shard, mine in by_shard.items():
            name = shard_name(split, shard, num_shards)
            rows = []
            with open(out / name, "wb") as handle:
                writer = TFRecordWriter(handle)
                for position, (_, key, copy) in enumerate(mine):
                    label = classes.index(key.split("/")[0]) if key.split("/")[0] in classes else 0
                    source = hashlib.sha256(key.encode()).hexdigest()
                    params = json.dumps([{"op": "none", "copy": copy}])
                    image = hashlib.sha256(f"{key}\x00{copy}".encode()).digest() * 2  # 64 bytes > 48
                    parts = example_parts(
                        image=image[: SYNTHETIC_SHAPE[0] * SYNTHETIC_SHAPE[1] * 3],
                        shape=SYNTHETIC_SHAPE,
                        dtype="uint8",
                        encoding="uint8",
                        label=label,
                        key=key,
                        copy=copy,
                        params=params,
                        source_sha256=source,
                    )
                    writer.write(parts)
                    rows.append(IndexRow(key, copy, split, name, position, label, params, record_sha256(parts), source))
            index = write_table(str(out), index_name(split, shard, num_shards), rows, IndexRow)
            routed = [e for e in errors if record_order(e.key, 0 if e.copy is None else e.copy) % num_shards == shard]
            part = write_table(
                str(out), errors_name(split, shard, num_shards), sorted(routed, key=lambda e: e.sort_key), ErrorRow
            )
            shards.append(ShardInfo(name, writer.records, writer.bytes, writer.sha256.hexdigest(), index, part))
        failed = [e for e in errors if e.copy is None]
        counts = Counts(
            listed=len(keys) + (len(listing_errors) if n == 0 else 0),
            failed_inputs=len(failed),
            failed_inputs_by_stage={s: sum(e.stage == s for e in failed) for s in ("listing", "read", "decode")},
            decoded=len(decoded),
            copies=copies,
            expected_records=len(decoded) * copies,
            written=len(planned) - sum(1 for key, _ in failed_records if key in keys),
            failed_records=sum(1 for key, _ in failed_records if key in keys),
        )
        reasons: dict[str, int] = {}
        for e in errors:
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
        splits[split] = SplitInfo(False, tuple(shards), counts, dict(sorted(reasons.items())))
    from transforms.preprocess import get_preprocessing

    preprocessing = dict(get_preprocessing("mobilenet_v2").describe(), applied="by_reader", output_dtype="float32")
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        producer={"augbeam": "0.1.0", "python": "3"},
        config={"seed": 1, "ops": [], "config_source": "none", "copies": copies, "eval_copies": 1, "eval_ops": "none"},
        input=InputInfo(str(out.parent / "in"), "folder"),
        classes=classes,
        image=ImageInfo(SYNTHETIC_SHAPE, "uint8", "uint8"),
        preprocessing=preprocessing,
        features=FEATURES,
        seeding={},
        sharding="by hash",
        splits=splits,
        side_files={},
    )
    (out / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    return manifest


def rewrite_part(out: Path, name: str, rows: list[dict]) -> None:
    """Rewrites an index or error part with ``rows`` and makes the manifest name its new size and checksum.

    What a writer's bug (not a changed file) would leave: the folder's checksums all match.
    """
    import hashlib
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(out / name)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / name)
    data = (out / name).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    for info in manifest["splits"].values():
        for shard in info["shards"]:
            for kind in ("index", "errors"):
                if shard[kind]["name"] == name:
                    shard[kind].update(rows=len(rows), bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


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
            {"op": "random_resized_crop", "scale": [0.3, 1.0], "resize": False},  # keeps its pixels: sizes differ
            {"op": "rotation", "p": 0.6},
            {"op": "resize", "height": 24, "width": 20},
            {"op": "one_of", "ops": [{"op": "gaussian_blur", "p": 1.0}, {"op": "equalize", "p": 1.0}]},
            {"op": "randaugment", "num_ops": 2, "magnitude": 12},
            {"op": "random_erasing", "p": 0.5},
            {"op": "gaussian_noise", "p": 0.5},
        ]
    )


def _crop_then_every_op():
    """A crop that keeps its pixels, then every op that keeps the size: one per-image run up to the final resize."""
    from transforms.config import ops_from_data
    from transforms.ops import registered_ops

    crop = ops_from_data([{"op": "random_resized_crop", "scale": [0.3, 1.0], "resize": False}])
    return crop + tuple(example_op(n) for n in sorted(registered_ops()) if not example_op(n).changes_shape)


def _resized_crop_then_every_op():
    """A crop resized to a fixed size (a per-image run of one op), then every op that keeps the size, batched."""
    from transforms.config import ops_from_data
    from transforms.ops import registered_ops

    crop = ops_from_data([{"op": "random_resized_crop", "scale": [0.3, 1.0], "height": 20, "width": 24}])
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
    # Its default size means "the job's output size", which only a job (or ops_from_data) fills in.
    "random_resized_crop": {"op": "random_resized_crop", "height": 24, "width": 32},
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


# --- an object store stand-in --------------------------------------------------------------------------------------


def _dir_file_system() -> type:
    """``dirfs://<absolute path>``: a Beam FileSystem whose objects are the files under a local folder.

    It has what an object store has and no more: no folders (``has_dirs`` is False; ``mkdirs`` does
    nothing), a listing by prefix, an update time per object, and no create-if-absent. So the code paths
    for ``gs://`` or ``s3://`` run through Beam's ``FileSystems`` on real files. Defining the class registers
    its scheme with Beam.
    """
    import os
    import posixpath

    from apache_beam.io.filesystem import BeamIOError, CompressionTypes, FileMetadata, FileSystem

    class DirFileSystem(FileSystem):
        PREFIX = "dirfs://"

        @classmethod
        def scheme(cls) -> str:
            return "dirfs"

        def _local(self, url: str) -> str:
            return url[len(self.PREFIX) :]

        def join(self, basepath: str, *paths: str) -> str:
            return posixpath.join(basepath, *paths)

        def split(self, path: str) -> tuple[str, str]:
            return posixpath.split(path)  # type: ignore[return-value]

        def mkdirs(self, path: str) -> None:
            pass

        def has_dirs(self) -> bool:
            return False

        def _list(self, dir_or_prefix: str) -> Any:
            base = self._local(dir_or_prefix)
            top = base if os.path.isdir(base) else os.path.dirname(base)
            for folder, _dirs, files in os.walk(top):
                for name in files:
                    local = os.path.join(folder, name)
                    if local.startswith(base):
                        yield self.metadata(self.PREFIX + local)

        def create(self, path: str, mime_type: str = "", compression_type: str = CompressionTypes.AUTO) -> Any:
            local = self._local(path)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            return open(local, "wb")

        def open(self, path: str, mime_type: str = "", compression_type: str = CompressionTypes.AUTO) -> Any:
            return open(self._local(path), "rb")

        def copy(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
            for src, dst in zip(source_file_names, destination_file_names, strict=True):
                shutil.copyfile(self._local(src), self._local(dst))

        def rename(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
            for src, dst in zip(source_file_names, destination_file_names, strict=True):
                os.replace(self._local(src), self._local(dst))

        def exists(self, path: str) -> bool:
            return os.path.isfile(self._local(path))

        def size(self, path: str) -> int:
            return os.path.getsize(self._local(path))

        def last_updated(self, path: str) -> float:
            try:
                return os.stat(self._local(path)).st_mtime
            except OSError as exc:
                raise BeamIOError("last_updated", {path: exc}) from None

        def checksum(self, path: str) -> str:
            return str(self.size(path))

        def metadata(self, path: str) -> FileMetadata:
            st = os.stat(self._local(path))
            return FileMetadata(path, st.st_size, st.st_mtime)

        def delete(self, paths: list[str]) -> None:
            for path in paths:
                os.remove(self._local(path))

    return DirFileSystem


DirFileSystem = _dir_file_system()


def billion_laughs(levels: int = 9) -> str:
    """The reported shape: each level a one_of of nine aliases of the level below (9**8 = 43 M ops, 456 bytes)."""
    lines = ["ops:", "- &a {op: horizontal_flip}"]
    names = "abcdefghijklmnop"
    for level in range(1, levels):
        lines.append(f"- &{names[level]} {{op: one_of, ops: [{','.join(['*' + names[level - 1]] * 9)}]}}")
    return "\n".join(lines) + "\n"
