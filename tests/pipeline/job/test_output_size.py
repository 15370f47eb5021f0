"""random_resized_crop's size: 0 means the job's --image-size, named in the resolved config so it replays exactly."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.job.options import JobConfig
from tests.helpers import sampled_entry
from transforms.augment import Renderer
from transforms.config import dump_ops, load_ops, ops_from_data
from transforms.errors import ConfigError
from transforms.ops.crops import RandomResizedCrop
from transforms.preprocess import get_preprocessing


def test_the_job_names_its_output_size_in_the_crop():
    cfg = JobConfig.create(input="x", output="y", image_size=(160, 128))
    crop = cfg.resolved()["ops"][0]
    assert (crop["op"], crop["height"], crop["width"], crop["resize"]) == ("random_resized_crop", 160, 128, True)
    assert cfg.train_ops()[0].fixed_size() == (160, 128)
    # the manifest's ops, given to a job of another size, keep the size they name
    other = JobConfig(input="x", output="z", image_size=(64, 64), ops=tuple(cfg.resolved()["ops"]))
    assert other.train_ops()[0].fixed_size() == (160, 128)


def test_a_config_written_by_hand_gets_the_job_size_or_keeps_its_pixels(tmp_path):
    path = tmp_path / "ops.yaml"
    path.write_text("ops:\n  - {op: random_resized_crop, scale: [0.5, 1.0]}\n  - {op: horizontal_flip, p: 0.5}\n")
    cfg = JobConfig.create(config=str(path), input="x", output="y", image_size=(96, 80))
    assert cfg.train_ops()[0].output_shape((1000, 900, 3), {"height": 500, "width": 400}) == (96, 80, 3)
    path.write_text("ops:\n  - {op: random_resized_crop, scale: [0.5, 1.0], resize: false}\n")
    keep = JobConfig.create(config=str(path), input="x", output="y", image_size=(96, 80)).train_ops()[0]
    assert keep.fixed_size() is None
    assert keep.output_shape((1000, 900, 3), {"height": 500, "width": 400}) == (500, 400, 3)


def test_a_template_keeps_the_job_size_open_and_an_unresolved_crop_says_so():
    assert "height: 0" in dump_ops(load_ops("standard", None))
    crop = ops_from_data([{"op": "random_resized_crop"}], image_size=None)[0]
    with pytest.raises(ConfigError, match="output size is not set"):
        crop.output_shape((10, 10, 3), {"height": 5, "width": 5})
    with pytest.raises(ConfigError, match="give both height and width"):
        RandomResizedCrop(height=10)


def test_params_of_another_op_version_are_refused():
    """A version 1 record (the crop kept its pixels) is not replayed with version 2's pixels."""
    crop = RandomResizedCrop(height=8, width=8)
    renderer = Renderer((crop,), (8, 8), "stretch", get_preprocessing("none"), "uint8")
    old = {**sampled_entry(crop, y=0, x=0, height=4, width=4), "version": 1}
    with pytest.raises(ValueError, match="random_resized_crop version 1, this is version 2"):
        renderer.pack([old])
    assert dataclasses.replace(crop, resize=False).version == 2
