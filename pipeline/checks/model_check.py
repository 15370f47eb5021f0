"""Checks that a Keras model and augbeam output normalise pixels exactly once, not twice or never.

The reader applies the manifest's preprocessing; some ``keras.applications``
models (EfficientNet, EfficientNetV2, MobileNetV3, ConvNeXt) also rescale
inside. Both, or neither, trains silently badly, so ``check_model`` warns.

Detection rule: the model's layers are walked depth first in ``model.layers``
order (topological for functional models), descending into nested models
(Functional, Sequential, any layer with ``.layers``). Every
``keras.layers.Rescaling`` or ``keras.layers.Normalization`` met before the
first weighted layer (Dense, EinsumDense, Conv*, DepthwiseConv*,
SeparableConv*, Conv*Transpose, Embedding) counts as input normalisation; the
walk stops at that first weighted layer. Normalisation hidden in a ``Lambda``
or a custom layer is not seen.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

_WEIGHTED = (
    "Dense",
    "EinsumDense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "Embedding",
)
# Families whose constructor can leave the preprocessing layers out.
_OPTIONAL_PREPROCESSING = "ConvNeXt, EfficientNetV2, MobileNetV3"


def input_normalization_layers(model: Any) -> list[Any]:
    """The Rescaling/Normalization layers the model applies before its first weighted layer."""
    import keras

    norm_types = (keras.layers.Rescaling, keras.layers.Normalization)
    weighted_types = tuple(getattr(keras.layers, name) for name in _WEIGHTED if hasattr(keras.layers, name))
    found: list[Any] = []

    def walk(layer: Any) -> bool:
        """Collects into ``found``; True once the first weighted layer is reached."""
        if isinstance(layer, norm_types):
            found.append(layer)
            return False
        if isinstance(layer, weighted_types):
            return True
        return any(walk(inner) for inner in getattr(layer, "layers", None) or ())

    for layer in model.layers:
        if walk(layer):
            break
    return found


def check_model(model: Any, data: Any) -> list[str]:
    """Warnings (also emitted as ``UserWarning``) when ``model`` and ``data`` normalise twice or never.

    ``data`` is an augbeam output folder, its ``Manifest``, or a manifest (or preprocessing) dict as
    JSON. An empty list means the pairing looks right.
    """
    from pipeline.format import reader
    from pipeline.format.manifest import Manifest

    pre: dict[str, Any]
    if isinstance(data, Manifest):
        pre, where = data.preprocessing, "the manifest"
    elif isinstance(data, dict):
        pre, where = data.get("preprocessing", data), "the manifest"
    else:
        pre, where = reader.read_manifest(os.fspath(data)).preprocessing, repr(os.fspath(data))
    name, mode = pre.get("name", "?"), pre.get("mode", "?")
    out_range = [float(v) for v in pre.get("output_range", (0.0, 255.0))]
    normalised = out_range != [0.0, 255.0]
    data_desc = f"--model {name} ({mode}, values in [{out_range[0]:g}, {out_range[1]:g}])"

    layers = input_normalization_layers(model)
    family = _guess_family(model)
    model_desc = f"model {model.name!r}"
    messages: list[str] = []
    if normalised and layers:
        names = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in layers)
        if family is not None and family[1] == "identity":
            passthrough = f"--model {family[0]}"
        else:
            passthrough = (
                "--model <its keras.applications module> (one that passes [0, 255] through, e.g. efficientnet)"
            )
        messages.append(
            f"data in {where} is already normalised by the reader with {data_desc}, and {model_desc} "
            f"normalises its input again with {names}: normalisation would be applied twice. "
            f"Rerun the job with {passthrough} or --model none, or build the model without its preprocessing "
            f"layers (include_preprocessing=False, where the family allows it: {_OPTIONAL_PREPROCESSING})."
        )
    elif not normalised and not layers:
        if family is not None and family[1] != "identity":
            fix = f"rerun the job with --model {family[0]}"
        else:
            fix = "rerun the job with the --model of the keras.applications family it is built from (e.g. mobilenet_v2)"
        messages.append(
            f"data in {where} is raw pixels, {data_desc}, and {model_desc} has no Rescaling or Normalization "
            f"layer before its first weighted layer: the model will see raw [0, 255] pixels. "
            f"{fix[0].upper()}{fix[1:]}, or add a keras.layers.Rescaling layer at the model's input."
        )
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    return messages


def _guess_family(model: Any) -> tuple[str, str] | None:
    """(keras module, preprocessing mode) of the keras.applications model a model is or wraps, from layer names.

    ``mobilenetv2_0.35_32`` -> MobileNetV2 -> (``mobilenet_v2``, ``tf``); the
    longest model class name that prefixes a (nested) model's name wins.
    """
    try:
        from transforms.preprocess import PREPROCESSING
    except ImportError:  # pragma: no cover - the table is optional for the hint
        return None
    classes = {
        name.lower(): entry
        for name, entry in PREPROCESSING.items()
        if getattr(entry, "keras_module", None) and not getattr(entry, "models", ()) and name != entry.keras_module
    }
    pending = [model]
    while pending:
        current = pending.pop(0)
        key = re.sub(r"[^a-z0-9]", "", str(getattr(current, "name", "")).lower())
        matches = [name for name in classes if key.startswith(name)]
        if matches:
            entry = classes[max(matches, key=len)]
            return str(entry.keras_module), entry.mode
        pending.extend(layer for layer in getattr(current, "layers", None) or () if hasattr(layer, "layers"))
    return None
