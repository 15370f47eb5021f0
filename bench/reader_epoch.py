"""What ``augbeam.load(..., epoch=e)`` costs: an epoch of one copy per image against an epoch of every copy.

The epoch filter parses each record's ``copy`` feature (in ``tf.data``, before decoding) and drops the
records of other copies, so an epoch still reads all K copies' bytes but decodes one in K. Tiny records
(4x4x3 uint8, written by the format's rules alone with ``tests.helpers.write_output``) make the per-record
filter as large a share as it can be. Prints one JSON line per mode: records served per second and records
read per second, best of ``--epochs``, after a warm-up epoch.

    python bench/reader_epoch.py --keys 10000 --copies 4 --shards 8 --epochs 3
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
    parser.add_argument("--keys", type=int, default=10000, help="inputs")
    parser.add_argument("--copies", type=int, default=4, help="copies of each input (K)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import augbeam
    from tests.helpers import write_output

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        keys = [f"{'cat' if i % 2 else 'dog'}/{i:06d}.png" for i in range(args.keys)]
        write_output(out, {"train": keys}, copies=args.copies, num_shards=args.shards)
        read = args.keys * args.copies
        for epoch in (None, 0, None, 0):  # twice each, alternating, against drift
            ds = augbeam.load(str(out), split="train", batch_size=args.batch_size, epoch=epoch)
            served = sum(int(x.shape[0]) for x, _ in ds)  # warm-up epoch
            best = 0.0
            for _ in range(args.epochs):
                started = time.perf_counter()
                for _x, _y in ds:
                    pass
                best = max(best, 1 / (time.perf_counter() - started))
            line = {
                "epoch": epoch,
                "copies": args.copies,
                "served": served,
                "served_per_s": round(served * best),
                "read_per_s": round(read * best),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
