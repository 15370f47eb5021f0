"""The augbeam job against the baselines a user would write instead, each doing the same work.

python bench/compare.py [--corpus both|imagenet|camera] [--n 500] [--camera-n 25] [--repeats 3]
    [--encodings float32,uint8] [--shards 8] [--crop-resizes auto|yes|no] [--json bench.json]

For each corpus (``--corpus both``, the default, runs the imagenet-size one,
then the camera-size one), makes it once at N and 4N images, then runs every
variant in a fresh process on both sizes, interleaved (the variant order
rotates each repeat) and repeated; medians are reported:

- imagenet-size (``make_corpus``, ``--n``): about 500x375 and up, JPEG at
  several qualities and PNG, no EXIF;
- camera-size (``make_camera_corpus``, ``--camera-n``, ``--camera-scale``):
  8-12 MP JPEGs with sensor-like noise (about 1.4 MB each), some with EXIF
  orientation 6, 8 or 3, a few PNGs.

Start-up is part of every run, as a user
sees it. Per run the parent measures wall time, the child's CPU (user + sys)
and peak RSS from ``os.wait4`` (they include the child's reaped descendants:
Beam's worker processes; the parent is a child subreaper, so orphaned
descendants are reaped and counted too), and the peak of the summed RSS of
the whole process tree, sampled every 0.1 s with psutil (``ru_maxrss`` is the
largest single process, not the sum, which matters for ``project_2w``).

Every variant reads each file, decodes it, and writes one ``tf.train.Example``
per image built by ``pipeline.format.records.build_example`` (image bytes, shape,
dtype, encoding, label, key, copy, params JSON, sha256 of the source bytes),
at 224x224, for MobileNetV2: ``float32`` stores x / 127.5 - 1, ``uint8``
stores the [0, 255] pixels (the reader preprocesses). The augmenting variants
apply the ``standard`` preset with the job's own parameters, sampled with
``Augmenter(load_ops("standard"), seed).sample(key, 0, shape)``, key = the
path relative to the corpus root, shape = the upright shape (so params match
the job's records exactly; the check below verifies it). They read only the
crop's ``y, x, height, width``.

The baselines follow the job's order of work. When the job's
``random_resized_crop`` crops and resizes to the output size in one op
(torchvision's ``RandomResizedCrop(size)``: ``crop_resizes_detect`` reads it
from the op's fields, version or output shape; ``--crop-resizes yes|no``
overrides), they crop, resize to 224x224 (bilinear, antialiased), then flip,
rotate, brightness, contrast and preprocess at 224x224 (the job's final
resize is then a same-size no-op); otherwise they crop, flip, rotate,
brightness, contrast, resize and preprocess. The report says which.

EXIF orientation: the job turns every JPEG upright from its EXIF block (a
plain ``tf.io.decode_jpeg`` script would not, and would train on sideways
photos and sample its crop on the wrong shape). For the same work, the
baselines read the orientation from the header with Pillow (no decode, as
they read the size), map the upright crop box to the stored pixels
(``stored_box``), cut it there and turn only the crop upright (reverse rows,
reverse columns, transpose: ``ORIENT_STEPS``, the job's convention), the
cheapest correct way; turning the whole 12 MP picture first would cost them
a full copy per image.

- ``codec_floor``: read, decode, resize (bilinear, antialiased), encode,
  build, write; no augmentation and no orientation, params "[]". One
  ``tf.function``, a plain loop.
- ``pillow``: a plain loop with Pillow + NumPy: full decode, crop box, turned
  upright, flip, rotation about
  the centre (PIL has no reflect fill: the image is padded by reflection with
  ``np.pad(mode="symmetric")`` = d c b a | a b c d, then ``Image.transform``
  AFFINE bilinear reads the padded image, so every read lands in the padding,
  never PIL's black border), brightness x * factor + delta * 255 and contrast
  (x - mean) * f + mean per channel in float32 NumPy, ``Image.resize``
  BILINEAR 224x224 (PIL's is antialiased; first or last, as above),
  preprocessing; written with ``tf.io.TFRecordWriter``.
- ``tf_data``: ``Dataset.from_tensor_slices((paths, packed_params))``,
  ``map(fn, num_parallel_calls=AUTOTUNE)`` where fn reads, decodes the whole
  image, crops, turns the crop upright,
  flips, rotates (``ImageProjectiveTransformV3``, the matrix convention of
  ``transforms.ops.geometric.warp``, REFLECT fill, bilinear), brightness,
  ``tf.image.adjust_contrast``, resizes (bilinear, antialiased; first or last)
  and preprocesses / rounds; ``prefetch(AUTOTUNE)``; then a loop builds the
  Example and writes with ``tf.io.TFRecordWriter``. Params are sampled before
  the dataset from the image size and orientation in the file header
  (``PIL.Image.open``, no decode), since ``from_tensor_slices`` needs them up
  front.
- ``tf_data_crop``: ``tf_data`` with JPEGs decoded by
  ``tf.io.decode_and_crop_jpeg(raw, box)`` (libjpeg decodes only the crop's
  rows and skips most of its columns, as TensorFlow's own ImageNet input
  pipeline does); other formats (``tf.io.is_jpeg`` false) fall back to the
  full decode.
- ``project_default``: the command exactly as a user types it, with only the
  options that make it do the baselines' work: ``python -m pipeline run
  --input CORPUS --output OUT --overwrite --copies 1 --model mobilenet_v2
  --encoding ENC --config standard --image-size 224 224`` (``--seed`` only
  when not 0); no Beam options and no ``--num-shards``, so the job's own
  defaults for workers and shards are measured, whatever they are.
- ``project_1w`` / ``project_2w``: ``python -m pipeline run --input CORPUS
  --output OUT --overwrite --copies 1 --model mobilenet_v2 --encoding ENC
  --config standard --image-size 224 224 --num-shards S -- BEAM`` with
  ``--direct_num_workers=1`` resp. ``--direct_num_workers=2
  --direct_running_mode=multi_processing``; the whole subprocess is timed.
  ``project_1w_1t``: one worker with ``--tf-threads 1``, the thread budget
  each of the two workers gets, for the scaling of workers at a fixed budget
  (``project_1w`` uses every core in its one process).
- ``project_1w_1t_pair``: two ``project_1w_1t`` jobs started at once, each on
  the whole corpus (own output folders); timed until both end, CPU and RSS
  summed, rates over both jobs' images. Two jobs that share nothing is the
  most two workers can reach on this machine, so 2 workers / this pair
  tells the job's own scaling losses (coordination, an uneven split of
  shards between workers) from the machine's (two busy cores each doing
  less work per CPU-second than one alone).

The host check, once per repeat between the variants: a pure-Python loop
(no memory traffic, no I/O) timed by its own CPU time, one process alone and
two at once. Where the two take more CPU-seconds each, the machine itself
does less per CPU-second when both cores are busy (shared physical cores,
host load); no program scales by 2 there.

Where the baselines differ from the job (the check reports the size):
- ``pillow``: PIL's own JPEG decode; rotation resampled by PIL on uint8 and
  rounded to uint8, and brightness/contrast rounded to uint8 again before the
  resize (the job stays in float32 until the final rounding); the contrast
  mean is over the float pixels (the job: over rounded pixels, summed in
  int64); PIL's BILINEAR resize is a fixed-point triangle filter on uint8
  (the job: ``tf.image.resize(antialias=True)`` in float32); at the border
  TF's projective transform blends towards the edge differently from the
  reflect-padded image.
- ``tf_data``: decodes with ``channels=3`` (the job: ``channels=0``, alpha
  composited: the same pixels for these corpora, RGB without alpha);
  ``adjust_contrast`` uses the float mean; the
  crop is taken before the cast to float. TF has no op that builds a
  ``tf.train.Example`` or a sha256, so those happen in the writing loop (the
  alternative, ``tf.py_function`` inside ``map``, holds the GIL as well).
- ``tf_data_crop``: as ``tf_data``; and the partial JPEG decode upsamples the
  chroma at the crop's edge from fewer neighbours than the full decode: a few
  levels there, about 0 on average.

The check, per corpus: for the first ``--check-images`` keys of the N
corpus, the pillow, tf_data and tf_data_crop records are compared with the
job's records (``project_1w``, else ``project_default`` when only it ran):
mean and max absolute difference in pixel levels (float32: (x + 1) * 127.5),
split by whether the rotation was applied; params, labels and source hashes
are compared for every record; the 2-worker job's shard hashes are compared
with the 1-worker job's, and the default command's records (its shards may
differ) with the 1-worker job's.

Reported per corpus and encoding: wall and CPU-seconds at N and 4N, cores
busy (CPU / wall), images/s at 4N (whole run), steady images/s from the
N and 4N times (per image = (t4N - tN) / 3N), fixed start-up (tN - N * per
image), CPU-seconds per image (whole run at 4N, and steady), peak RSS of the
largest process and of the process tree at N and 4N, ratios
project_default, project_1w and project_2w over tf_data and over
tf_data_crop, tf_data_crop/tf_data, project_2w/pillow, 2-worker/1-worker
scaling (against both one-worker variants) and the project's RSS(4N)/RSS(N).
The environment (the Beam runner that actually ran, protobuf backend, the
CRC32C implementation of ``pipeline.format.records``, versions, CPUs) is
probed after the timed runs, in one untimed process that runs the job once
per worker setting that ran, on the first corpus's N images, with the
runners' ``run_pipeline`` wrapped. (Beam 2.77's DirectRunner first tries the
PrismRunner, which downloads a binary at run time, then falls back to the
FnApiRunner; augbeam runs batch DirectRunner jobs on the FnApiRunner
directly. The probe records every runner tried, its outcome and time.) The
table goes to stdout, the same numbers and every raw run to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import hashlib
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from make_corpus import make_corpus  # noqa: E402
from rss import RssSampler  # noqa: E402

from transforms import tf_import  # noqa: E402

VARIANTS = (
    "codec_floor",
    "pillow",
    "tf_data",
    "tf_data_crop",
    "project_default",
    "project_1w",
    "project_1w_1t",
    "project_1w_1t_pair",
    "project_2w",
)
ENCODINGS = ("float32", "uint8")
CONFIG = "standard"
MODEL = "mobilenet_v2"
SIZE = (224, 224)
# The baselines whose pixels the check compares with the job's.
BASELINES = ("pillow", "tf_data", "tf_data_crop")
STANDARD_OPS = ("random_resized_crop", "horizontal_flip", "rotation", "brightness", "contrast")
CORPORA = ("imagenet", "camera")
BEAM_ARGS = {
    "project_default": [],  # the command as a user types it: no Beam options, no --num-shards (see project_command)
    "project_1w": ["--direct_num_workers=1"],
    "project_1w_1t": ["--direct_num_workers=1"],
    "project_1w_1t_pair": ["--direct_num_workers=1"],
    "project_2w": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
}
# One worker held to one TensorFlow thread: what each of the two workers gets (``--tf-threads auto``), so
# 2 workers / this is the scaling of workers at a fixed budget per worker. project_1w is one worker as a
# user runs it (TensorFlow's default threads: every core).
CLI_ARGS = {"project_1w_1t": ["--tf-threads", "1"], "project_1w_1t_pair": ["--tf-threads", "1"]}
# Jobs started at once per run of a variant (each on the whole corpus): its rates count every job's images.
JOBS_PER_RUN = {"project_1w_1t_pair": 2}
# Environment set for one variant only (none at present; kept so a lever can be measured side by side).
VARIANT_ENV: dict[str, dict[str, str]] = {}
MIB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------------------------- the work itself


def list_corpus(root: Path) -> list[tuple[str, str, int]]:
    """(path, key, label) per image, as the job lists a folder of class folders: labels = sorted class index."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = []
    for label, name in enumerate(classes):
        for f in (root / name).iterdir():
            if f.is_file() and not f.name.startswith("."):
                items.append((str(f), f.relative_to(root).as_posix(), label))
    return sorted(items, key=lambda item: item[1])


