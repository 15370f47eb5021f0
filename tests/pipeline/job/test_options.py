"""JobConfig: shard counts depend on the data and the config only."""

from __future__ import annotations

from pipeline.job.options import JobConfig


def test_shard_counts_depend_on_data_and_config_only():
    cfg = JobConfig.create(input="x", output="y", encoding="float32", image_size=(224, 224))
    assert cfg.shards_for(0) == 1
    assert cfg.shards_for(100) == 1  # 100 x 602 KB < 64 MB
    assert cfg.shards_for(1000) == 9  # by size: 1000 x 602 KB / 64 MB
    jpeg = JobConfig.create(input="x", output="y", encoding="jpeg", image_size=(224, 224))
    assert jpeg.shards_for(2000) == 4  # by count: at most 512 records a shard
    assert JobConfig.create(input="x", output="y", num_shards=7).shards_for(5) == 7
