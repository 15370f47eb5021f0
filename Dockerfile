# An SDK container for remote Beam workers (Dataflow, Flink, Spark) with augbeam and its pinned stack.
# The base image's Beam and Python must equal the submitting side's: apache-beam 2.77.0 (setup.py,
# constraints.txt) on Python 3.11. Its entry point, /opt/apache/beam/boot, is kept: it starts the worker.
#
#   docker build -t REGISTRY/augbeam:0.1.0 .                                   # CPU, with Beam's GCS filesystem
#   docker build -t REGISTRY/augbeam:0.1.0-gpu --build-arg TENSORFLOW="tensorflow[and-cuda]" .   # CUDA libraries
#   docker build -t REGISTRY/augbeam:0.1.0-s3 --build-arg EXTRAS=aws .           # Beam's S3 filesystem instead
FROM apache/beam_python3.11_sdk:2.77.0

# setup.py's extras: gcp (gs:// paths, Dataflow) or aws (s3:// paths).
ARG EXTRAS=gcp
# "tensorflow[and-cuda]" adds the CUDA and cuDNN libraries TensorFlow needs on GPU workers.
ARG TENSORFLOW=tensorflow

# Several SDK worker processes may share one GPU: each takes GPU memory as it needs it, not all of it at start.
ENV TF_FORCE_GPU_ALLOW_GROWTH=true

COPY setup.py pyproject.toml README.md constraints.txt augbeam.py /opt/augbeam/
COPY pipeline /opt/augbeam/pipeline
COPY transforms /opt/augbeam/transforms

# constraints.txt pins every package (TensorFlow 2.16.2 and Beam 2.77.0 included) to the tested versions.
# pip check fails the build when those pins clash with a package the SDK image brought, rather than the workers.
RUN pip install --no-cache-dir -c /opt/augbeam/constraints.txt "/opt/augbeam[${EXTRAS}]" "${TENSORFLOW}" \
    && pip check \
    && python -c "import apache_beam, tensorflow, tensorflow_io, pipeline.job.run, transforms.augment"