def crop_resizes_detect() -> tuple[bool, str]:
    """Whether the job's ``random_resized_crop`` also resizes to the output size, and why we think so.

    torchvision's ``RandomResizedCrop(size)`` semantics (the op's version 2 default, ``resize: true``): the
    crop comes out at the output size, so the later ops run at 224x224 and the job's final resize is a
    no-op. ``resize: false`` keeps the crop's pixels. ``--crop-resizes yes|no`` overrides.
    """
    from transforms.config import load_ops

    crop = next(op for op in load_ops(CONFIG) if op.name == "random_resized_crop")
    resizes = bool(getattr(crop, "resize", False)) and crop.fixed_size() is not None
    size = crop.fixed_size()
    return resizes, (
        f"random_resized_crop v{crop.version} of {CONFIG!r}: "
        + (f"crops and resizes to {size}" if resizes else "keeps the crop's size (the final resize scales it)")
    )


# EXIF orientation -> (reverse rows, reverse columns, transpose), applied in this order to the stored pixels to
# show them upright (6: turned 90 degrees clockwise, 8: counter-clockwise, 3: 180).
ORIENT_STEPS = {
    1: (0, 0, 0),
    2: (0, 1, 0),
    3: (1, 1, 0),
    4: (1, 0, 0),
    5: (0, 0, 1),
    6: (1, 0, 1),
    7: (1, 1, 1),
    8: (0, 1, 1),
}


def read_header(source: str | io.BytesIO) -> tuple[int, int, int, bool]:
    """(stored height, stored width, EXIF orientation, is JPEG) from the file header, without decoding.

    As the job: the orientation of a JPEG's EXIF block (1 for other formats, or none, or unreadable).
    """
    from PIL import Image

    with Image.open(source) as header:
        width, height = header.size
        jpeg = header.format == "JPEG"
        orientation = 1
        if jpeg and header.info.get("exif"):
            exif = Image.Exif()
            with contextlib.suppress(Exception):
                exif.load(header.info["exif"])
            value = exif.get(0x0112, 1)
            orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    return height, width, orientation, jpeg


