"""The ``augbeam`` command line: ``augbeam run --input SRC --output DST [options] [-- beam options]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from transforms.errors import ConfigError

EPILOG = """Beam options go after '--', for example:
  augbeam run --input photos --output out -- --direct_num_workers=2 --direct_running_mode=multi_processing
  augbeam run --input gs://b/photos --output gs://b/out -- --runner=DataflowRunner --project=P --region=R"""


def build_parser() -> argparse.ArgumentParser:
    from transforms.augment import RESIZE_MODES
    from transforms.config import DEFAULT_PRESET, PRESETS
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
    run.add_argument("--model", default="mobilenet_v2", help="model preprocessing to apply (default: mobilenet_v2)")
    run.add_argument("--image-size", nargs=2, type=int, metavar=("H", "W"), help="output size (default: the model's)")
    run.add_argument("--copies", type=int, default=1, help="augmented copies of each training image (default: 1)")
    run.add_argument("--eval-copies", type=int, default=1, help="copies of each evaluation image (default: 1)")
    run.add_argument("--augment-eval", action="store_true", help="apply the random ops to evaluation splits too")
    run.add_argument("--seed", type=int, default=0, help="global seed (default: 0)")
    shards = run.add_mutually_exclusive_group()
    shards.add_argument("--num-shards", type=int, help="shards per split (default: from --shard-size-mb)")
    shards.add_argument("--shard-size-mb", type=float, default=64.0, help="target shard size (default: 64)")
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
        help=f"op list: a YAML/JSON file or a preset ({', '.join(PRESETS)}; default: {DEFAULT_PRESET})",
    )
    run.add_argument(
        "--resize",
        dest="resize_mode",
        choices=RESIZE_MODES,
        default="stretch",
        help="how the augmented image reaches the output size (default: stretch)",
    )
    run.add_argument("--alpha-fill", type=int, default=255, help="grey level transparent pixels become (default: 255)")
    run.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images before decoding")
    run.add_argument("--overwrite", action="store_true", help="replace the output folder's contents")
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


def main(argv: list[str] | None = None) -> int:
    logging.getLogger().addFilter(_QuietBeamImports())
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, beam_args = split_beam_args(argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(ours)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (Beam options go after a bare '--')")
    try:
        if args.command == "run":
            return _run(args, beam_args)
    except ConfigError as exc:
        print(f"augbeam: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace, beam_args: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.job import run_job
    from pipeline.options import JobConfig
    from transforms.preprocess import get_preprocessing

    size = tuple(args.image_size) if args.image_size else get_preprocessing(args.model).input_size
    config = JobConfig.create(
        config=args.config,
        input=args.input,
        output=args.output,
        model=args.model,
        image_size=size,
        copies=args.copies,
        eval_copies=args.eval_copies,
        augment_eval=args.augment_eval,
        seed=args.seed,
        num_shards=args.num_shards,
        shard_size_mb=args.shard_size_mb,
        encoding=args.encoding,
        jpeg_quality=args.jpeg_quality,
        resize_mode=args.resize_mode,
        alpha_fill=args.alpha_fill,
        max_pixels=args.max_pixels,
        overwrite=args.overwrite,
    )
    started = time.perf_counter()
    manifest = run_job(config, beam_args)
    print_summary(manifest, config.output, time.perf_counter() - started)
    return 0


def print_summary(manifest: dict[str, Any], output: str, seconds: float) -> None:
    """Records per split, errors, where the output is and how to read it."""
    print(f"\naugbeam: wrote {output}  ({seconds:.1f} s)")
    print(
        f"  model preprocessing: {manifest['preprocessing']['name']} "
        f"({manifest['preprocessing']['applied'].replace('_', ' ')}), encoding {manifest['image']['encoding']}, "
        f"size {manifest['image']['shape'][0]}x{manifest['image']['shape'][1]}"
    )
    print(f"  {'split':<12}{'inputs':>8}{'failed':>8}{'copies':>8}{'records':>9}{'shards':>8}")
    total_inputs = 0
    total_records = 0
    for split, info in manifest["splits"].items():
        c = info["counts"]
        total_inputs += c["listed"]
        total_records += c["written"]
        print(
            f"  {split:<12}{c['listed']:>8}{c['failed_inputs']:>8}{c['copies']:>8}"
            f"{c['written']:>9}{info['num_shards']:>8}"
        )
    errors = manifest["files"]["errors"]["rows"]
    if seconds > 0:
        print(
            f"  {total_inputs} inputs -> {total_records} records, {total_inputs / seconds:.1f} inputs/s, "
            f"{total_records / seconds:.1f} records/s (whole run, start-up included)"
        )
    if errors:
        print(f"  {errors} error row(s): see {output}/errors.parquet")
    print(f"  read it:  from pipeline import reader; ds = reader.load({output!r}, split='train', batch_size=32)")
