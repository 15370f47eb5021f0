"""Where a worker's CPU goes per record: one shard's work in-process, under cProfile, split into named parts.

python bench/profile_shard.py --corpus /tmp/corpus [--n 400] [--encoding float32] [--config standard] [--warm 16]
    [--top 25] [--no-profile] [--json out.json]

Runs ``ShardProcessor`` as the default command's workers do (one TensorFlow
thread, so every TensorFlow call is on the profiled thread; ``--model
mobilenet_v2 --image-size 224 224 --copies 1``, ``--config`` as given:
``none`` is what an evaluation split renders) on the
first ``--n`` files of the corpus (``bench/make_corpus.py`` makes one),
as one shard. A first shard of ``--warm`` records traces the functions and is
not counted. Prints the process's CPU per record and, per part, the
cumulative time of the functions that make it (a part's functions never call
another part's, so the parts add up, except "render call", which includes
decoding inside the call), then the top functions by own time.

Beam's own per-element cost (bundles, coders, the DoFn) is not in here: it
is measured by running the whole job (``bench/compare.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# part name -> (file suffix, function name) pairs whose cumulative time makes the part
PARTS: dict[str, list[tuple[str, str]]] = {
    "sampling params (Augmenter.sample)": [("transforms/augment.py", "sample")],
    "  of which Rng construction": [("transforms/rng.py", "__init__")],
    "params JSON (params_json)": [("transforms/augment.py", "params_json")],
    "packing (Renderer._packed)": [("transforms/augment.py", "_packed")],
    "render call (TF, decode inside)": [("transforms/tfcall.py", "__call__")],
    "reading the batch back (_checked)": [("transforms/augment.py", "_checked")],
    "record building (example_parts)": [("pipeline/format/records.py", "example_parts")],
    "record sha256 (record_sha256)": [("pipeline/format/records.py", "record_sha256")],
    "writing: crc32c, shard sha256, write": [("pipeline/format/records.py", "write")],
    "reading files + source sha256": [("pipeline/job/shard.py", "_source")],
    "JPEG header (header_info)": [("pipeline/job/shard.py", "header")],
    "window plan (add_plan)": [("transforms/window.py", "add_plan")],
    "index/error parts (summary)": [("pipeline/job/shard.py", "summary")],
    "progress file": [("pipeline/job/progress_file.py", "update")],
}


def planned_records(corpus: Path, n: int) -> list:
    from pipeline.format.manifest import record_order
    from pipeline.job.shard import PlannedRecord

    files = sorted(p for p in corpus.rglob("*") if p.is_file())[:n]
    keys = [str(f.relative_to(corpus)) for f in files]
    return [PlannedRecord(record_order(k, 0), k, 0, str(f), 0) for k, f in zip(keys, files, strict=True)]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    total = 0.0
    for (filename, _, function), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if function == name and filename.endswith(suffix):
            total += cum
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--warm", type=int, default=16)
    parser.add_argument("--encoding", default="float32")
    parser.add_argument("--config", default="standard", help="a preset or config file, as the job's --config")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="time only (cProfile adds its own overhead)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from pipeline.job.options import JobConfig
    from pipeline.job.plan import Plan
    from pipeline.job.shard import WORK_DIR, ShardProcessor

    def sample_plan() -> Plan:
        """One split of one shard and one copy: what the shard worker reads of a plan."""
        one = {"train": 1}
        return Plan("/in", "folder", (), {"train": 0}, {"train": 0}, {}, None, one, one, "0:0", "bench")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        (out / WORK_DIR).mkdir(parents=True)
        config = JobConfig.create(
            input=str(args.corpus),
            output=str(out),
            image_size=(224, 224),
            config=args.config,
            model="mobilenet_v2",
            encoding=args.encoding,
        )
        t0 = time.process_time()
        processor = ShardProcessor(config, tf_threads=1)
        processor.setup()
        records = planned_records(args.corpus, args.n + args.warm)
        processor.process("train", 0, sample_plan(), records[: args.warm], [])
        print(f"setup + warm-up shard: {time.process_time() - t0:.2f} CPU s")
        measured = records[args.warm :]
        profile = cProfile.Profile()
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        if args.no_profile:
            summary = processor.process("train", 0, sample_plan(), measured, [])
        else:
            summary = profile.runcall(processor.process, "train", 0, sample_plan(), measured, [])
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        n = len(measured)
        print(f"shard sha256 {summary.info.sha256}")
        per_record = f"{cpu / n * 1e3:.2f} ms CPU and {wall / n * 1e3:.2f} ms wall per record"
        print(f"{n} records, {args.encoding}, --config {args.config}: {per_record}")
        report = {
            "records": n,
            "written": summary.info.records,
            "encoding": args.encoding,
            "config": args.config,
            "cpu_ms_per_record": cpu / n * 1e3,
            "wall_ms_per_record": wall / n * 1e3,
            "shard_sha256": summary.info.sha256,
            "parts_ms_per_record": {},
        }
        if not args.no_profile:
            stats = pstats.Stats(profile)
            total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
            print(f"profiled (own times summed): {total / n * 1e3:.2f} ms per record")
            for part, functions in PARTS.items():
                seconds = sum(cumulative(stats, suffix, name) for suffix, name in functions)
                report["parts_ms_per_record"][part.strip()] = seconds / n * 1e3
                print(f"  {part:42s} {seconds / n * 1e3:7.3f} ms  {100 * seconds / total:5.1f}%")
            stats.sort_stats("tottime").print_stats(args.top)
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