def upright_shape(height: int, width: int, orientation: int) -> tuple[int, int, int]:
    return (width, height, 3) if ORIENT_STEPS[orientation][2] else (height, width, 3)


def stored_box(box: tuple[int, int, int, int], height: int, width: int, orientation: int) -> tuple[int, ...]:
    """The crop box (y, x, h, w) of the upright picture as a box of the stored pixels (``height`` x ``width``).

    Cropping the stored pixels there and then applying the orientation gives the upright crop: each baseline
    turns only the crop upright, not the whole 12 MP picture.
    """
    rows, cols, transpose = ORIENT_STEPS[orientation]
    y, x, h, w = box
    if transpose:
        y, x, h, w = x, y, w, h
    if rows:
        y = height - y - h
    if cols:
        x = width - x - w
    return y, x, h, w


def unpack(sampled: list[dict[str, Any]]) -> dict[str, Any]:
    """The standard preset's sampled params as plain values (None: op not applied); the crop's y, x, h, w only."""
    names = tuple(entry["op"] for entry in sampled)
    if names != STANDARD_OPS:
        raise ValueError(f"expected the standard preset's ops {STANDARD_OPS}, got {names}")
    crop, flip, rotation, brightness, contrast = sampled
    c = crop["params"]
    return {
        "crop": (int(c["y"]), int(c["x"]), int(c["height"]), int(c["width"])),
        "flip": bool(flip["applied"]),
        "angle": rotation["params"]["angle"] if rotation["applied"] else None,
        "brightness": (
            (brightness["params"]["delta"], brightness["params"].get("factor", 1.0)) if brightness["applied"] else None
        ),
        "contrast": contrast["params"]["factor"] if contrast["applied"] else None,
    }


def sample_params(
    augmenter: Any, source: str | io.BytesIO, key: str
) -> tuple[dict[str, Any], str, tuple[int, int, int, bool]]:
    """The job's params for ``key`` (sampled on the upright shape), their JSON, and the file's header."""
    from transforms.augment import params_json
    from transforms.window import add_plan, ends_whole

    header = read_header(source)
    sampled = augmenter.sample(key, 0, upright_shape(*header[:3]))
    data = source.getvalue() if isinstance(source, io.BytesIO) else Path(source).read_bytes()
    if header[3] and ends_whole(data):  # the job records its JPEG window plan in the crop's params
        sampled = add_plan(augmenter.ops, sampled, header[:2], header[2])
    p = unpack(sampled)
    p["stored_box"] = stored_box(p["crop"], *header[:3])
    p["orientation"] = header[2]
    return p, params_json(sampled), header


def pack(p: dict[str, Any]) -> list[float]:
    """[y, x, h, w (stored), reverse rows, reverse cols, transpose, flip, rot?, angle, bright?, delta, factor,
    contrast?, factor] for the tf.data variants."""
    delta, factor = p["brightness"] or (0.0, 1.0)
    return [
        *p["stored_box"],
        *ORIENT_STEPS[p["orientation"]],
        float(p["flip"]),
        float(p["angle"] is not None),
        p["angle"] or 0.0,
        float(p["brightness"] is not None),
        delta,
        factor,
        float(p["contrast"] is not None),
        p["contrast"] or 1.0,
    ]


def pillow_rotate_reflect(img: Any, angle: float) -> Any:
    """Rotates a PIL image about its centre, counter-clockwise for a positive angle, reflect fill, bilinear.

    As ``transforms.ops.geometric.warp``: output p reads input Ainv (p - c) + c with
    Ainv = [[cos, -sin], [sin, cos]]. PIL's coordinates put pixel centres at
    i + 0.5, so c = (W / 2, H / 2) is the same centre as the job's ((W-1)/2, (H-1)/2).
    """
    import numpy as np
    from PIL import Image

    w, h = img.size
    t = math.radians(angle)
    a, b, d, e = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    cx, cy = w / 2.0, h / 2.0
    xs = [a * (x - cx) + b * (y - cy) + cx for x in (0, w) for y in (0, h)]
    ys = [d * (x - cx) + e * (y - cy) + cy for x in (0, w) for y in (0, h)]
    pad = int(math.ceil(max(0.0, -min(xs), max(xs) - w, -min(ys), max(ys) - h))) + 2
    padded = Image.fromarray(np.pad(np.asarray(img), ((pad, pad), (pad, pad), (0, 0)), mode="symmetric"))
    data = (a, b, cx - a * cx - b * cy + pad, d, e, cy - d * cx - e * cy + pad)
    return padded.transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


def pillow_render(img: Any, p: dict[str, Any], encoding: str, crop_resizes: bool) -> bytes:
    """The record payload from a PIL RGB image (stored pixels) under the standard preset's params.

    The crop is cut from the stored pixels and turned upright; then, in the job's order, either resize first
    (``crop_resizes``) or last.
    """
    import numpy as np
    from PIL import Image

    y, x, h, w = p["stored_box"]
    img = img.crop((x, y, x + w, y + h))
    rows, cols, transpose = ORIENT_STEPS[p["orientation"]]
    if rows:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if cols:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if transpose:
        img = img.transpose(Image.Transpose.TRANSPOSE)
    if crop_resizes:
        img = img.resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR)
    if p["flip"]:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if p["angle"] is not None:
        img = pillow_rotate_reflect(img, p["angle"])
    if p["brightness"] is not None or p["contrast"] is not None:
        arr = np.asarray(img, dtype=np.float32)
        if p["brightness"] is not None:
            delta, factor = p["brightness"]
            arr = np.clip(arr * np.float32(factor) + np.float32(delta * 255.0), 0.0, 255.0)
        if p["contrast"] is not None:
            mean = arr.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
            arr = np.clip((arr - mean) * np.float32(p["contrast"]) + mean, 0.0, 255.0)
        img = Image.fromarray(np.round(arr).astype(np.uint8))
    if not crop_resizes:
        img = img.resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR)
    out = np.asarray(img)
    if encoding == "float32":
        return (out.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype("<f4").tobytes()
    return out.tobytes()


def example(payload: bytes, encoding: str, label: int, key: str, params: str, source_sha256: str) -> bytes:
    from pipeline.format.records import build_example

    return build_example(
        image=payload,
        shape=(SIZE[0], SIZE[1], 3),
        dtype=encoding,
        encoding=encoding,
        label=label,
        key=key,
        copy=0,
        params=params,
        source_sha256=source_sha256,
    )


def run_codec_floor(items: list[tuple[str, str, int]], out: Path, encoding: str, seed: int, crop_resizes: bool) -> None:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def render(data: Any) -> Any:
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        x = tf.image.resize(tf.cast(image, tf.float32), SIZE, method="bilinear", antialias=True)
        x = tf.clip_by_value(x, 0.0, 255.0)
        if encoding == "float32":
            return x / 127.5 - 1.0
        return tf.cast(tf.round(x), tf.uint8)

    with tf.io.TFRecordWriter(str(out / "data.tfrecord")) as writer:
        for path, key, label in items:
            data = Path(path).read_bytes()
            payload = render(tf.constant(data)).numpy().tobytes()
            writer.write(example(payload, encoding, label, key, "[]", hashlib.sha256(data).hexdigest()))


def run_pillow(items: list[tuple[str, str, int]], out: Path, encoding: str, seed: int, crop_resizes: bool) -> None:
    import tensorflow as tf
    from PIL import Image

    from transforms.augment import Augmenter
    from transforms.config import load_ops

    augmenter = Augmenter(load_ops(CONFIG), seed)
    with tf.io.TFRecordWriter(str(out / "data.tfrecord")) as writer:
        for path, key, label in items:
            data = Path(path).read_bytes()
            p, text, _ = sample_params(augmenter, io.BytesIO(data), key)
            img = Image.open(io.BytesIO(data)).convert("RGB")
            payload = pillow_render(img, p, encoding, crop_resizes)
            writer.write(example(payload, encoding, label, key, text, hashlib.sha256(data).hexdigest()))


def tf_rotate(x: Any, angle: Any) -> Any:
    """float32 [H, W, 3] rotated about the centre by ``angle`` degrees (the job's convention), reflect fill."""
    import tensorflow as tf

    h = tf.cast(tf.shape(x)[0], tf.float32)
    w = tf.cast(tf.shape(x)[1], tf.float32)
    t = angle * (math.pi / 180.0)
    c, s = tf.cos(t), tf.sin(t)
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    # input = Ainv (out - centre) + centre with Ainv = [[c, -s], [s, c]]
    matrix = tf.stack([c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, 0.0, 0.0])[tf.newaxis]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x[tf.newaxis],
        transforms=matrix,
        output_shape=tf.shape(x)[0:2],
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )[0]


