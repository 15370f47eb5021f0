"""JobConfig: shard counts depend on the data and the config only; options that would eat the machine are bounded."""

from __future__ import annotations

import pytest

from pipeline.errors import UserError
from pipeline.job.options import (
    MAX_COPIES,
    MAX_IMAGE_PIXELS,
    MAX_MAX_PIXELS,
    MAX_NUM_SHARDS,
    MAX_WORKER_BYTES,
    MIN_RECORDS_PER_SHARD,
    MIN_SHARDS,
    JobConfig,
    parallel_shards,
)


def test_shard_counts_depend_on_data_and_config_only():
    cfg = JobConfig.create(input="x", output="y", encoding="float32", image_size=(224, 224))
    assert cfg.shards_for(0) == 1
    assert cfg.shards_for(15) == 1  # too few records to split: shards of at least 8 records
    assert cfg.shards_for(100) == 8  # 100 x 602 KB < 64 MB, but 8 shards of 12-13 records for the workers
    assert cfg.shards_for(1000) == 16  # by size 9 (1000 x 602 KB / 64 MB), but at least 16
    assert cfg.shards_for(3000) == 27  # by size, past the minimum
    jpeg = JobConfig.create(input="x", output="y", encoding="jpeg", image_size=(224, 224))
    assert jpeg.shards_for(2000) == 16  # by count 4 (at most 512 records a shard), but at least 16
    assert jpeg.shards_for(10000) == 20  # by count
    assert JobConfig.create(input="x", output="y", num_shards=7).shards_for(5) == 7
    assert JobConfig.create(input="x", output="y", num_shards=1).shards_for(1000) == 1  # --num-shards wins


@pytest.mark.parametrize(
    ("records", "shards"),
    [(0, 1), (15, 1), (16, 2), (31, 2), (32, 4), (63, 4), (64, 8), (100, 8), (127, 8), (128, 16), (10**6, 16)],
)
def test_enough_records_get_a_power_of_two_of_shards_of_8_records_or_more(records, shards):
    """The fewest shards: a power of two (2, 4, 8 or 16 workers get equal numbers of them), up to 16."""
    assert parallel_shards(records) == shards
    assert shards == 1 or records // shards >= MIN_RECORDS_PER_SHARD
    assert shards == MIN_SHARDS or records // (2 * shards) < MIN_RECORDS_PER_SHARD  # the most that fit


def _config(**kwargs):
    return JobConfig.create(input="x", output="y", config="none", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(image_size=(16384, 16384)), "--image-size 16384 16384: 268435456 pixels a record, over the bound of "),
        (dict(image_size=(16385, 8)), r"--image-size 16385 8: height and width must be in \[1, 16384\]"),
        (dict(image_size=(10**1000, 8)), "--image-size an integer of about 1000 digits 8: height and width"),
        (
            dict(image_size=(4096, 4096)),
            r"--image-size 4096 4096 with --batch-size 8 \(--encoding uint8\): a worker would hold about 6.0 GiB of "
            r"images \(8 augmented at once as float32, up to 32 finished records\), over the bound of 4 GiB; use "
            "--batch-size 5 or less, or a smaller --image-size",
        ),
        (dict(image_size=(2048, 2048), encoding="float32", batch_size=64), "use --batch-size 12 or less"),
        (dict(image_size=(224, 224), batch_size=1025), r"--batch-size 1025: must be in \[1, 1024\]"),
        (dict(copies=100_000), "--copies 100000: at most 1000 copies of each image"),
        (dict(eval_copies=1001, augment_eval=True), "--eval-copies 1001: at most 1000"),
        (dict(num_shards=1_000_000), r"--num-shards 1000000: at most 100000 \(each shard is 4 files"),
        (dict(shard_size_mb=0.5), "--shard-size-mb 0.5: use 1 to 1048576"),
        (dict(shard_size_mb=float("inf")), "--shard-size-mb inf: use 1 to"),
        (dict(shard_size_mb=float("nan")), "--shard-size-mb nan: use 1 to"),
        (dict(max_pixels=2**31), r"--max-pixels 2147483648: use 1 to 1073741824 \(32768 x 32768"),
        (dict(seed=10**1000), r"--seed an integer of about 1000 digits: use an integer in \[0, 2\*\*63\)"),
    ],
)
def test_options_that_would_eat_memory_or_disk_are_refused_naming_option_value_bound_and_fix(kwargs, message):
    with pytest.raises(UserError, match=message) as info:
        _config(**kwargs)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_the_bounds_themselves_are_accepted():
    """A real user's largest values pass: each bound is a value, not one past it."""
    assert _config(image_size=(4096, 4096), batch_size=5).worker_bytes_estimate() <= MAX_WORKER_BYTES
    assert _config(image_size=(3344, 3344)).batch_size == 8  # the default batch up to about 3344 x 3344
    assert _config(image_size=(16384, 1024), batch_size=1).image_size == (16384, 1024)  # a strip: 2**24 pixels
    assert 16384 * 1024 == MAX_IMAGE_PIXELS
    assert _config(copies=MAX_COPIES, eval_copies=MAX_COPIES, augment_eval=True).copies == MAX_COPIES
    assert _config(num_shards=MAX_NUM_SHARDS).shards_for(10) == MAX_NUM_SHARDS
    assert _config(max_pixels=MAX_MAX_PIXELS).max_pixels == MAX_MAX_PIXELS
    assert _config(image_size=(224, 224), batch_size=1024).batch_size == 1024


def test_records_larger_than_a_shard_get_one_shard_each_not_several():
    """By size a 4096 x 4096 float32 record (192 MiB) would ask for 3 shards of 64 MB; empty ones help nobody."""
    big = _config(image_size=(4096, 4096), encoding="float32", batch_size=1)
    assert big.shards_for(3) == 3
    assert big.shards_for(1) == 1
    assert big.shards_for(0) == 1


def test_verify_rebuilds_the_config_of_a_run_made_with_a_small_batch():
    """The manifest does not record --batch-size: verify must not apply the default batch's memory bound to it."""
    import dataclasses

    from pipeline.checks.verify import config_from_manifest
    from tests.helpers import sample_manifest

    made = _config(image_size=(4096, 4096), batch_size=5)  # refused with the default --batch-size 8
    manifest = dataclasses.replace(sample_manifest(), config=made.resolved())
    rebuilt = config_from_manifest(manifest, "y")
    assert (rebuilt.image_size, rebuilt.ops, rebuilt.batch_size) == ((4096, 4096), made.ops, 1)
