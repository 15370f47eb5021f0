"""augbeam: seeded, recorded image augmentation for TensorFlow training, on Apache Beam.

The stack is pinned to versions that resolve and import together on Python 3.11:
tensorflow-io 0.37.1 (the newest) loads its ops only with TensorFlow 2.16.x.
``constraints.txt`` pins every transitive package to the versions we tested:
``pip install -c constraints.txt -e .[test]``.
"""

from setuptools import find_packages, setup

BEAM = "2.77.0"

setup(
    name="augbeam",
    version="0.1.0",
    description="Offline, distributed, seeded image augmentation to TFRecord shards with Apache Beam",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"]),
    py_modules=["augbeam"],  # the public import for training scripts: augbeam.load(...)
    install_requires=[
        "tensorflow==2.16.2",
        "tensorflow-io==0.37.1",
        f"apache-beam[tfrecord]=={BEAM}",
        "pyarrow>=15",
        "pyyaml>=6",
        "pillow>=10",
        "numpy>=1.26,<2",
        "protobuf>=4.25,<5",
        # Hardware CRC32C for the TFRecord framing: ~50x crcmod's C code (0.006 against 0.33 ms per 150 KB record).
        "google-crc32c>=1.5",
        "tqdm>=4.66",  # the --progress bar (tqdm.format_meter)
        "pycocotools==2.0.11",  # COCO masks: polygons and RLE, as COCO's own tools rasterise them (annotation inputs)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.6",  # run_tests.sh runs the suite in two processes
            "hypothesis>=6",
            "ruff>=0.6",
            "mypy>=1.10",
            "types-PyYAML",
            "tensorflow-datasets==4.9.10",
            "psutil>=5.9",  # bench/compare.py's process-tree RSS (its smoke test runs in the suite)
        ],
        "gcp": [f"apache-beam[gcp]=={BEAM}"],
        "aws": [f"apache-beam[aws]=={BEAM}"],
    },
    entry_points={"console_scripts": ["augbeam=pipeline.cli:entry"]},
)