def tf_map_fn(encoding: str, crop_decode: bool, crop_resizes: bool) -> Any:
    """The ``Dataset.map`` function of ``tf_data`` (full decode, then slice) or ``tf_data_crop``.

    ``tf_data_crop`` decodes JPEGs with ``tf.io.decode_and_crop_jpeg`` (only the crop's rows and columns of
    DCT blocks are decoded, as TF's ImageNet input pipeline does) and falls back to a full decode for other
    formats. Both cut the stored pixels and turn only the crop upright.
    """
    import tensorflow as tf

    def resize(x: Any) -> Any:
        return tf.clip_by_value(tf.image.resize(x, SIZE, method="bilinear", antialias=True), 0.0, 255.0)

    def full(raw: Any, box: Any) -> Any:
        image = tf.io.decode_image(raw, channels=3, dtype=tf.uint8, expand_animations=False)
        return image[box[0] : box[0] + box[2], box[1] : box[1] + box[3], :]

    def fn(path: Any, p: Any) -> Any:
        raw = tf.io.read_file(path)
        box = tf.cast(p[0:4], tf.int32)
        if crop_decode:
            image = tf.cond(
                tf.io.is_jpeg(raw),
                lambda: tf.io.decode_and_crop_jpeg(raw, box, channels=3),
                lambda: full(raw, box),
            )
        else:
            image = full(raw, box)
        image = tf.cond(p[4] > 0.5, lambda: tf.reverse(image, axis=[0]), lambda: image)
        image = tf.cond(p[5] > 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
        image = tf.cond(p[6] > 0.5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
        x = tf.cast(image, tf.float32)
        if crop_resizes:
            x = resize(x)
        x = tf.cond(p[7] > 0.5, lambda: tf.reverse(x, axis=[1]), lambda: x)
        x = tf.cond(p[8] > 0.5, lambda: tf_rotate(x, p[9]), lambda: x)
        x = tf.cond(p[10] > 0.5, lambda: tf.clip_by_value(x * p[12] + p[11] * 255.0, 0.0, 255.0), lambda: x)
        x = tf.cond(p[13] > 0.5, lambda: tf.clip_by_value(tf.image.adjust_contrast(x, p[14]), 0.0, 255.0), lambda: x)
        if not crop_resizes:
            x = resize(x)
        if encoding == "float32":
            return x / 127.5 - 1.0, raw
        return tf.cast(tf.round(x), tf.uint8), raw

    return fn


def _run_tf_data(
    items: list[tuple[str, str, int]], out: Path, encoding: str, seed: int, crop_resizes: bool, crop_decode: bool
) -> None:
    import numpy as np
    import tensorflow as tf

    from transforms.augment import Augmenter
    from transforms.config import load_ops

    augmenter = Augmenter(load_ops(CONFIG), seed)
    packed, texts = [], []
    for path, key, _label in items:
        p, text, _ = sample_params(augmenter, path, key)
        packed.append(pack(p))
        texts.append(text)

    paths = [path for path, _, _ in items]
    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(packed, np.float32)))
    fn = tf_map_fn(encoding, crop_decode, crop_resizes)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    with tf.io.TFRecordWriter(str(out / "data.tfrecord")) as writer:
        for (pixels, raw), (_path, key, label), text in zip(ds.as_numpy_iterator(), items, texts, strict=True):
            payload = pixels.astype("<f4" if encoding == "float32" else np.uint8, copy=False).tobytes()
            writer.write(example(payload, encoding, label, key, text, hashlib.sha256(raw).hexdigest()))


def run_tf_data(items: list[tuple[str, str, int]], out: Path, encoding: str, seed: int, crop_resizes: bool) -> None:
    _run_tf_data(items, out, encoding, seed, crop_resizes, crop_decode=False)


def run_tf_data_crop(
    items: list[tuple[str, str, int]], out: Path, encoding: str, seed: int, crop_resizes: bool
) -> None:
    _run_tf_data(items, out, encoding, seed, crop_resizes, crop_decode=True)


CHILD_RUNNERS = {
    "codec_floor": run_codec_floor,
    "pillow": run_pillow,
    "tf_data": run_tf_data,
    "tf_data_crop": run_tf_data_crop,
}


def project_command(
    variant: str, corpus: Path, out: Path, encoding: str, shards: int, seed: int, config: str = CONFIG
) -> list[str]:
    """The job's command line for a ``project_*`` variant (also used by ``job_throughput.py``).

    ``project_default`` is the command exactly as a user types it, with only the options that make it do the
    baselines' work: no Beam options, no ``--num-shards`` (the job's defaults decide workers and shards), and
    ``--seed`` only when it is not the CLI's default (0).
    """
    common = ["--copies", "1", "--model", MODEL, "--encoding", encoding, "--config", config]
    common += ["--image-size", str(SIZE[0]), str(SIZE[1])]
    head = [sys.executable, "-m", "pipeline", "run", "--input", str(corpus), "--output", str(out), "--overwrite"]
    if variant == "project_default":
        return head + common + (["--seed", str(seed)] if seed else [])
    return [
        *head,
        *common,
        "--num-shards",
        str(shards),
        "--seed",
        str(seed),
        *CLI_ARGS.get(variant, []),
        "--",
        *BEAM_ARGS[variant],
    ]


