"""What the reader's folder check costs: ``augbeam.load`` epochs with it (``verify="size"``) and without (``"none"``).

The check (``reader.FolderWatch``) runs twice per shard file opened, and each record passes a ``tf.cond`` that
is true only for a file's first record. Tiny records (4x4x3 uint8, written by the format's rules alone with
``tests.helpers.write_output``) make the per-record part as large a share as it can be; real images take far
longer to decode. Prints one JSON line per mode: records per second, best of ``--epochs``, after a warm-up epoch.

    python bench/reader_watch.py --keys 20000 --shards 8 --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20000, help="inputs (2 copies each)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import augbeam
    from tests.helpers import write_output

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        keys = [f"{'cat' if i % 2 else 'dog'}/{i:06d}.png" for i in range(args.keys)]
        write_output(out, {"train": keys}, copies=2, num_shards=args.shards)
        for verify in ("none", "size", "none", "size"):  # twice each, alternating, against drift
            ds = augbeam.load(str(out), split="train", batch_size=args.batch_size, verify=verify)
            records = sum(int(x.shape[0]) for x, _ in ds)  # warm-up epoch
            best = 0.0
            for _ in range(args.epochs):
                started = time.perf_counter()
                for _x, _y in ds:
                    pass
                best = max(best, records / (time.perf_counter() - started))
            line = {"verify": verify, "records": records, "shards": args.shards, "records_per_s": round(best)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
