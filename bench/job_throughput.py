"""Times the augbeam job on a derived corpus: N and 4N images, 1 and 2 DirectRunner workers.

python bench/job_throughput.py --n 100 --repeats 3 [--encoding uint8] [--json out.json]

Each variant runs in a fresh process (start-up included, as a user sees it),
interleaved and repeated; medians are reported. The fixed cost and the
per-image cost come from a straight line through the N and 4N times.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import project_command  # noqa: E402
from make_corpus import make_corpus  # noqa: E402

WORKERS = {1: "project_1w", 2: "project_2w"}


def time_job(corpus: Path, out: Path, workers: int, args: argparse.Namespace) -> float:
    cmd = project_command(WORKERS[workers], corpus, out, args.encoding, args.shards, seed=0, config=args.config)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encoding", default="uint8")
    parser.add_argument("--config", default="standard")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augbeam-bench-"))
    try:
        sizes = {"N": args.n, "4N": 4 * args.n}
        corpora = {label: work / label for label in sizes}
        for label, n in sizes.items():
            make_corpus(n, corpora[label])
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for workers in WORKERS:
                for label in sizes:
                    key = f"{label} x {workers} worker(s)"
                    times.setdefault(key, []).append(time_job(corpora[label], work / "out", workers, args))
        rows = []
        for workers in WORKERS:
            t_n = statistics.median(times[f"N x {workers} worker(s)"])
            t_4n = statistics.median(times[f"4N x {workers} worker(s)"])
            per_image = (t_4n - t_n) / (3 * args.n)
            rows.append(
                {
                    "workers": workers,
                    "median_s_N": round(t_n, 2),
                    "median_s_4N": round(t_4n, 2),
                    "images_per_s_4N_whole_run": round(4 * args.n / t_4n, 1),
                    "images_per_s_steady": round(1 / per_image, 1) if per_image > 0 else None,
                    "fixed_s": round(t_n - per_image * args.n, 2),
                }
            )
        result = {
            "n": args.n,
            "repeats": args.repeats,
            "encoding": args.encoding,
            "config": args.config,
            "runner": "DirectRunner",
            "rows": rows,
            "raw_seconds": times,
        }
        print(f"N={args.n}, encoding={args.encoding}, config={args.config}, medians of {args.repeats}")
        print(f"{'workers':>8}{'t(N) s':>9}{'t(4N) s':>9}{'img/s 4N':>10}{'img/s steady':>14}{'fixed s':>9}")
        for r in rows:
            print(
                f"{r['workers']:>8}{r['median_s_N']:>9}{r['median_s_4N']:>9}"
                f"{r['images_per_s_4N_whole_run']:>10}{str(r['images_per_s_steady']):>14}{r['fixed_s']:>9}"
            )
        if len(rows) == 2 and rows[0]["images_per_s_steady"] and rows[1]["images_per_s_steady"]:
            print(
                f"2 workers / 1 worker (steady): {rows[1]['images_per_s_steady'] / rows[0]['images_per_s_steady']:.2f}"
            )
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
