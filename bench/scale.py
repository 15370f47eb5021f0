"""The driver's time and memory as the input grows: the job and ``verify`` at 10k, 100k and 1M tiny images.

python bench/scale.py [--sizes 10000 100000 1000000] [--listing | --inputs listing] [--seed 0] [--work DIR]
python bench/scale.py --sizes 200 2000            # a smoke run, about a minute
python bench/scale.py --table RESULT.json         # the markdown tables again, from a saved result

Inputs: 16 distinct tiny images (seeded crops of the sample photos in
``examples/photos``, 16x16, JPEG at qualities 75-95 and PNG every fourth),
then N inputs as hard links to them (the job takes a hard link as any other
file), in 10 class folders, under a long, bucket-like folder path with
long, hash-like file names. Sizes run smallest first and the corpus grows
in place, so the largest size costs one link per input in all (1M links:
seconds to a minute). ``--listing`` also runs each size from a CSV listing
(``path`` = the absolute path of each link, ``label`` = the class name).

Per size (and input kind), each in a fresh process, one at a time:

- ``graph_size``: ``pipeline.job.run.graph_size(config, beam_args)``, the
  bytes of the pipeline proto the job submits, built without running it
  (a child process of this script).
- the job: ``python -m pipeline run --input IN --output OUT --config none
  --image-size 16 16 --phase-log LOG -- --direct_num_workers=2
  --direct_running_mode=multi_processing``. The driver appends one JSON line
  per phase (``check``, ``listing``, ``graph``, ``run``, ``finalize``): its
  seconds and its own ``ru_maxrss`` at the phase's end. This script also
  samples, every 0.2 s with psutil, the driver process's RSS alone and the
  summed RSS of its descendants (Beam's worker processes) separately, and
  times the whole process.
- ``python -m pipeline verify OUT``: wall time and peak RSS (``os.wait4``'s
  ``ru_maxrss``; also sampled).

The output folder is deleted after each size (``--keep`` keeps the last);
free disk space is checked before each size. Results go to
``bench/results/scale-<date>-<gitrev>.json`` (or ``--json``): every
measurement, the growth per 10x of N between consecutive sizes
(``(b / a) ** (1 / log10(N_b / N_a))``), and the targets:

- the submitted proto grows by at most 10,000 bytes from the smallest to the
  largest size (the issue: within 10 KB between 10k and 1M inputs);
- the driver's peak RSS (the phase log's ``ru_maxrss``) at the largest size
  is at most 1.3x its value at the second largest (1M vs 100k);
- ``verify``'s peak RSS is flat in N: at most 1.1x per 10x of N from the
  smallest to the largest size (this script's reading of "flat").

The same numbers are printed as markdown tables for ``docs/scale.md``.
Nothing about speed is asserted anywhere; the targets are reported, and the
exit status is 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from rss import RssSampler  # noqa: E402

PHASES = ("check", "listing", "graph", "run", "finalize")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
BEAM_ARGS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
IMAGE_SIZE = 16
SOURCES = 16
CLASSES = 10
# A bucket-like prefix: listing rows and keys as long as a cloud bucket's (the folder input's root is below it).
CORPUS_PATH = "bucket/datasets/imaging-archive/acquisitions-2024-06-01/raw-images-v3"
SAMPLE_INTERVAL_S = 0.2
# Disk per input kept at once: an output record (16x16x3 uint8 + features, about 1.4 KB), its index row, the
# link's directory entry and a listing row, with room to spare; plus a fixed margin.
DISK_PER_INPUT = 4096
DISK_MARGIN = 1 << 30
PROTO_GROWTH_LIMIT_BYTES = 10_000
DRIVER_RSS_LIMIT = 1.3
VERIFY_RSS_PER_10X_LIMIT = 1.1
MIB = float(1 << 20)


# ---------------------------------------------------------------------------------------------- inputs


def make_sources(folder: Path, seed: int = 0, count: int = SOURCES, size: int = IMAGE_SIZE) -> list[Path]:
    """``count`` distinct tiny images from the sample photos: seeded crops, resized, JPEG (PNG every fourth)."""
    import hashlib

    import numpy as np
    from PIL import Image

    photos = sorted(p for p in PHOTOS.rglob("*") if p.suffix in (".png", ".jpg"))
    if not photos:
        raise RuntimeError(f"no sample photos under {PHOTOS}")
    images = [Image.open(p).convert("RGB") for p in photos]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: set[str] = set()
    attempt = 0
    while len(written) < count:
        image = images[attempt % len(images)]
        attempt += 1
        w, h = image.size
        side = int(rng.integers(max(size, min(w, h) // 4), min(w, h) + 1))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        tiny = image.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        png = len(written) % 4 == 3
        if png:
            tiny.save(buffer, format="PNG")
        else:
            tiny.save(buffer, format="JPEG", quality=int(rng.integers(75, 96)))
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:  # the same bytes twice: draw another crop
            continue
        seen.add(digest)
        path = folder / f"src{len(written):02d}.{'png' if png else 'jpg'}"
        path.write_bytes(data)
        written.append(path)
    return written


def input_name(i: int) -> str:
    """File ``i``'s name in its class folder: long and hash-like, as object names in a bucket often are."""
    return f"scan-{i:07d}-{(i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF:016x}"


