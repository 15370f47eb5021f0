"""Configs that cannot explode: YAML aliases, nesting, op count, file size and huge numbers, each refused in one
line naming the file (and the op and field for numbers) before anything is built.

The billion-laughs file also goes through the real command, under a memory limit, in
``tests/pipeline/test_cli_bounds.py``; here every case is a small real file read by ``load_ops``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import billion_laughs
from transforms.config import PRESETS, dump_ops, load_ops, ops_from_data
from transforms.config_bounds import MAX_CONFIG_BYTES, MAX_NESTING, MAX_OPS, check_shape, parse_text
from transforms.errors import ConfigError
from transforms.ops.base import MAX_NUMBER, MAX_OP_PIXELS

HUGE = 10**1000


def _load(tmp_path: Path, text: str, suffix: str = ".yaml") -> ConfigError:
    """The one-line error ``load_ops`` gives for a config file holding ``text``."""
    path = tmp_path / f"ops{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_ops(str(path))
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message and len(message) < 400, message
    return info.value


def test_billion_laughs_is_refused_at_its_first_anchor(tmp_path):
    text = billion_laughs()
    assert len(text) == 456
    error = _load(tmp_path, text)
    assert "line 2: YAML anchors and aliases (&name, *name) are not accepted" in str(error)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("ops:\n- {op: hue}\n- &x {op: hue}\n", 3),  # an anchor never used
        ("base: &b {op: hue}\nops: [*b]\n", 1),
        ("ops:\n- {op: hue, <<: {p: 0.5}}\n- <<: *m\n", 3),  # a merge key needs an alias
    ],
)
def test_any_anchor_or_alias_is_refused_with_its_line(tmp_path, text, line):
    assert f"line {line}: YAML anchors and aliases" in str(_load(tmp_path, text))


def test_configs_the_project_writes_never_use_anchors(tmp_path):
    """``augbeam ops --preset`` output is a config users start from: it must load under the alias ban."""
    for preset in PRESETS:
        text = dump_ops(load_ops(preset, None))
        assert "&" not in text and "*" not in text, preset
        path = tmp_path / f"{preset}.yaml"
        path.write_text(text)
        assert load_ops(str(path), None) == load_ops(preset, None)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_bound_is_the_same_while_parsing_yaml_and_after_json():
    assert parse_text(f"ops: {_nested(MAX_NESTING - 1)}", ".yaml", "c.yaml") == {"ops": json.loads(_nested(31))}
    with pytest.raises(ConfigError, match=f"c.yaml: line 1: lists and mappings nested more than {MAX_NESTING} deep"):
        parse_text(f"ops: {_nested(MAX_NESTING)}", ".yaml", "c.yaml")
    check_shape(json.loads(_nested(MAX_NESTING)), "c.json")
    with pytest.raises(ConfigError, match=f"c.json: lists and mappings nested more than {MAX_NESTING} deep"):
        check_shape(json.loads(_nested(MAX_NESTING + 1)), "c.json")


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "ops: " + _nested(20_000)),  # 40 KB: under the size bound, far past the depth bound
        (".json", '{"ops": ' + _nested(20_000) + "}"),  # deeper than Python's json parser recurses
        (".json", '{"ops": ' + _nested(40) + "}"),
        (".yaml", "ops:\n" + "".join("  " * i + "- op: one_of\n" + "  " * i + "  ops:\n" for i in range(16))),
    ],
)
def test_deep_nesting_is_refused(tmp_path, suffix, text):
    assert f"nested more than {MAX_NESTING} deep" in str(_load(tmp_path, text, suffix))


def test_nested_composites_a_person_writes_still_load():
    config: dict = {"op": "hue"}
    for _ in range(12):
        config = {"op": "one_of", "ops": [config, {"op": "contrast"}]}
    (op,) = ops_from_data([config])
    assert op.name == "one_of"


def test_more_than_max_ops_is_refused_nested_ones_included(tmp_path):
    assert len(ops_from_data([{"op": "hue"}] * MAX_OPS)) == MAX_OPS
    flat = "ops: [" + ",".join(["{op: hue}"] * (MAX_OPS + 1)) + "]\n"
    assert f"more than {MAX_OPS} ops" in str(_load(tmp_path, flat))
    nested = {"ops": [{"op": "one_of", "ops": [{"op": "hue"}] * MAX_OPS}]}  # 1001 with the one_of
    assert f"more than {MAX_OPS} ops" in str(_load(tmp_path, json.dumps(nested), ".json"))


def test_a_huge_file_is_refused_by_its_size_before_it_is_read_whole(tmp_path):
    line = "- {op: hue}\n"
    assert "larger than 64 KiB" in str(_load(tmp_path, "ops:\n" + line * (MAX_CONFIG_BYTES // len(line) + 1)))
    sparse = tmp_path / "sparse.yaml"
    with sparse.open("wb") as handle:
        handle.truncate(256 * 2**20)  # 256 MiB of zeros, no disk: read whole, YAML would call them bad characters
    with pytest.raises(ConfigError, match=r"sparse.yaml: the config is larger than 64 KiB"):
        load_ops(str(sparse))
    at_bound = "ops: []\n" + "#" * (MAX_CONFIG_BYTES - 9) + "\n"
    assert len(at_bound) == MAX_CONFIG_BYTES
    (tmp_path / "ok.yaml").write_text(at_bound)
    assert load_ops(str(tmp_path / "ok.yaml")) == ()


def test_a_file_that_is_not_text_or_cannot_be_read_is_one_line(tmp_path):
    path = tmp_path / "ops.yaml"
    path.write_bytes(b"ops:\n- {op: hue}\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"ops.yaml: the config is not UTF-8 text \(byte 17\)"):
        load_ops(str(path))
    with pytest.raises(ConfigError, match=r"^/proc/self/mem: cannot read the config: Input/output error$"):
        load_ops("/proc/self/mem")  # a regular file whose read at offset 0 fails with EIO


@pytest.mark.parametrize(
    ("suffix", "text", "where", "shown"),
    [
        (".yaml", f"ops: [{{op: rotation, degrees: [-10, {HUGE}]}}]", "ops[0] (rotation).degrees", "about 1000 digits"),
        (".yaml", f"ops: [{{op: resize, height: {HUGE}, width: 2}}]", "ops[0] (resize).height", "about 1000 digits"),
        (".json", f'[{{"op": "some_of", "n": {HUGE}, "ops": [{{"op": "hue"}}]}}]', "ops[0] (some_of).n", "digits"),
        (".json", f'[{{"op": "one_of", "p": -{HUGE}, "ops": [{{"op": "hue"}}]}}]', "ops[0] (one_of).p", "digits"),
        (".yaml", "ops: [{op: rotation, degrees: [-10, 1.0e+309]}]", "ops[0] (rotation).degrees", "got inf"),
        (".yaml", "ops: [{op: rotation, degrees: [-10, 1e309]}]", "ops[0] (rotation).degrees", "got inf"),
        (".yaml", "ops: [{op: gaussian_noise, std: [0, .inf]}]", "ops[0] (gaussian_noise).std", "got inf"),
        (".yaml", "ops: [{op: brightness, p: .nan}]", "ops[0] (brightness).p", "got nan"),
        (".yaml", "ops: [{op: resize, height: -.inf}]", "ops[0] (resize).height", "got -inf"),
        (".yaml", "ops: [{op: randaugment, num_ops: .nan}]", "ops[0] (randaugment).num_ops", "got nan"),
        (".json", '[{"op": "one_of", "weights": [1e309], "ops": [{"op": "hue"}]}]', "(one_of).weights", "got inf"),
        (".json", '[{"op": "brightness", "p": NaN}]', "ops[0] (brightness).p", "got nan"),
        (".json", '[{"op": "random_erasing", "count": [1, Infinity]}]', "(random_erasing).count", "got inf"),
        (".yaml", "ops: [{op: rotation, degrees: [-10, 1.0e+300]}]", "ops[0] (rotation).degrees", "1e+300 is out"),
    ],
)
def test_huge_and_non_finite_numbers_are_one_line_naming_op_and_field(tmp_path, suffix, text, where, shown):
    message = str(_load(tmp_path, text, suffix))
    assert where in message and shown in message, message


def test_numbers_up_to_the_bound_reach_the_ops_own_range_checks(tmp_path):
    assert "rotation.degrees must be" in str(_load(tmp_path, f"ops: [{{op: rotation, degrees: [0, {MAX_NUMBER}]}}]"))
    assert "resize.height must be in" in str(_load(tmp_path, "ops: [{op: resize, height: 1e9, width: 2}]"))


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """YAML 1.2 reads ``5e-1`` as a number; PyYAML's YAML 1.1 made it a string ("expected a number")."""
    path = tmp_path / "ops.yaml"
    path.write_text("ops: [{op: brightness, p: 5e-1, delta: [-1E-1, +1e-1]}]\n")
    (op,) = load_ops(str(path))
    assert (op.p, op.delta) == (0.5, (-0.1, 0.1))


def test_ops_that_set_a_size_are_bounded_in_pixels():
    with pytest.raises(ConfigError, match=r"resize: height x width = 16384 x 16384 = 268435456 pixels, over"):
        ops_from_data([{"op": "resize", "height": 16384, "width": 16384}])
    with pytest.raises(ConfigError, match=r"random_resized_crop: height x width = 16384 x 8192"):
        ops_from_data([{"op": "random_resized_crop", "height": 16384, "width": 8192}])
    (strip,) = ops_from_data([{"op": "resize", "height": 16384, "width": 4096}])
    assert strip.fixed_size() == (16384, 4096) and 16384 * 4096 == MAX_OP_PIXELS
