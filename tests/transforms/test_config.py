"""Op configs: presets round trip through YAML and JSON, errors name the op and the field, YAML loaded safely."""

from __future__ import annotations

import pytest

from transforms.config import PRESETS, dump_ops, load_ops, ops_from_data
from transforms.errors import ConfigError


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_config_dump_load_round_trip(preset, fmt, tmp_path):
    ops = load_ops(preset)
    text = dump_ops(ops, fmt)
    path = tmp_path / f"ops.{fmt}"
    path.write_text(text)
    assert load_ops(str(path)) == ops
    assert dump_ops(load_ops(str(path)), fmt) == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"op": "sharpen_everything"}], "unknown op 'sharpen_everything'"),
        ([{"op": "rotation", "degree": [1, 2]}], r"unknown key\(s\) degree"),
        ([{"op": "rotation", "degrees": [20, -20]}], "rotation.degrees must be"),
        ([{"op": "brightness", "p": 1.5}], r"brightness.p must be in \[0.0, 1.0\]"),
        ([{"op": "rotation", "fill_mode": "mirror"}], "fill_mode must be one of"),
        ([{"op": "contrast", "factor": "big"}], "expected a list of 2 numbers"),
        ({"ops": [], "preprocess": "resnet50"}, "'preprocess' is not an op"),
        ({"ops": [], "shuffle": True}, r"unknown key\(s\) shuffle"),
        (["rotation"], "must be a mapping with an 'op' key"),
    ],
)
def test_bad_configs_name_the_op_and_field(data, message):
    with pytest.raises(ConfigError, match=message):
        ops_from_data(data)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("ops: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_ops(str(path))


def test_preprocessing_cannot_be_placed_in_the_op_list():
    with pytest.raises(ConfigError, match="'normalize' is not an op.*--model"):
        ops_from_data([{"op": "rotation"}, {"op": "normalize"}])
    with pytest.raises(ConfigError, match="'preprocessing' is not an op"):
        ops_from_data({"ops": [], "preprocessing": "resnet50"})
