"""JobConfig: shard counts depend on the data and the config only."""

from __future__ import annotations

import pytest

from pipeline.job.options import MIN_RECORDS_PER_SHARD, MIN_SHARDS, JobConfig, parallel_shards


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
