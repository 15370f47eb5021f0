"""Annotation inputs: COCO JSON, Pascal VOC XML and YOLO txt, read into ``source.ImageAnnotation`` rows.

May import the foundation (``pipeline.errors``, ``pipeline.fsutil``) and
``pipeline.format`` (error rows); the job imports this package, never the
reverse. Parsing happens where the listing is read (the workers); what an
image's annotation becomes at its decoded size is ``objects.to_objects``.

Readers: ``coco.read_coco``, ``voc.read_voc``, ``yolo.read_yolo``; the
checks they share and the one error row of a refused image are in
``checks``, masks (COCO compressed RLE via pycocotools) in ``masks``.
"""