def class_name(c: int) -> str:
    return f"class{c:02d}"


class Corpus:
    """N inputs as hard links to a few sources, in class folders; grows in place (``grow_to``)."""

    def __init__(self, root: Path, sources: list[Path], classes: int = CLASSES) -> None:
        self.root = root
        self.sources = sources
        self.classes = classes
        self.n = 0
        self._spares = root.parent / f"{root.name}-spare-sources"
        # the file each source is linked from now: a fresh copy once a file has as many links as it can hold
        self._current = list(sources)
        self._copies = 0
        for c in range(classes):
            (root / class_name(c)).mkdir(parents=True, exist_ok=True)

    def path(self, i: int) -> str:
        source = self.sources[i % len(self.sources)]
        return f"{self.root}/{class_name(i % self.classes)}/{input_name(i)}{source.suffix}"

    def grow_to(self, n: int) -> float:
        """Adds inputs ``self.n .. n - 1``; the seconds it took."""
        start = time.perf_counter()
        dirs = [f"{self.root}/{class_name(c)}/" for c in range(self.classes)]
        suffixes = [s.suffix for s in self.sources]
        count, classes = len(self.sources), self.classes
        link = os.link
        for i in range(self.n, n):
            j = i % count
            target = f"{dirs[i % classes]}{input_name(i)}{suffixes[j]}"
            try:
                link(self._current[j], target)
            except OSError as exc:
                if exc.errno != errno.EMLINK:  # ext4 holds 65,000 links per file
                    raise
                self._current[j] = self._fresh_copy(j)
                link(self._current[j], target)
        self.n = max(self.n, n)
        return time.perf_counter() - start

    def _fresh_copy(self, j: int) -> Path:
        self._spares.mkdir(parents=True, exist_ok=True)
        self._copies += 1
        copy = self._spares / f"{self._copies:04d}-{self.sources[j].name}"
        shutil.copyfile(self.sources[j], copy)
        return copy

    def write_listing(self, path: Path) -> float:
        """A CSV listing of the inputs so far (absolute paths, class names as labels); the seconds it took.

        Written line by line: the jobs are children of this process, and on Linux a child's ``ru_maxrss``
        starts from its parent's RSS at the fork, so a listing held here (about 400 MB at 1M rows) would show
        as the driver's and ``verify``'s peak (measured: 537 MB from the phase log, 200 MB sampled).
        """
        start = time.perf_counter()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("path,label\n")
            for i in range(self.n):
                handle.write(f"{self.path(i)},{class_name(i % self.classes)}\n")
        return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- measuring


