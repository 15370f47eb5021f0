"""Image math for augbeam: seeding, ops, decoding, model preprocessing, encodings.

TensorFlow and NumPy only. Nothing here imports Apache Beam, so the same code
runs in a Beam worker, in a notebook, and in the reader.
"""
