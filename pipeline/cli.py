"""The ``augbeam`` command line: ``augbeam run --input SRC --output DST [options] [-- beam options]``."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from transforms.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.annotations.lookup import NoObjects
    from pipeline.format.manifest import Manifest
    from pipeline.job.options import JobConfig
    from pipeline.report.preview import ImageTargets, PreviewTargets
    from pipeline.runtime.warm_workers import WarmWorkers

EPILOG = """Without Beam options the job runs one worker process per core on this machine (the DirectRunner's
multi_processing mode). Beam options go after '--', for example:
  augbeam run --input photos --output out -- --direct_num_workers=1   (one in-process worker)
  augbeam run --input gs://b/photos --output gs://b/out -- --runner=DataflowRunner --project=P --region=R"""


VERIFY_EPILOG = """Every shard is read once with its index and error parts; memory stays that of one shard.
For outputs too big for one machine, check the shards as a Beam job:
  augbeam verify gs://b/out -- --runner=DataflowRunner --project=P --region=R --temp_location=gs://b/tmp"""


_BYTE_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def byte_size(text: str) -> int:
    """A size in bytes: a whole number, or one followed by K, M or G (KiB, MiB, GiB: powers of 1024)."""
    raw = text.strip().upper()
    digits = raw.rstrip("KMGIB")
    unit = raw[len(digits) :].strip()
    if not digits.strip().isdigit() or unit not in _BYTE_UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give bytes, or a number with K, M or G (e.g. 512M)")
    return int(digits) * _BYTE_UNITS[unit]


