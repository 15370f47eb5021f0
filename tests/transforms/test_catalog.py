"""The catalogues: `augbeam ops` and `augbeam models`, and the docs' tables generated from them."""

from __future__ import annotations

from pipeline.cli import main
from tests.helpers import ROOT
from transforms.ops import registered_ops


def test_models_lists_every_family_and_docs_have_the_table(capsys):
    from transforms.catalog import format_models
    from transforms.preprocess import PREPROCESSING

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in PREPROCESSING:
        assert name in out, name
    assert "NASNetLarge 331" in out and "EfficientNetB7 600" in out and "EfficientNetV2S 384" in out
    assert format_models(markdown=True) in (ROOT / "docs" / "model-preprocessing.md").read_text(), (
        "regenerate the table in docs/model-preprocessing.md: augbeam models --format markdown"
    )


def test_ops_lists_every_op_with_fields_and_presets(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name in registered_ops():
        assert f"\n{name} (v" in "\n" + out, name
    assert "fields:  p=0.5, fill_mode=constant" not in out  # rotation's p is its own default
    assert "rotation (v1): Rotates about the centre" in out
    assert "degrees=[-15, 15]" in out
    assert "presets (--config NAME): none, light, standard, heavy, randaugment" in out


def test_docs_op_table_is_the_registry():
    from tests.helpers import ROOT
    from transforms.catalog import format_markdown

    assert format_markdown() in (ROOT / "docs" / "ops-and-presets.md").read_text(), (
        "regenerate the table in docs/ops-and-presets.md: augbeam ops --format markdown"
    )