# ---------------------------------------------------------------------------------------------- untimed children


def probe(corpus: Path, work: Path, shards: int, seed: int, variants: list[str]) -> dict[str, Any]:
    """Environment, and which Beam runner the job's two DirectRunner settings really run (one untimed job each)."""
    import apache_beam as beam
    import numpy as np
    import PIL
    import tensorflow as tf
    from apache_beam.runners.direct import direct_runner
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    import pipeline.format.records as records
    from pipeline.cli import main as cli_main

    ran: list[dict[str, Any]] = []

    def spy(cls: type) -> None:
        original = cls.run_pipeline

        def run_pipeline(self: Any, pipeline: Any, options: Any) -> Any:
            from apache_beam.options.pipeline_options import DirectOptions

            direct = options.view_as(DirectOptions)
            entry = {
                "runner": type(self).__name__,
                "module": type(self).__module__,
                "direct_num_workers": direct.direct_num_workers,
                "direct_running_mode": direct.direct_running_mode,
            }
            ran.append(entry)
            start = time.perf_counter()
            try:
                result = original(self, pipeline, options)
            except Exception as exc:
                entry["failed"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                raise
            finally:
                entry["seconds"] = round(time.perf_counter() - start, 3)
            entry["state"] = str(getattr(result, "state", None))
            return result

        cls.run_pipeline = run_pipeline

    spy(direct_runner.BundleBasedDirectRunner)
    spy(fn_runner.FnApiRunner)
    with contextlib.suppress(ImportError):
        from apache_beam.runners.portability import prism_runner

        spy(prism_runner.PrismRunner)
    import pipeline.job.run as job

    threads: list[int] = []
    resolve = job.resolve_tf_threads

    def resolve_tf_threads(requested: Any, beam_args: list[str]) -> int:
        threads.append(resolve(requested, beam_args))
        return threads[-1]

    job.resolve_tf_threads = resolve_tf_threads
    runners = {}
    for variant in BEAM_ARGS:
        if variant in JOBS_PER_RUN or variant not in variants:
            continue  # the same job as another variant, several at once
        ran.clear()
        threads.clear()
        argv = project_command(variant, corpus, work / f"probe_{variant}", "uint8", shards, seed)[3:]
        saved = dict(os.environ)
        os.environ.update(VARIANT_ENV.get(variant, {}))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                rc = cli_main(argv)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        runners[variant] = {
            "rc": rc,
            "ran": list(ran),
            "beam_args": BEAM_ARGS[variant],
            "tf_threads_per_worker": threads[0] if threads else None,  # 0: TensorFlow's default (every core)
        }
    crc_module = sys.modules.get(getattr(records._crc32c_extend, "__module__", "") or "")
    return {
        "runners": runners,
        "tensorflow": tf.__version__,
        "apache_beam": beam.__version__,
        "protobuf": protobuf_version,
        "protobuf_backend": api_implementation.Type(),
        "crc32c": {
            "module": getattr(records._crc32c_extend, "__module__", None),
            "c_extension": getattr(crc_module, "_usingExtension", None),
        },
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "tf_threads_this_process": {  # the baselines' setting: TensorFlow's default (0)
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }


def check(spec: dict[str, Any]) -> dict[str, Any]:
    """Compares the baselines' records with the job's, and the default command's with ``project_1w``'s."""
    import numpy as np
    import tensorflow as tf

    def load(folder: str) -> dict[str, dict[str, Any]]:
        files = sorted(glob.glob(os.path.join(folder, "*.tfrecord")))
        out = {}
        for raw in tf.data.TFRecordDataset(files).as_numpy_iterator():
            f = tf.train.Example.FromString(raw).features.feature
            key = f["key"].bytes_list.value[0].decode()
            out[key] = {
                "image": f["image"].bytes_list.value[0],
                "encoding": f["image/encoding"].bytes_list.value[0].decode(),
                "params": f["params"].bytes_list.value[0].decode(),
                "label": f["label"].int64_list.value[0],
                "sha": f["source_sha256"].bytes_list.value[0].decode(),
            }
        return out

    def levels(record: dict[str, Any]) -> Any:
        if record["encoding"] == "float32":
            return (np.frombuffer(record["image"], "<f4").astype(np.float64) + 1.0) * 127.5
        return np.frombuffer(record["image"], np.uint8).astype(np.float64)

    result: dict[str, Any] = {}
    for encoding, dirs in spec["outputs"].items():
        reference = spec["reference"]
        ref = load(dirs[reference])
        keys = sorted(ref)[: spec["images"]]
        enc_result: dict[str, Any] = {"reference": reference, "images": len(keys), "records": len(ref)}
        for variant in (b for b in BASELINES if b in dirs):
            got = load(dirs[variant])
            same_keys = sorted(got) == sorted(ref)
            fields = {
                name: same_keys and all(got[k][name] == ref[k][name] for k in ref)
                for name in ("params", "label", "sha")
            }
            per_key = []
            for key in keys:
                diff = np.abs(levels(got[key]) - levels(ref[key]))
                rotated = json.loads(ref[key]["params"])[2]["applied"]
                per_key.append({"key": key, "rotated": rotated, "mad": float(diff.mean()), "max": float(diff.max())})
            rot = [r["mad"] for r in per_key if r["rotated"]]
            flat = [r["mad"] for r in per_key if not r["rotated"]]
            enc_result[variant] = {
                "same_keys": same_keys,
                "same_params": fields["params"],
                "same_labels": fields["label"],
                "same_source_sha256": fields["sha"],
                "mean_abs_diff_levels": round(statistics.fmean(r["mad"] for r in per_key), 4) if per_key else None,
                "mean_abs_diff_levels_rotated": round(statistics.fmean(rot), 4) if rot else None,
                "mean_abs_diff_levels_not_rotated": round(statistics.fmean(flat), 4) if flat else None,
                "max_abs_diff_levels": round(max(r["max"] for r in per_key), 2) if per_key else None,
                "per_image": per_key,
            }
            if encoding == "float32" and per_key:
                enc_result[variant]["mean_abs_diff_model_units"] = round(
                    enc_result[variant]["mean_abs_diff_levels"] / 127.5, 6
                )
        if reference == "project_1w" and "project_default" in dirs:
            default = load(dirs["project_default"])
            enc_result["project_default_same_records_as_1w"] = sorted(default) == sorted(ref) and all(
                default[k] == ref[k] for k in ref
            )
        result[encoding] = enc_result
    return result


# ---------------------------------------------------------------------------------------------- measuring


def _set_child_subreaper() -> bool:
    """Orphaned descendants (a Beam worker outliving the job) are re-parented to us, so we reap and count them."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(Exception):
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    return False


def measure(cmds: list[list[str]], log: Path, env: dict[str, str], sample_rss: bool) -> dict[str, Any]:
    """Starts every command at once; wall time until all end, CPU (summed) and peak RSS of them and descendants.

    CPU comes from ``os.wait4``'s rusage, not from psutil's ``cpu_times()``: rusage holds each reaped
    descendant's whole CPU time, where sampling the live tree misses what a process used after the last
    sample before it ended. The summed RSS of the live tree is sampled with psutil (``rss.RssSampler``).
    """
    with open(log, "wb") as handle, RssSampler() if sample_rss else contextlib.nullcontext() as tree:
        start = time.perf_counter()
        procs = [subprocess.Popen(c, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT) for c in cmds]
        user = sys_ = 0.0
        maxrss = 0
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            user, sys_ = user + usage.ru_utime, sys_ + usage.ru_stime
            maxrss = max(maxrss, usage.ru_maxrss)
        wall = time.perf_counter() - start
        cpu = user + sys_
        orphans = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # descendants that outlived the child, re-parented to us
            try:
                pid, _, orphan = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            orphans += 1
            cpu += orphan.ru_utime + orphan.ru_stime
            maxrss = max(maxrss, orphan.ru_maxrss)
    for cmd, proc in zip(cmds, procs, strict=True):
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}:\n{tail}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "user_s": round(user, 3),
        "sys_s": round(sys_, 3),
        "maxrss_mib": round(maxrss / 1024.0, 1),
        "tree_rss_peak_mib": round(tree.children_peak / MIB, 1) if sample_rss else None,
        "orphans_reaped": orphans,
    }


# The host check's work: pure Python arithmetic, no allocation beyond small ints, no I/O; its own CPU time.
HOST_LOOP = (
    "import time\nt = time.process_time()\nx = 0\n"
    "for i in range(3_000_000):\n    x += i * i ^ 3\n"
    "print(time.process_time() - t)"
)


def host_check() -> dict[str, Any]:
    """The loop's CPU-seconds in one process alone, then in each of two processes started at once."""

    def run(processes: int) -> list[float]:
        procs = [
            subprocess.Popen([sys.executable, "-c", HOST_LOOP], stdout=subprocess.PIPE, text=True)
            for _ in range(processes)
        ]
        return [float(proc.communicate()[0]) for proc in procs]

    return {"alone_cpu_s": round(run(1)[0], 4), "two_at_once_cpu_s": [round(x, 4) for x in run(2)]}


def summarize_host(checks: list[dict[str, Any]]) -> dict[str, Any]:
    alone = _median([c["alone_cpu_s"] for c in checks])
    both = _median([statistics.fmean(c["two_at_once_cpu_s"]) for c in checks])
    factor = both / alone
    return {
        "runs": checks,
        "alone_cpu_s_median": round(alone, 4),
        "two_at_once_cpu_s_median": round(both, 4),
        "cpu_factor_two_at_once": round(factor, 3),
        "implied_2_process_ceiling": round(2 / factor, 3),
    }


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_json_child(args: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]], n: int) -> dict[str, Any]:
    rows = []
    for variant, by_size in runs.items():
        t_n = _median([r["wall_s"] for r in by_size["N"]])
        t_4n = _median([r["wall_s"] for r in by_size["4N"]])
        c_n = _median([r["cpu_s"] for r in by_size["N"]])
        c_4n = _median([r["cpu_s"] for r in by_size["4N"]])
        images = n * JOBS_PER_RUN.get(variant, 1)  # images in one run on the N corpus
        per_image = (t_4n - t_n) / (3 * images)
        cpu_per_image = (c_4n - c_n) / (3 * images)
        tree_n = [r["tree_rss_peak_mib"] for r in by_size["N"] if r["tree_rss_peak_mib"] is not None]
        tree_4n = [r["tree_rss_peak_mib"] for r in by_size["4N"] if r["tree_rss_peak_mib"] is not None]
        rows.append(
            {
                "variant": variant,
                "median_s_N": round(t_n, 2),
                "median_s_4N": round(t_4n, 2),
                "median_cpu_s_N": round(c_n, 2),
                "median_cpu_s_4N": round(c_4n, 2),
                "jobs_per_run": JOBS_PER_RUN.get(variant, 1),
                "images_per_s_4N_whole_run": round(4 * images / t_4n, 2),
                "images_per_s_steady": round(1 / per_image, 2) if per_image > 0 else None,
                "fixed_s": round(t_n - images * per_image, 2) if per_image > 0 else None,
                "cpu_s_per_image_4N_whole_run": round(c_4n / (4 * images), 4),
                "cpu_s_per_image_steady": round(cpu_per_image, 4) if cpu_per_image > 0 else None,
                "cpu_fixed_s": round(c_n - images * cpu_per_image, 2) if cpu_per_image > 0 else None,
                "cores_busy_N": round(c_n / t_n, 2),
                "cores_busy_4N": round(c_4n / t_4n, 2),
                "peak_rss_mib_N": _median([r["maxrss_mib"] for r in by_size["N"]]),
                "peak_rss_mib_4N": _median([r["maxrss_mib"] for r in by_size["4N"]]),
                "tree_rss_peak_mib_N": _median(tree_n) if tree_n else None,
                "tree_rss_peak_mib_4N": _median(tree_4n) if tree_4n else None,
            }
        )
    by = {r["variant"]: r for r in rows}

    def rate_ratio(a: str, b: str) -> dict[str, float | None]:
        if a not in by or b not in by:
            return {"steady": None, "whole_run_4N": None}
        return {
            "steady": _ratio(by[a]["images_per_s_steady"], by[b]["images_per_s_steady"]),
            "whole_run_4N": _ratio(by[a]["images_per_s_4N_whole_run"], by[b]["images_per_s_4N_whole_run"]),
        }

    ratios: dict[str, Any] = {
        f"{a}/{b}": rate_ratio(a, b)
        for a in ("project_default", "project_1w", "project_2w")
        for b in ("tf_data", "tf_data_crop")
    }
    ratios.update(
        {
            "project_2w/pillow": rate_ratio("project_2w", "pillow"),
            "tf_data_crop/tf_data (decoding the crop only)": rate_ratio("tf_data_crop", "tf_data"),
            "project_2w/project_1w (scaling)": rate_ratio("project_2w", "project_1w"),
            "project_2w/project_1w_1t (scaling, one TF thread per worker)": rate_ratio("project_2w", "project_1w_1t"),
            "project_1w_1t_pair/project_1w_1t (machine's ceiling: two independent one-thread jobs at once)": (
                rate_ratio("project_1w_1t_pair", "project_1w_1t")
            ),
            "project_2w/project_1w_1t_pair (2 workers against that ceiling)": rate_ratio(
                "project_2w", "project_1w_1t_pair"
            ),
        }
    )
    for variant in ("project_default", "project_1w", "project_2w"):
        if variant in by:
            r = by[variant]
            ratios[f"{variant} rss(4N)/rss(N)"] = {
                "max_process": _ratio(r["peak_rss_mib_4N"], r["peak_rss_mib_N"]),
                "tree_sum": _ratio(r["tree_rss_peak_mib_4N"], r["tree_rss_peak_mib_N"]),
            }
    return {"rows": rows, "ratios": ratios}