def build_parser() -> argparse.ArgumentParser:
    from pipeline.job import options as bounds
    from pipeline.runtime.tf_threads import MAX_TF_THREADS
    from transforms.augment import DEVICES, RESIZE_MODES
    from transforms.budget import DEFAULT_MAX_IMAGE_BYTES
    from transforms.config import DEFAULT_PRESET, PRESETS
    from transforms.config_bounds import MAX_CONFIG_BYTES
    from transforms.decode import DEFAULT_MAX_PIXELS
    from transforms.encoding import ENCODINGS

    parser = argparse.ArgumentParser(
        prog="augbeam", description="Seeded, recorded image augmentation to TFRecord shards."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="augment a folder or listing into TFRecord shards",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--input", required=True, help="folder of class subfolders, or a .csv/.parquet/.jsonl listing")
    run.add_argument("--output", required=True, help="output folder (local or any Beam filesystem URL)")
    run.add_argument(
        "--model",
        default="mobilenet_v2",
        help="model preprocessing: a keras.applications module or model name, or none, scale_0_1, scale_-1_1, "
        "mean_std (`augbeam models` lists them; default: mobilenet_v2)",
    )
    run.add_argument(
        "--image-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help=f"output size (default: the model's); each side at most {bounds.MAX_IMAGE_SIDE}, at most "
        f"{bounds.MAX_IMAGE_PIXELS} pixels (4096 x 4096), and with --batch-size at most "
        f"{bounds.MAX_WORKER_BYTES // 2**30} GiB of images held per worker",
    )
    run.add_argument(
        "--mean", nargs=3, type=float, metavar=("R", "G", "B"), help="for --model mean_std: mean in [0, 1] units"
    )
    run.add_argument(
        "--std", nargs=3, type=float, metavar=("R", "G", "B"), help="for --model mean_std: std in [0, 1] units"
    )
    run.add_argument(
        "--copies",
        type=int,
        default=1,
        help=f"augmented copies of each training image, 1 to {bounds.MAX_COPIES} (default: 1)",
    )
    run.add_argument(
        "--eval-copies",
        type=int,
        default=1,
        help=f"copies of each evaluation image, 1 to {bounds.MAX_COPIES} (default: 1)",
    )
    run.add_argument("--augment-eval", action="store_true", help="apply the random ops to evaluation splits too")
    run.add_argument("--seed", type=int, default=0, help="global seed (default: 0)")
    run.add_argument(
        "--classes",
        help="comma-separated class names, in label order (default: the sorted names found); "
        "other labels are reported as UnknownLabel",
    )
    shards = run.add_mutually_exclusive_group()
    shards.add_argument(
        "--num-shards",
        type=int,
        help=f"shards per split, 1 to {bounds.MAX_NUM_SHARDS} (default: from --shard-size-mb, at most 512 records "
        "a shard, and up to 16 shards of 8 or more records so that workers share the work)",
    )
    shards.add_argument(
        "--shard-size-mb",
        type=float,
        default=64.0,
        help=f"target shard size, {bounds.MIN_SHARD_SIZE_MB:g} to {bounds.MAX_SHARD_SIZE_MB:.0f} (default: 64)",
    )
    run.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="uint8",
        help="float32/float16: preprocessed tensor; uint8/jpeg/png: augmented pixels, "
        "preprocessed by the reader (default: uint8)",
    )
    run.add_argument("--jpeg-quality", type=int, default=95, help="quality for --encoding jpeg (default: 95)")
    run.add_argument(
        "--config",
        default=DEFAULT_PRESET,
        help=f"op list: a YAML/JSON file or a preset ({', '.join(PRESETS)}; default: {DEFAULT_PRESET}); a file "
        f"of at most {MAX_CONFIG_BYTES // 1024} KiB, without YAML anchors or aliases",
    )
    run.add_argument(
        "--resize",
        dest="resize_mode",
        choices=RESIZE_MODES,
        default="stretch",
        help="how the augmented image reaches the output size (default: stretch)",
    )
    run.add_argument("--alpha-fill", type=int, default=255, help="grey level transparent pixels become (default: 255)")
    run.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images before decoding, at most {bounds.MAX_MAX_PIXELS} (default: {DEFAULT_MAX_PIXELS})",
    )
    run.add_argument(
        "--max-image-bytes",
        type=byte_size,
        default=DEFAULT_MAX_IMAGE_BYTES,
        metavar="BYTES",
        help="memory budget per image, in decoded bytes (width x height x channels x bytes per sample x frames, "
        "from the header): larger images are refused before decoding, and a batch holds at most this much; "
        f"a number, or with K, M or G (powers of 1024) (default: {DEFAULT_MAX_IMAGE_BYTES >> 20}M)",
    )
    run.add_argument(
        "--high-bit-depth",
        choices=("scale", "range"),
        default="scale",
        help="16-bit PNG/TIFF to [0, 255]: scale (v / 257, default) or range (the image's min..max); "
        "DICOM uses its window, else its own range",
    )
    run.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where ops run: auto (a GPU if TensorFlow sees one), cpu, or gpu (an error if none) (default: auto)",
    )
    run.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help=f"same-size images augmented per call on a worker, 1 to {bounds.MAX_BATCH_SIZE}, and with "
        f"--image-size at most {bounds.MAX_WORKER_BYTES // 2**30} GiB of images held per worker (default: 8)",
    )
    run.add_argument(
        "--max-error-rate",
        type=float,
        default=0.1,
        help="fail the job (no manifest) when a larger fraction of inputs or records fails (default: 0.1)",
    )
    run.add_argument(
        "--dali-index",
        action="store_true",
        help="also write an NVIDIA DALI index (tfrecord2idx format) beside each shard, as SHARD.idx",
    )
    run.add_argument(
        "--shared-mount",
        action="store_true",
        help="local --input/--output paths are a mount every remote worker sees at the same path (NFS...): "
        "do not refuse them with a remote runner",
    )
    run.add_argument(
        "--tf-threads",
        default="auto",
        help=f"TensorFlow threads per worker process, at most {MAX_TF_THREADS}; 0: TensorFlow's default (all cores) "
        "(default: auto, the cores "
        "divided among the DirectRunner's multi_processing workers, 1 in the default mode of one worker per core, "
        "else 0; use 1 on runners with one SDK process per core, such as Dataflow)",
    )
    from transforms.targets.types import TargetRules

    rules = TargetRules()
    run.add_argument(
        "--annotations",
        action="append",
        metavar="[SPLIT=]PATH",
        help="detection / segmentation / keypoint targets: a COCO .json file, or a VOC .xml or YOLO .txt folder, "
        "for the images under --input (a folder); PATH alone is the train split, SPLIT=PATH another split "
        "(repeat once per split)",
    )
    run.add_argument(
        "--annotation-format",
        choices=("auto", "coco", "voc", "yolo"),
        default="auto",
        help="the annotations' format (default: auto, told by what PATH is)",
    )
    run.add_argument("--yolo-names", metavar="FILE", help="YOLO class names: a data.yaml or classes.txt")
    run.add_argument(
        "--min-box-area",
        type=float,
        default=rules.min_area,
        help=f"remove an object whose clipped box covers fewer output pixels (default: {rules.min_area:g})",
    )
    run.add_argument(
        "--min-visibility",
        type=float,
        default=rules.min_visibility,
        help="remove an object with a smaller fraction of its transformed area inside the image, in [0, 1] "
        f"(default: {rules.min_visibility:g}, off)",
    )
    run.add_argument(
        "--min-box-side",
        type=float,
        default=rules.min_side,
        help=f"remove an object whose clipped box has a shorter side, in pixels (default: {rules.min_side:g}, off)",
    )
    run.add_argument(
        "--erasing-hides-keypoints",
        action="store_true",
        help="a visible keypoint inside a random_erasing rectangle becomes occluded (visibility 1)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace the output folder's contents")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an unfinished run in --output (killed, machine lost, Ctrl-C): its complete shards are kept, "
        "the rest written; refused if the config, input listing or augbeam version differ",
    )
    run.add_argument(
        "--phase-log",
        metavar="FILE",
        help="append one JSON line per phase of the driver's work (seconds, peak RSS) to FILE (for bench/scale.py)",
    )
    run.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="progress on stderr: a bar, a line every 10 s, or none (default: auto, a bar on a terminal, else lines)",
    )

    ops = sub.add_parser("ops", help="list the augmentation ops, their fields and defaults, and the presets")
    ops.add_argument("--preset", help="print this preset as a config file instead")
    ops.add_argument(
        "--format", choices=("text", "json", "yaml", "markdown"), default="text", help="output format (default: text)"
    )

    check = sub.add_parser(
        "verify",
        help="check an output folder: counts, checksums, uniqueness, regenerate a sample",
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("output", metavar="DST", help="the output folder")
    check.add_argument(
        "--sample",
        type=int,
        default=0,
        help="regenerate this many records from their sources (the same ones every time)",
    )
    check.add_argument(
        "--source",
        help="where the inputs are now (default: the input recorded in the manifest); lists them again and "
        "compares, holding every key in memory",
    )
    check.add_argument(
        "--runner",
        help="check the shards as a Beam job on this runner (DirectRunner, DataflowRunner...), with any Beam "
        "options after '--'; without either, they are checked here one after another",
    )

    inspect = sub.add_parser("inspect", help="print an output folder's summary: config, counts, files, errors")
    inspect.add_argument("output", metavar="DST", help="the output folder")

    models = sub.add_parser("models", help="list the model preprocessing entries (--model) with sizes and ranges")
    models.add_argument("--format", choices=("text", "markdown"), default="text", help="output format (default: text)")

    preview = sub.add_parser("preview", help="write a contact sheet of augmented copies of some images")
    preview.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    preview.add_argument("--config", default=DEFAULT_PRESET, help=f"op list file or preset (default: {DEFAULT_PRESET})")
    preview.add_argument("--copies", type=int, default=4, help="copies per image (default: 4)")
    preview.add_argument("--seed", type=int, default=0, help="global seed (default: 0)")
    preview.add_argument("--tile", type=int, default=224, help="tile size in pixels (default: 224)")
    preview.add_argument("--out", default="preview.png", help="PNG to write (default: preview.png)")
    preview.add_argument("--root", help="the job's --input folder: keys (and so the copies) are then exactly the job's")
    preview.add_argument(
        "--annotations",
        metavar="PATH",
        help="draw the images' boxes, masks and keypoints from this COCO .json, VOC or YOLO folder (needs --root)",
    )
    preview.add_argument(
        "--annotation-format",
        choices=("auto", "coco", "voc", "yolo"),
        default="auto",
        help="the --annotations format (default: told by the path)",
    )
    return parser


def split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our arguments, and Beam's (everything after a bare ``--``)."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


class _QuietBeamImports(logging.Filter):
    """Drops Beam's import-time note about optional GCP client libraries we do not use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("apitools not found")


def entry() -> None:
    """The ``augbeam`` command: ``main``, then an exit that skips the interpreter's teardown.

    Tearing down Beam's modules (and TensorFlow's, when the job ran in this
    process) took 0.3-1.1 s per run, measured, and does nothing for us: every
    file is written, closed and renamed by then. Exit handlers still run and
    the streams are flushed first; an exception propagates (and prints) as usual.
    """
    code = main()
    getattr(atexit, "_run_exitfuncs", lambda: None)()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    logging.getLogger().addFilter(_QuietBeamImports())
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, beam_args = split_beam_args(argv)
    if ours[:1] != ["run"]:
        return _main(ours, beam_args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF 2.16 logs CUDA plugin noise as errors
    from pipeline.job.warm_start import start_warm_workers

    # First thing, before the parser imports the job's modules and Beam: the warm worker server's imports (the
    # longest part of a small job's start) then overlap the driver's. A run that stops early kills it.
    with start_warm_workers(beam_args) or contextlib.nullcontext() as warm:
        return _main(ours, beam_args, warm)


def _main(ours: list[str], beam_args: list[str], warm: WarmWorkers | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(ours)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (Beam options go after a bare '--')")
    try:
        if args.command == "run":
            return _run(args, beam_args, warm)
        if args.command == "verify":
            return _verify(args, beam_args)
        if beam_args:
            parser.error(f"'augbeam {args.command}' takes no Beam options")
        if args.command == "ops":
            return _ops(args)
        if args.command == "preview":
            return _preview(args)
        if args.command == "inspect":
            from pipeline.report.inspect import summary

            print(summary(args.output))
            return 0
        if args.command == "models":
            from transforms.catalog import format_models

            print(format_models(markdown=args.format == "markdown"))
            return 0
    except ConfigError as exc:
        print(f"augbeam: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace, beam_args: list[str], warm: WarmWorkers | None) -> int:
    """``augbeam run`` (``main`` has already set TF_CPP_MIN_LOG_LEVEL and started the warm worker server)."""
    from pipeline.job.run import run_job
    from pipeline.runtime.tf_threads import parse_tf_threads

    config = job_config(args)
    parse_tf_threads(args.tf_threads)  # refused here, with the other options, before Beam is set up
    if args.device == "gpu" and _runs_here(beam_args):
        from transforms.augment import device_name

        device_name("gpu")  # fail now, in one line, rather than inside a worker
    started = time.perf_counter()
    manifest = run_job(
        config,
        beam_args,
        progress=args.progress,
        shared_mount=args.shared_mount,
        tf_threads=args.tf_threads,
        on_phase=_phase_logger(args.phase_log),
        warm=warm,
    )
    print_summary(manifest, config.output, time.perf_counter() - started)
    return 0


def _phase_logger(path: str | None) -> Any:
    """Appends each phase as a JSON line to ``path`` (None: no log)."""
    if not path:
        return None

    def log(phase: Any) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(dataclasses.asdict(phase)) + "\n")

    return log


def job_config(args: argparse.Namespace) -> JobConfig:
    """``augbeam run``'s JobConfig: each ``JobConfig.create`` parameter from the run option of the same name.

    No hand copy, so an option named after a field cannot be dropped on the way (a test sets them all);
    what argparse gives in another shape is converted in ``_job_values``.
    """
    from pipeline.job.options import JobConfig

    return JobConfig.create(**_job_values({name: vars(args)[name] for name in JobConfig.create_parameters()}))


def _job_values(values: dict[str, Any]) -> dict[str, Any]:
    """The parsed run options in JobConfig's shapes: the conversions ``job_config`` needs, all here."""
    from transforms.preprocess import get_preprocessing

    out = dict(values)
    for name in ("mean", "std", "image_size"):  # nargs options: lists from argparse, tuples in JobConfig
        out[name] = tuple(out[name]) if out[name] else None
    if out["image_size"] is None:  # default: the model's own input size
        out["image_size"] = get_preprocessing(out["model"], out["mean"], out["std"]).input_size
    out["classes"] = tuple(c.strip() for c in out["classes"].split(",")) if out["classes"] else None
    out["output"] = _absolute_if_local(out["output"])
    out["annotations"] = tuple(annotation_source(text) for text in out["annotations"] or ())
    return out


