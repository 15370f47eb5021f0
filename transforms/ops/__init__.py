"""Augmentation ops and their registry: ``import transforms.ops`` registers every builtin op.

``base`` declares ``Op``, ``register`` and the registry and imports no op
module; each module below defines ops and registers them with ``@register``
as it is imported. This file imports them all, and Python runs it before any
module under ``transforms.ops`` (``transforms.ops.crops`` included), so the
registry is complete wherever an op can be built: ``compose`` and
``policies``, which build child ops by name, read it through ``base`` without
importing this package back. Configs name ops by their registry ``name``
(with ``version`` and params, the public config format), never by module.

- ``geometric``: flips and affine warps (rotation, zoom, translate, shear, affine);
- ``crops``: crops and ``resize`` (and the resize the renderer ends with);
- ``photometric``: colour (brightness, contrast, saturation, hue, gamma, grayscale, ...);
- ``tonal``: posterize, solarize, equalize, auto-contrast;
- ``filters``: noise, blur, sharpness, JPEG quality;
- ``occlusion``: random erasing;
- ``compose``: ``one_of``, ``some_of`` and the layered choice policies use;
- ``policies``: RandAugment, TrivialAugment, AutoAugment.
"""

from __future__ import annotations

from transforms.ops import (  # noqa: F401  (imported to register their ops)
    compose,
    crops,
    filters,
    geometric,
    occlusion,
    photometric,
    policies,
    tonal,
)
from transforms.ops.base import Op, Params, Shape, op_from_config, register, registered_ops

__all__ = ["Op", "Params", "Shape", "op_from_config", "register", "registered_ops"]