def print_table(corpus: str, encoding: str, summary: dict[str, Any], n: int, repeats: int) -> None:
    print(
        f"\ncorpus={corpus}, encoding={encoding}, N={n}, 4N={4 * n}, medians of {repeats} interleaved run(s), "
        "fresh process each"
    )
    head = (
        f"{'variant':<19}{'t(N)s':>8}{'t(4N)s':>8}{'CPU 4N':>8}{'img/s 4N':>10}{'img/s steady':>13}{'fixed s':>9}"
        f"{'CPUs/img':>9}{'CPUs/img st':>12}{'cores':>7}{'RSS N':>8}{'RSS 4N':>8}{'tree N':>8}{'tree 4N':>8}"
    )
    print(head)
    print("-" * len(head))

    def cell(value: Any, width: int, digits: int) -> str:
        return f"{value:>{width}.{digits}f}" if isinstance(value, int | float) else f"{str(value):>{width}}"

    for r in summary["rows"]:
        print(
            f"{r['variant']:<19}{cell(r['median_s_N'], 8, 2)}{cell(r['median_s_4N'], 8, 2)}"
            f"{cell(r['median_cpu_s_4N'], 8, 1)}"
            f"{cell(r['images_per_s_4N_whole_run'], 10, 1)}{cell(r['images_per_s_steady'], 13, 1)}"
            f"{cell(r['fixed_s'], 9, 2)}{cell(r['cpu_s_per_image_4N_whole_run'], 9, 4)}"
            f"{cell(r['cpu_s_per_image_steady'], 12, 4)}{cell(r['cores_busy_4N'], 7, 2)}"
            f"{cell(r['peak_rss_mib_N'], 8, 0)}{cell(r['peak_rss_mib_4N'], 8, 0)}"
            f"{cell(r['tree_rss_peak_mib_N'], 8, 0)}{cell(r['tree_rss_peak_mib_4N'], 8, 0)}"
        )
    print(
        "(CPU: user + sys seconds of the whole run; cores: CPU / wall at 4N; RSS: peak of the largest process, "
        "MiB; tree: peak of the summed RSS of all processes, MiB)"
    )
    for name, value in summary["ratios"].items():
        print(f"  {name}: {value}")