def annotation_source(text: str) -> tuple[str, str]:
    """``--annotations [SPLIT=]PATH`` as (split, path): ``train`` unless a lowercase split name and ``=`` lead."""
    import re

    from pipeline import fsutil
    from pipeline.errors import UserError

    found = re.match(r"^([a-z][a-z0-9_]*)=(.+)$", text)
    if found:
        return (found.group(1), found.group(2))
    loose = re.match(r"^([^/=:]+)=(.+)$", text)
    if loose and not fsutil.exists(text):  # ``Val=PATH``: a split name the rule refuses, not a path with a "="
        raise UserError(
            f"--annotations {text!r}: split {loose.group(1)!r} is not a split name; use lowercase letters, digits "
            "and _ starting with a letter (train=PATH, validation=PATH)"
        )
    return ("train", text)


def _absolute_if_local(path: str) -> str:
    """A local path made absolute: workers started in another folder (a worker pool) must write the same files."""
    from pipeline import fsutil

    return os.path.abspath(path) if fsutil.is_local(path) else path


def _verify(args: argparse.Namespace, beam_args: list[str]) -> int:
    """``augbeam verify``: here, or as a Beam job when given ``--runner`` or Beam options."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from pipeline.checks.verify import verify

    if args.sample < 0:
        raise ConfigError(f"--sample {args.sample}: must be 0 or more")
    if args.runner:
        beam_args = [f"--runner={args.runner}", *beam_args]
    report = verify(args.output, sample=args.sample, source=args.source, beam_args=beam_args or None)
    print(report.text(args.output))
    return 0 if report.ok else 1


def _runs_here(beam_args: list[str]) -> bool:
    """True when the workers are this machine (the default DirectRunner or another local runner)."""
    from pipeline.runtime.runners import is_local, runner_name

    try:
        return is_local(runner_name(beam_args))
    except SystemExit:  # unparsable Beam options: pipeline_options reports them in one line
        return True


def _ops(args: argparse.Namespace) -> int:
    import json

    from transforms.catalog import format_markdown, format_ops, op_entries
    from transforms.config import PRESETS, dump_ops, load_ops

    if args.preset:
        if args.preset not in PRESETS:
            raise ConfigError(f"--preset {args.preset!r}: not a preset; choose one of {', '.join(PRESETS)}")
        ops = load_ops(args.preset, None)  # a template: random_resized_crop's size 0 stays "the job's --image-size"
        print(dump_ops(ops, "json" if args.format == "json" else "yaml"), end="")
        return 0
    if args.format == "text":
        print(format_ops())
    elif args.format == "markdown":
        print(format_markdown())
    elif args.format == "json":
        print(json.dumps(op_entries(), indent=2))
    else:
        import yaml

        print(yaml.safe_dump(op_entries(), sort_keys=False), end="")
    return 0


def _preview(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF 2.16 logs CUDA plugin noise as errors
    from pipeline.report.preview import make_sheet, write_sheet
    from transforms.config import load_ops

    if not 1 <= args.copies <= 64:
        raise ConfigError(f"--copies {args.copies}: use 1 to 64 for a preview")
    if not 16 <= args.tile <= 1024:
        raise ConfigError(f"--tile {args.tile}: use 16 to 1024 pixels")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed {args.seed}: use an integer in [0, 2**63)")
    ops = load_ops(args.config, (args.tile, args.tile))  # a resizing crop resizes to the tile
    targets = _preview_targets(args) if args.annotations is not None else None
    sheet = make_sheet(args.images, ops, args.copies, args.seed, args.tile, root=args.root, targets=targets)
    for note in sheet.notes:
        print(f"augbeam: preview: {note}", file=sys.stderr)
    write_sheet(args.out, sheet.pixels, sheet.captions, args.tile)
    print(f"augbeam: wrote {args.out} ({len(args.images)} image(s) x {args.copies} copies, config {args.config})")
    return 0


def _preview_targets(args: argparse.Namespace) -> PreviewTargets:
    """``PreviewTargets`` from ``--annotations``: the previewed images' annotations, keyed as the job keys them."""
    from pipeline.annotations.lookup import AnnotationLookup
    from pipeline.report.preview import ImageTargets, PreviewTargets, key_for
    from transforms.targets.types import Objects

    if args.root is None:
        raise ConfigError("--annotations needs --root: the image folder the annotation's file names are relative to")
    keys = [key_for(path, args.root) for path in args.images]
    lookup = AnnotationLookup.read(args.annotations, args.root, keys, args.annotation_format)

    def targets_for(key: str, height: int, width: int) -> ImageTargets | NoObjects:
        found = lookup.objects(key, height, width)
        return found if not isinstance(found, Objects) else ImageTargets(found)

    return PreviewTargets(lookup.targets.classes, lookup.targets.keypoints, targets_for)


