"""Peak memory per worker process on hostile inputs, with the default command: ``--max-image-bytes`` at work.

python bench/hostile.py [--cases photos,dicom_bomb,...] [--max-image-bytes BYTES] [--work DIR] [--json PATH]
python bench/hostile.py --smoke        # tiny versions of every case, a few seconds a case (tests/test_bench_smoke.py)

Each case is a copy of ``examples/photos`` (17 photos, train/ and
validation/) with its hostile files added to the ``everyday`` class, run
with the default command as a user types it, in a child process:

    python -m pipeline run --input CASE --output OUT [--max-image-bytes BYTES]

(one Beam worker process per core, DirectRunner ``multi_processing``).

- ``photos``: the photos alone (the baseline).
- ``dicom_bomb``: a deflated DICOM of 12x16 pixels whose data set goes on
  with 2 GiB of zero padding, 2 MB on disk (the users' 1.7 MB file grew a
  process to 22.6 GB).
- ``png16_9400``: a 16-bit RGB PNG of 9400x9400 (88.4 Mpx, under
  ``--max-pixels``; 530 MB decoded; 7.5 GB peak reported).
- ``jpeg_9000_x8``: eight 9000x9000 JPEGs in validation/, where no op runs:
  each is decoded whole, and all would fit one batch of 8 (3.9 GB peak
  reported).
- ``at_budget_jpeg``: an RGB JPEG of 9459x9459 in validation/ (decoded
  whole): 268,418,043 decoded bytes, the largest square RGB image under the
  default budget of 2**28 bytes (and under ``--max-pixels``).
- ``at_budget_png16``: a 16-bit RGB PNG of 6688x6688 in train/ (268,378,368
  decoded bytes).
- ``at_budget_rgba``: an RGBA PNG of 8192x8192 with a real alpha channel in
  train/ (4 channels: exactly 2**28 decoded bytes; composited over the
  background).
- ``at_budget_dicom``: a 16-bit monochrome DICOM of 8192x8192 in train/
  (tensorflow-io returns uint32: exactly 2**28 decoded bytes).

Per case: the exit code, records and error rows (type and message), the
driver's peak RSS and each worker process's peak RSS (``rss.RssSampler``
every 0.05 s: lower bounds), ``os.wait4``'s ``ru_maxrss`` (the largest
single process, exact) and the wall time. Results go to
``bench/results/hostile-<date>-<gitrev>.json`` (or ``--json``), and a
markdown table for docs/reliability.md is printed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from rss import RssSampler  # noqa: E402

from tests.data.make_fixtures import deflated_dicom, dicom_bytes  # noqa: E402

MIB = 2**20
SAMPLE_INTERVAL_S = 0.05
CLASS = "everyday"  # the hostile files join a class both splits have


def _pattern(height: int, width: int, seed: int, high: int) -> np.ndarray:
    """A smooth gradient with a little noise, [height, width, 3] in 0..high: compresses like a photo, not like zeros."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, high * 0.9, height, dtype=np.float32)[:, None]
    x = np.linspace(0, high * 0.9, width, dtype=np.float32)[None, :]
    out = np.empty((height, width, 3), np.uint16 if high > 255 else np.uint8)
    for c, plane in enumerate(((y + x) / 2, y + 0 * x, x + 0 * y)):
        out[..., c] = plane + rng.integers(0, high // 10, (height, width), dtype=np.int64).astype(np.float32)
    return out


def write_jpeg(path: Path, height: int, width: int, seed: int) -> None:
    Image.fromarray(_pattern(height, width, seed, 255)).save(path, quality=85)


def write_rgba(path: Path, side: int, seed: int) -> None:
    rgb = _pattern(side, side, seed, 255)
    alpha = np.linspace(0, 255, side, dtype=np.float32)[None, :].repeat(side, 0).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path, compress_level=1)


def write_png16(path: Path, height: int, width: int, seed: int) -> None:
    """A 16-bit RGB PNG written a block of rows at a time (Pillow cannot write 16-bit RGB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(1)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)))
        for top in range(0, height, 512):
            block = _pattern(min(512, height - top), width, seed + top, 65535).astype(">u2")
            raw = block.reshape(len(block), -1).view(np.uint8)
            rows = np.concatenate([np.zeros((len(block), 1), np.uint8), raw], 1)  # filter type 0 on every row
            out.write(chunk(b"IDAT", packer.compress(rows.tobytes())))
        out.write(chunk(b"IDAT", packer.flush()) + chunk(b"IEND", b""))


def write_dicom(path: Path, side: int, seed: int) -> None:
    pixels = _pattern(side, side, seed, 4095)[..., 0]
    path.write_bytes(dicom_bytes(pixels, window=("2000", "4000"), bits_stored=12))


def write_bomb(path: Path, padding: int) -> None:
    path.write_bytes(deflated_dicom(np.zeros((12, 16), np.uint16), window=("100", "200"), padding=padding))


def cases(smoke: bool) -> dict[str, list[tuple[str, str, Callable[[Path], None]]]]:
    """Each case's files: (split, name, writer). ``smoke``: the same kinds of files, tiny."""
    s = 1 if not smoke else 0

    def jpeg(side: int, seed: int) -> Callable[[Path], None]:
        return lambda p: write_jpeg(p, side, side, seed)

    def png16(side: int) -> Callable[[Path], None]:
        return lambda p: write_png16(p, side, side, 5)

    def dicom(side: int) -> Callable[[Path], None]:
        return lambda p: write_dicom(p, side, 7)

    return {
        "photos": [],
        "dicom_bomb": [("train", "bomb.dcm", lambda p: write_bomb(p, (2 << 30) if s else (64 << 20)))],
        "png16_9400": [("train", "deep.png", png16(9400 if s else 300))],
        "jpeg_9000_x8": [("validation", f"big{i}.jpg", jpeg(9000 if s else 200, i)) for i in range(8)],
        "at_budget_jpeg": [("validation", "at_budget.jpg", jpeg(9459 if s else 300, 11))],
        "at_budget_png16": [("train", "at_budget.png", png16(6688 if s else 200))],
        "at_budget_rgba": [("train", "at_budget_rgba.png", lambda p: write_rgba(p, 8192 if s else 200, 13))],
        "at_budget_dicom": [("train", "at_budget.dcm", dicom(8192 if s else 250))],
    }


