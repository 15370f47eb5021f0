"""Detection, segmentation and keypoint targets: what an image's annotation holds, and how it follows the ops.

``types`` holds the typed seams (``Objects``, ``Annotation``, ``KeypointSpec``,
``TargetRules``, ``Removed``); the other modules carry them through the ops
from the same sampled parameters as the image. TensorFlow and NumPy only.
"""