def print_summary(manifest: Manifest, output: str, seconds: float) -> None:
    """Records, bytes and failures (by reason) per split, from the written data; where it is, how to read it."""
    from pipeline.job.progress import format_bytes

    print(f"\naugbeam: wrote {output}  ({seconds:.1f} s)")
    print(
        f"  model preprocessing: {manifest.preprocessing['name']} "
        f"({manifest.preprocessing['applied'].replace('_', ' ')}), encoding {manifest.image.encoding}, "
        f"size {manifest.image.shape[0]}x{manifest.image.shape[1]}"
    )
    header = f"{'split':<12}{'inputs':>8}{'failed':>8}{'copies':>8}{'records':>9}{'rec.failed':>11}{'bytes':>11}"
    print(f"  {header}{'shards':>8}")
    total_inputs = 0
    total_records = 0
    total_bytes = 0
    for split, info in manifest.splits.items():
        c = info.counts
        size = sum(s.bytes for s in info.shards)
        total_inputs += c.listed
        total_records += c.written
        total_bytes += size
        print(
            f"  {split:<12}{c.listed:>8}{c.failed_inputs:>8}{c.copies:>8}"
            f"{c.written:>9}{c.failed_records:>11}{format_bytes(size):>11}{info.num_shards:>8}"
        )
    errors = manifest.error_rows
    if seconds > 0:
        print(
            f"  {total_inputs} inputs -> {total_records} records ({format_bytes(total_bytes)}), "
            f"{total_inputs / seconds:.1f} inputs/s, {total_records / seconds:.1f} records/s "
            "(whole run, start-up included)"
        )
    if errors:
        print("  failures by reason (listing, read, decode: inputs; augment, range: records):")
        for split, reasons in _failure_reasons(manifest).items():
            print(f"    {split:<12}" + ", ".join(f"{n} {reason}" for reason, n in reasons))
        print(f"  {errors} error row(s): see {output}/errors-*.parquet (one part per shard; augbeam.iter_errors)")
    print(f"  report:   {output}/report.html (counts, sample records, parameter histograms, errors)")
    print(f"  read it:  import augbeam; ds = augbeam.load({output!r}, split='train', batch_size=32)")


def _failure_reasons(manifest: Manifest) -> dict[str, list[tuple[str, int]]]:
    """``stage/ErrorType`` counts per split (counted at finalize), most frequent first (ties by name)."""
    counts = {split: info.error_rows_by_reason for split, info in manifest.splits.items()}
    return {split: sorted(r.items(), key=lambda kv: (-kv[1], kv[0])) for split, r in sorted(counts.items()) if r}