def make(corpus: str, n: int, out: Path, seed: int, camera_scale: float) -> None:
    shutil.rmtree(out, ignore_errors=True)
    if corpus == "camera":
        # In a child process: 12 MP images made here would raise this process's RSS for good, and on Linux every
        # timed child's ``ru_maxrss`` starts from its parent's RSS at the fork (measured: 960 MiB in every row).
        script = ROOT / "bench" / "make_camera_corpus.py"
        cmd = [sys.executable, str(script), "--n", str(n), "--out", str(out), "--seed", str(seed)]
        subprocess.run([*cmd, "--scale", str(camera_scale)], check=True, stdout=subprocess.DEVNULL)
    else:
        make_corpus(n, out, seed)


def run_corpus(
    corpus: str,
    n: int,
    args: argparse.Namespace,
    variants: list[str],
    encodings: list[str],
    work: Path,
    crop_resizes: bool,
    with_probe: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every variant on one corpus (N and 4N images), interleaved and repeated; the untimed check after.

    Returns the corpus's report and the environment probe (empty unless ``with_probe``: the runners and
    versions do not depend on the corpus, so one probe per command).
    """
    env = child_env()
    sizes = {"N": n, "4N": 4 * n}
    corpora = {label: work / f"corpus_{label}" for label in sizes}
    started = time.perf_counter()
    for label, count in sizes.items():
        make(corpus, count, corpora[label], args.seed, args.camera_scale)
    megabytes = sum(f.stat().st_size for f in corpora["4N"].rglob("*") if f.is_file()) / 1e6
    print(
        f"corpus {corpus}: {n} + {4 * n} images in {time.perf_counter() - started:.1f} s under {work} "
        f"(4N: {megabytes:.1f} MB, {megabytes / (4 * n):.2f} MB per image)",
        flush=True,
    )

    load_before = os.getloadavg()
    runs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        e: {v: {label: [] for label in sizes} for v in variants} for e in encodings
    }
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    keep = {*BASELINES, "project_default", "project_1w", "project_2w"} & set(variants)
    # The job's records the baselines are checked against: one worker, else the default command.
    reference = next((v for v in ("project_1w", "project_default") if v in variants), None)
    host_checks = []
    for repeat in range(args.repeats):
        order = variants[repeat % len(variants) :] + variants[: repeat % len(variants)]
        host_checks.append(host_check())
        print(f"[{corpus} {repeat + 1}/{args.repeats}] host check: {host_checks[-1]}", flush=True)
        for encoding in encodings:
            for label in sizes:
                for variant in order:
                    out = work / "out" / encoding / variant / label
                    shutil.rmtree(out, ignore_errors=True)
                    variant_env = {**env, **VARIANT_ENV.get(variant, {})}
                    if variant in BEAM_ARGS:
                        jobs = JOBS_PER_RUN.get(variant, 1)
                        cmds = [
                            project_command(
                                variant,
                                corpora[label],
                                out / str(j) if jobs > 1 else out,
                                encoding,
                                args.shards,
                                args.seed,
                            )
                            for j in range(jobs)
                        ]
                    else:
                        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
                        cmd += ["--child-corpus", str(corpora[label]), "--out", str(out), "--encoding", encoding]
                        cmd += ["--crop-resizes", "yes" if crop_resizes else "no"]
                        cmds = [cmd + ["--seed", str(args.seed)]]
                        # A user's script imports TensorFlow whole; the baselines borrow only the job's sampling.
                        variant_env[tf_import.ENV_SWITCH] = "0"
                    log = logs / f"{encoding}-{variant}-{label}-{repeat}.log"
                    result = measure(cmds, log, variant_env, sample_rss=True)
                    runs[encoding][variant][label].append(result)
                    print(
                        f"[{corpus} {repeat + 1}/{args.repeats}] {encoding:<7} {variant:<18} {label:<2}: "
                        f"{result['wall_s']:7.2f} s, CPU {result['cpu_s']:7.2f} s, "
                        f"RSS {result['maxrss_mib']:7.1f} MiB (tree {result['tree_rss_peak_mib']} MiB)",
                        flush=True,
                    )
                    if not (label == "N" and variant in keep and repeat == args.repeats - 1):
                        shutil.rmtree(out, ignore_errors=True)
    load_after = os.getloadavg()

    results = {encoding: summarize(runs[encoding], n) for encoding in encodings}
    host = summarize_host(host_checks)
    outputs = {e: {v: str(work / "out" / e / v / "N") for v in keep} for e in encodings}
    spec = work / "post.json"
    spec.write_text(
        json.dumps(
            {
                "corpus": str(corpora["N"]),
                "probe_out": str(work / "probe"),
                "probe": with_probe,
                "variants": variants,
                "reference": reference,
                "shards": args.shards,
                "seed": args.seed,
                "outputs": outputs if reference else {},
                "images": args.check_images,
            }
        )
    )
    post = run_json_child(["--post", str(spec)], env, f"probe and check ({corpus})")
    checks, environment = post["check"], post["environment"]
    if with_probe:
        for variant, info in environment["runners"].items():
            print(
                f"{variant} ({' '.join(info['beam_args']) or 'no Beam options'}): DirectRunner ran {info['ran']}; "
                f"TensorFlow threads per worker {info.get('tf_threads_per_worker')} (0: TensorFlow's default)"
            )
        print(
            f"TF {environment['tensorflow']}, Beam {environment['apache_beam']}, protobuf "
            f"{environment['protobuf']} (backend {environment['protobuf_backend']}), CRC32C "
            f"{environment['crc32c']}, CPUs {environment['cpu_count']} (usable {environment['cpus_usable']})"
        )
    print(f"corpus {corpus}: load average {load_before} before, {load_after} after")
    print(
        f"host check: a pure-Python loop takes {host['alone_cpu_s_median']} CPU-s alone, "
        f"{host['two_at_once_cpu_s_median']} CPU-s each with two at once (x{host['cpu_factor_two_at_once']}; "
        f"two processes can reach {host['implied_2_process_ceiling']} x one here)"
    )
    if checks and {"project_1w", "project_2w"} <= set(variants):
        from augbeam import read_manifest

        for encoding in encodings:
            outs = [work / "out" / encoding / variant / "N" for variant in ("project_1w", "project_2w")]
            manifests = [read_manifest(str(out)) for out in outs]
            hashes = [[s.sha256 for s in m.splits["train"].shards] for m in manifests]
            checks[encoding]["project_2w_same_shards_as_1w"] = hashes[0] == hashes[1]
    for encoding in encodings:
        print_table(corpus, encoding, results[encoding], n, args.repeats)
        if encoding in checks:
            c = checks[encoding]
            for variant in (b for b in BASELINES if b in c):
                v = c[variant]
                print(
                    f"  check {variant} vs {c['reference']} ({c['images']} images): mean |diff| "
                    f"{v['mean_abs_diff_levels']} levels (rotated {v['mean_abs_diff_levels_rotated']}, "
                    f"not {v['mean_abs_diff_levels_not_rotated']}), max {v['max_abs_diff_levels']}; "
                    f"same params {v['same_params']}, labels {v['same_labels']}, "
                    f"sources {v['same_source_sha256']}"
                )
            for name in ("project_2w_same_shards_as_1w", "project_default_same_records_as_1w"):
                if name in c:
                    print(f"  {name}: {c[name]}")
    report = {
        "corpus": corpus,
        "n": n,
        "n_4n": 4 * n,
        "corpus_4n_mb": round(megabytes, 1),
        "camera_scale": args.camera_scale if corpus == "camera" else None,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "host_check": host,
        "results": results,
        "check": checks,
        "raw_runs": runs,
    }
    return report, environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus",
        choices=(*CORPORA, "both"),
        default="both",
        help="imagenet: about 500x375 crops (make_corpus.py); camera: 8-12 MP photos (make_camera_corpus.py)",
    )
    parser.add_argument("--n", type=int, default=200, help="images in the small imagenet corpus (the large one: 4N)")
    parser.add_argument("--camera-n", type=int, default=25, help="images in the small camera corpus (large: 4N)")
    parser.add_argument(
        "--camera-scale", type=float, default=1.0, help="multiplies the camera sizes (tiny for the smoke test)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encodings", default=",".join(ENCODINGS), help="comma-separated: float32,uint8")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=8, help="--num-shards for the job (>= 2 per worker)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--crop-resizes",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the baselines resize right after the crop (auto: as the job's random_resized_crop does)",
    )
    parser.add_argument("--check-images", type=int, default=8, help="images compared with the job's records")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, help="working folder (kept); default: a temporary one, removed")
    # internal: the child processes
    parser.add_argument("--child", choices=tuple(CHILD_RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--child-corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--encoding", help=argparse.SUPPRESS)
    parser.add_argument("--post", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.crop_resizes == "auto":
            parser.error("--child needs --crop-resizes yes|no")
        items = list_corpus(args.child_corpus)
        CHILD_RUNNERS[args.child](items, args.out, args.encoding, args.seed, args.crop_resizes == "yes")
        return
    if args.post:  # untimed, after the timed runs: one TensorFlow start for the probe and the check
        spec = json.loads(args.post.read_text())
        environment = (
            probe(Path(spec["corpus"]), Path(spec["probe_out"]), spec["shards"], spec["seed"], spec["variants"])
            if spec["probe"]
            else {}
        )
        print(json.dumps({"environment": environment, "check": check(spec) if spec["outputs"] else {}}))
        return

    encodings = [e for e in args.encodings.split(",") if e]
    variants = [v for v in args.variants.split(",") if v]
    bad = [e for e in encodings if e not in ENCODINGS] + [v for v in variants if v not in VARIANTS]
    if bad or not encodings or not variants:
        parser.error(f"unknown encoding(s)/variant(s): {bad}; encodings: {ENCODINGS}")
    if args.n < 1 or args.camera_n < 1 or args.repeats < 1 or args.camera_scale <= 0:
        parser.error("--n, --camera-n and --repeats must be at least 1, --camera-scale above 0")
    corpora = list(CORPORA) if args.corpus == "both" else [args.corpus]
    if args.crop_resizes == "auto":
        crop_resizes, crop_why = crop_resizes_detect()
    else:
        crop_resizes, crop_why = args.crop_resizes == "yes", f"--crop-resizes {args.crop_resizes}"
    order = "crop, resize, flip, rotate, colour" if crop_resizes else "crop, flip, rotate, colour, resize"
    print(f"baselines: {order} ({crop_why})", flush=True)

    work = args.work or Path(tempfile.mkdtemp(prefix="augbeam-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    subreaper = _set_child_subreaper()
    try:
        reports: dict[str, Any] = {}
        environment: dict[str, Any] = {}
        for i, corpus in enumerate(corpora):
            n = args.camera_n if corpus == "camera" else args.n
            reports[corpus], probed = run_corpus(
                corpus, n, args, variants, encodings, work / corpus, crop_resizes, with_probe=i == 0
            )
            environment.update(probed)
        environment["child_subreaper"] = subreaper
        report = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "repeats": args.repeats,
            "encodings": encodings,
            "config": CONFIG,
            "model": MODEL,
            "image_size": list(SIZE),
            "shards": args.shards,
            "seed": args.seed,
            "variants": variants,
            "baselines_crop_resizes": {"value": crop_resizes, "why": crop_why},
            "environment": environment,
            "corpora": reports,
        }
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
            print(f"\nJSON: {args.json}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