def make_case(work: Path, files: list[tuple[str, str, Callable[[Path], None]]]) -> Path:
    root = work / "input"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "photos", root)
    for split, name, write in files:
        write(root / split / CLASS / name)
    return root


def run_case(root: Path, out: Path, budget: str | None) -> dict[str, Any]:
    """The default command on ``root`` in a child; its outcome and every process's peak RSS."""
    cmd = [sys.executable, "-m", "pipeline", "run", "--input", str(root), "--output", str(out), "--progress", "none"]
    cmd += ["--max-image-bytes", budget] if budget else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    with RssSampler(proc.pid, SAMPLE_INTERVAL_S) as sampler:
        output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    workers = {pid: rss for pid, rss in sampler.per_process.items() if pid != proc.pid and rss > 64 * MIB}
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 1),
        "driver_peak_mib": round(sampler.peak / MIB),
        "worker_peaks_mib": sorted((round(rss / MIB) for rss in workers.values()), reverse=True),
        "worker_commands": sorted({sampler.names.get(pid, "?")[:120] for pid in workers}),
        "maxrss_mib": round(usage.ru_maxrss / 1024),
        "tree_peak_mib": round(sampler.children_peak / MIB),
        **outcome(out),
        "stderr_tail": output[-1500:],
    }


def outcome(out: Path) -> dict[str, Any]:
    """Records per split and the error rows (key, type, message) the run wrote."""
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        return {"records": None, "errors": []}
    from pipeline.format.manifest import ErrorRow
    from pipeline.format.tables import iter_rows

    manifest = json.loads(manifest_path.read_text())
    records = {name: split["counts"]["written"] for name, split in manifest["splits"].items()}
    errors = [
        {"key": row.key, "type": row.error_type, "message": row.message}
        for part in sorted(out.glob("errors-*.parquet"))
        for row in iter_rows(str(part), ErrorRow)
    ]
    return {"records": records, "errors": errors}


def git_rev() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def table(results: dict[str, Any]) -> str:
    lines = [
        "| case | outcome | worker peaks (MiB) | largest process (MiB) | driver (MiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        written = sum((r["records"] or {}).values()) if r["records"] is not None else "no manifest"
        errors = ", ".join(f"{e['key'].rsplit('/', 1)[-1]}: {e['type']}" for e in r["errors"]) or "no errors"
        peaks = ", ".join(map(str, r["worker_peaks_mib"])) or "-"
        what = f"rc {r['rc']}, {written} records, {errors}"
        lines.append(f"| {name} | {what} | {peaks} | {r['maxrss_mib']} | {r['driver_peak_mib']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--max-image-bytes", help="passed to the job (default: the job's default)")
    parser.add_argument("--smoke", action="store_true", help="tiny versions of the files (to check the script runs)")
    parser.add_argument("--work", type=Path, help="where the inputs and outputs go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="result file (default: bench/results/hostile-<date>-<rev>.json)")
    args = parser.parse_args(argv)

    from transforms.budget import DEFAULT_MAX_IMAGE_BYTES
    from transforms.decode import DEFAULT_MAX_PIXELS

    chosen = cases(args.smoke)
    names = args.cases.split(",") if args.cases else list(chosen)
    unknown = sorted(set(names) - set(chosen))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(chosen)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="augbeam-hostile-"))
    results: dict[str, Any] = {}
    try:
        for name in names:
            case_dir = work / name
            shutil.rmtree(case_dir, ignore_errors=True)
            case_dir.mkdir(parents=True)
            start = time.perf_counter()
            root = make_case(case_dir, chosen[name])
            made = time.perf_counter() - start
            results[name] = {"inputs_made_s": round(made, 1), **run_case(root, case_dir / "out", args.max_image_bytes)}
            print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'stderr_tail'})}", flush=True)
            shutil.rmtree(case_dir, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    budget = int(args.max_image_bytes) if args.max_image_bytes and args.max_image_bytes.isdigit() else None
    report = {
        "date": datetime.date.today().isoformat(),
        "git": git_rev(),
        "command": " ".join(["python", "bench/hostile.py", *(argv if argv is not None else sys.argv[1:])]),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "max_image_bytes": budget or args.max_image_bytes or DEFAULT_MAX_IMAGE_BYTES,
        "max_pixels": DEFAULT_MAX_PIXELS,
        "smoke": args.smoke,
        # the largest square image of each kind the default budget allows (decoded bytes, transforms.budget)
        "largest_allowed": {
            "RGB JPEG": "9459x9459",
            "16-bit RGB PNG": "6688x6688",
            "RGBA PNG, WebP, 8-bit TIFF": "8192x8192",
            "16-bit DICOM": "8192x8192",
        },
        "results": results,
    }
    path = args.json or ROOT / "bench" / "results" / f"hostile-{report['date']}-{report['git']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(table(results))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