def measure(cmd: list[str], log: Path, env: dict[str, str], interval: float = SAMPLE_INTERVAL_S) -> dict[str, Any]:
    """Runs ``cmd`` (output to ``log``); wall time, its sampled RSS alone and its descendants', ``ru_maxrss``.

    ``maxrss_mb`` comes from ``os.wait4``: the largest of the process and its reaped descendants, so for the
    job it is not the driver alone (the phase log's and the sampled peak are).
    """
    with open(log, "wb") as handle:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        with RssSampler(proc.pid, interval) as sampler:
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "maxrss_mb": round(usage.ru_maxrss / 1024.0, 1),
        "sampled_peak_rss_mb": round(sampler.peak / MIB, 1),
        "sampled_children_peak_rss_mb": round(sampler.children_peak / MIB, 1),
        "children_seen": sampler.children_seen,
        "samples": sampler.samples,
    }


def read_phase_log(path: Path) -> dict[str, dict[str, float]]:
    """The phase log's lines by phase name; every phase of ``PHASES`` must be there, in that order."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    names = [e.get("phase") for e in entries]
    order = [name for name in names if name in PHASES]
    if order != list(PHASES):
        raise RuntimeError(f"phase log {path}: expected the phases {list(PHASES)} in order, got {names}")
    return {
        e["phase"]: {"seconds": round(float(e["seconds"]), 4), "peak_rss_mb": round(float(e["peak_rss_mb"]), 1)}
        for e in entries
    }


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def job_command(source: str, out: Path, phase_log: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        "--input",
        source,
        "--output",
        str(out),
        "--config",
        "none",
        "--image-size",
        str(IMAGE_SIZE),
        str(IMAGE_SIZE),
        "--phase-log",
        str(phase_log),
        "--",
        *BEAM_ARGS,
    ]


def graph_child(source: str, out: str) -> dict[str, Any]:
    """In a fresh process: ``graph_size`` for this input, with the job's options; its seconds and RSS."""
    import resource

    from pipeline.job.options import JobConfig
    from pipeline.job.run import graph_size

    config = JobConfig.create(input=source, output=out, config="none", image_size=(IMAGE_SIZE, IMAGE_SIZE))
    start = time.perf_counter()
    size = graph_size(config, list(BEAM_ARGS))
    return {
        "proto_bytes": int(size),
        "seconds": round(time.perf_counter() - start, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }


def run_graph_child(source: str, out: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--graph-child", source, str(out)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"graph_size for {source} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


SUMMARY_LINE = re.compile(r"(\d+) inputs -> (\d+) records")


def measure_size(n: int, kind: str, source: str, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """graph_size, the job and ``verify`` for one size and input kind (the output folder is left for the caller)."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    graph = run_graph_child(source, out, env, logs / f"{n}-{kind}-graph.log")
    phase_log = logs / f"{n}-{kind}-phases.jsonl"
    phase_log.unlink(missing_ok=True)
    run_log = logs / f"{n}-{kind}-run.log"
    job = measure(job_command(source, out, phase_log), run_log, env)
    if job["rc"] != 0:
        raise RuntimeError(f"the job at N={n} ({kind}) failed ({job['rc']}):\n{tail(run_log)}")
    phases = read_phase_log(phase_log)
    found = SUMMARY_LINE.search(run_log.read_text(errors="replace"))
    inputs = int(found.group(1)) if found else None
    if inputs is not None and inputs != n:
        raise RuntimeError(f"the job at N={n} ({kind}) reports {inputs} inputs, not {n}:\n{tail(run_log)}")
    verify_log = logs / f"{n}-{kind}-verify.log"
    verify = measure([sys.executable, "-m", "pipeline", "verify", str(out)], verify_log, env)
    if verify["rc"] != 0:
        raise RuntimeError(f"verify at N={n} ({kind}) failed ({verify['rc']}):\n{tail(verify_log)}")
    return {
        "n": n,
        "input": kind,
        "proto_bytes": graph["proto_bytes"],
        "graph_child": graph,
        "phases": phases,
        "driver_peak_rss_mb": max(p["peak_rss_mb"] for p in phases.values()),
        "job": job,
        "inputs_reported": inputs,
        "verify": verify,
    }


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


# ---------------------------------------------------------------------------------------------- summary


def per_10x(a: float | None, b: float | None, n_a: int, n_b: int) -> float | None:
    """b / a as a factor per 10x of N: ``(b / a) ** (1 / log10(n_b / n_a))``."""
    if not a or b is None or n_b <= n_a:
        return None
    return round((b / a) ** (1.0 / math.log10(n_b / n_a)), 3)


def metrics(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of one row that growth is reported for."""
    out = {f"{p}_s": row["phases"][p]["seconds"] for p in PHASES}
    out.update(
        driver_peak_rss_mb=row["driver_peak_rss_mb"],
        driver_sampled_peak_rss_mb=row["job"]["sampled_peak_rss_mb"],
        workers_peak_rss_mb=row["job"]["sampled_children_peak_rss_mb"],
        job_wall_s=row["job"]["wall_s"],
        proto_bytes=row["proto_bytes"],
        verify_s=row["verify"]["wall_s"],
        verify_peak_rss_mb=row["verify"]["maxrss_mb"],
    )
    return out


def growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per input kind, between consecutive sizes: each metric's factor per 10x of N, and the proto's bytes."""
    out = []
    for kind in sorted({r["input"] for r in rows}):
        mine = sorted((r for r in rows if r["input"] == kind), key=lambda r: r["n"])
        for a, b in zip(mine, mine[1:], strict=False):
            ma, mb = metrics(a), metrics(b)
            decades = math.log10(b["n"] / a["n"])
            out.append(
                {
                    "input": kind,
                    "from_n": a["n"],
                    "to_n": b["n"],
                    "per_10x": {k: per_10x(ma[k], mb[k], a["n"], b["n"]) for k in ma},
                    "proto_bytes_added": b["proto_bytes"] - a["proto_bytes"],
                    "proto_bytes_added_per_10x": round((b["proto_bytes"] - a["proto_bytes"]) / decades, 1),
                }
            )
    return out


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, per input kind, on the sizes measured (the issue's: 10k, 100k, 1M)."""
    out = []
    for kind in sorted({r["input"] for r in rows}):
        mine = sorted((r for r in rows if r["input"] == kind), key=lambda r: r["n"])
        if len(mine) < 2:
            continue
        small, big, second = mine[0], mine[-1], mine[-2]
        added = big["proto_bytes"] - small["proto_bytes"]
        out.append(
            {
                "input": kind,
                "target": "proto_bytes_growth",
                "sizes": [small["n"], big["n"]],
                "value": added,
                "limit": PROTO_GROWTH_LIMIT_BYTES,
                "met": added <= PROTO_GROWTH_LIMIT_BYTES,
                "what": "bytes the submitted proto grows by from the smallest to the largest N",
            }
        )
        ratio = round(big["driver_peak_rss_mb"] / second["driver_peak_rss_mb"], 3)
        out.append(
            {
                "input": kind,
                "target": "driver_peak_rss_ratio",
                "sizes": [second["n"], big["n"]],
                "value": ratio,
                "limit": DRIVER_RSS_LIMIT,
                "met": ratio <= DRIVER_RSS_LIMIT,
                "what": "driver peak RSS (ru_maxrss) at the largest N / at the second largest",
            }
        )
        verify = per_10x(small["verify"]["maxrss_mb"], big["verify"]["maxrss_mb"], small["n"], big["n"])
        out.append(
            {
                "input": kind,
                "target": "verify_rss_per_10x",
                "sizes": [small["n"], big["n"]],
                "value": verify,
                "limit": VERIFY_RSS_PER_10X_LIMIT,
                "met": verify is not None and verify <= VERIFY_RSS_PER_10X_LIMIT,
                "what": "verify's peak RSS growth per 10x of N (flat: at most the limit)",
            }
        )
    return out


def human_n(n: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def factor(value: float | None) -> str:
    return "n/a" if value is None else f"x{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """The measurements, the growth per 10x and the targets, as markdown for docs/scale.md."""
    rows = sorted(report["rows"], key=lambda r: (r["input"], r["n"]))
    lines = [
        "Per phase: the driver's seconds / its peak RSS (MB, ru_maxrss at the phase's end). Driver peak: the "
        "phase log's (sampled every 0.2 s). Workers: peak of the summed RSS of the driver's descendants.",
        "",
        "| N | input | " + " | ".join(PHASES) + " | driver peak MB | workers MB | job wall s | proto bytes "
        "| verify s | verify MB |",
        "|---:|---|" + "---:|" * (len(PHASES) + 6),
    ]
    for r in rows:
        cells = [f"{r['phases'][p]['seconds']:.2f} s / {r['phases'][p]['peak_rss_mb']:.0f}" for p in PHASES]
        lines.append(
            f"| {r['n']:,} | {r['input']} | "
            + " | ".join(cells)
            + f" | {r['driver_peak_rss_mb']:.0f} ({r['job']['sampled_peak_rss_mb']:.0f})"
            f" | {r['job']['sampled_children_peak_rss_mb']:.0f} | {r['job']['wall_s']:.1f}"
            f" | {r['proto_bytes']:,} | {r['verify']['wall_s']:.1f} | {r['verify']['maxrss_mb']:.0f} |"
        )
    lines += [
        "",
        "Growth per 10x of N (factor; proto: bytes added per 10x):",
        "",
        "| N | input | " + " | ".join(f"{p} s" for p in PHASES) + " | driver peak RSS | workers RSS | job wall "
        "| proto | verify s | verify RSS |",
        "|---|---|" + "---:|" * (len(PHASES) + 6),
    ]
    for g in report["growth"]:
        f = g["per_10x"]
        lines.append(
            f"| {human_n(g['from_n'])} → {human_n(g['to_n'])} | {g['input']} | "
            + " | ".join(factor(f[f"{p}_s"]) for p in PHASES)
            + f" | {factor(f['driver_peak_rss_mb'])} | {factor(f['workers_peak_rss_mb'])}"
            f" | {factor(f['job_wall_s'])} | {g['proto_bytes_added_per_10x']:+,.0f} B"
            f" | {factor(f['verify_s'])} | {factor(f['verify_peak_rss_mb'])} |"
        )
    lines += ["", "Targets:", ""]
    for t in report["targets"]:
        sizes = " → ".join(human_n(n) for n in t["sizes"])
        lines.append(
            f"- {t['target']} ({t['input']}, {sizes}): {t['value']} (limit {t['limit']}): "
            f"{'met' if t['met'] else 'MISSED'} ({t['what']})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def git_rev() -> tuple[str, bool]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return git("rev-parse", "--short", "HEAD") or "unknown", bool(git("status", "--porcelain", "--untracked-files=no"))


def default_json(rev: str) -> Path:
    base = f"scale-{time.strftime('%Y-%m-%d')}-{rev}"
    path = RESULTS / f"{base}.json"
    suffix = ord("a")
    while path.exists():
        path = RESULTS / f"{base}-{chr(suffix)}.json"
        suffix += 1
    return path


def environment(work: Path) -> dict[str, Any]:
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "apache_beam": version("apache-beam"),
        "tensorflow": version("tensorflow") or version("tensorflow-cpu"),
        "psutil": psutil.__version__,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "work": str(work),
        "disk_free_gb": round(shutil.disk_usage(work).free / 1e9, 1),
    }


def check_disk(work: Path, n: int) -> None:
    free = shutil.disk_usage(work).free
    need = n * DISK_PER_INPUT + DISK_MARGIN
    if free < need:
        raise SystemExit(
            f"scale: {free / 1e9:.1f} GB free under {work}, N={n:,} needs about {need / 1e9:.1f} GB; "
            "use --work on a larger disk or smaller --sizes"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="N (default: 10k 100k 1M)")
    parser.add_argument("--listing", action="store_true", help="also run each size from a CSV listing")
    parser.add_argument(
        "--inputs", choices=("folder", "listing", "both"), help="which inputs to run (default: folder; --listing: both)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="working folder (kept); default: a temporary one, removed")
    parser.add_argument("--keep", action="store_true", help="keep the last output folder (under --work)")
    parser.add_argument("--json", type=Path, help="default: bench/results/scale-<date>-<gitrev>.json")
    parser.add_argument("--table", type=Path, help="print the markdown tables of a saved result and exit")
    parser.add_argument("--graph-child", nargs=2, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.graph_child:
        print(json.dumps(graph_child(*args.graph_child)))
        return 0
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return 0
    sizes = sorted(set(args.sizes))
    if sizes[0] < CLASSES:
        parser.error(f"--sizes: each N must be at least {CLASSES} (one input per class folder)")

    import tempfile

    work = (args.work or Path(tempfile.mkdtemp(prefix="augbeam-scale-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rev, dirty = git_rev()
    env = child_env()
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_rev": rev,
        "git_dirty": dirty,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sizes": sizes,
        "seed": args.seed,
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "sources": SOURCES,
        "classes": CLASSES,
        "beam_args": list(BEAM_ARGS),
        "sample_interval_s": SAMPLE_INTERVAL_S,
        "environment": environment(work),
        "inputs": [],
        "rows": [],
    }
    try:
        corpus_root = work / "inputs" / CORPUS_PATH
        shutil.rmtree(work / "inputs", ignore_errors=True)
        corpus = Corpus(corpus_root, make_sources(work / "sources", args.seed))
        for n in sizes:
            check_disk(work, n)
            seconds = corpus.grow_to(n)
            made = {"n": n, "link_s": round(seconds, 3)}
            inputs = args.inputs or ("both" if args.listing else "folder")
            kinds = {"folder": str(corpus_root)} if inputs != "listing" else {}
            if inputs != "folder":
                listing = work / "listing.csv"
                made["listing_csv_s"] = round(corpus.write_listing(listing), 3)
                kinds["listing"] = str(listing)
            report["inputs"].append(made)
            print(f"N={n:,}: inputs ready ({made})", flush=True)
            for kind, source in kinds.items():
                row = measure_size(n, kind, source, work, env)
                report["rows"].append(row)
                phases = ", ".join(f"{p} {v['seconds']:.2f} s" for p, v in row["phases"].items())
                job = row["job"]
                print(
                    f"N={n:,} {kind}: {phases}; driver peak {row['driver_peak_rss_mb']:.0f} MB (sampled "
                    f"{job['sampled_peak_rss_mb']:.0f}), workers {job['sampled_children_peak_rss_mb']:.0f} MB, "
                    f"proto {row['proto_bytes']:,} B; verify {row['verify']['wall_s']:.1f} s, "
                    f"{row['verify']['maxrss_mb']:.0f} MB",
                    flush=True,
                )
                if not (args.keep and n == sizes[-1] and kind == list(kinds)[-1]):
                    shutil.rmtree(work / "out", ignore_errors=True)
        report["growth"] = growth(report["rows"])
        report["targets"] = targets(report["rows"])
        report["table_markdown"] = markdown(report)
        out = args.json or default_json(rev)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print("\n" + report["table_markdown"])
        print(f"\nJSON: {out}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
